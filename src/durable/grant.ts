/**
 * What a socket may do, as the Worker resolved it at the upgrade and passed
 * in headers it always sets itself (a client cannot name its own rights).
 * Kept in the socket's attachment, so it survives hibernation.
 * @module
 */
import { CLOSE_CODES } from "../protocol/errors.js";
import { RIGHTS, type Right } from "../protocol/rights.js";

export const RIGHTS_HEADER = "x-tidings-rights";
/** When the caller's token expires (ms since the epoch); empty for keys. */
export const EXPIRES_HEADER = "x-tidings-expires";
/** The caller's publish budget key; empty for keys. */
export const LIMIT_KEY_HEADER = "x-tidings-limit-key";

/** The caller's rights on this topic, as the Worker resolved them at the upgrade. */
export interface SocketGrant {
	rights: Right[];
	/** Whose publish budget this socket spends (tokens only; keys are not limited). */
	limitKey?: string;
	/** Token expiry (ms since the epoch), if the credential was a token. */
	expires?: number;
}

export function grantOf(request: Request): SocketGrant {
	const rights = (request.headers.get(RIGHTS_HEADER) ?? "")
		.split(",")
		.filter((r): r is Right => (RIGHTS as readonly string[]).includes(r));
	const expires = Number(request.headers.get(EXPIRES_HEADER) || Number.NaN);
	const limitKey = request.headers.get(LIMIT_KEY_HEADER) || undefined;
	return { rights, ...(Number.isFinite(expires) ? { expires } : {}), ...(limitKey ? { limitKey } : {}) };
}

export function grantOfSocket(ws: WebSocket): SocketGrant {
	return (ws.deserializeAttachment() as { grant?: SocketGrant } | null)?.grant ?? { rights: [] };
}

/** Why a publish frame is refused: no right (`forbidden`), or a credential no longer valid (`unauthorized`). */
export function publishDenied(grant: SocketGrant): { code: "forbidden" | "unauthorized"; message: string } | undefined {
	if (!grant.rights.includes("publish")) {
		return { code: "forbidden", message: "this socket's token has no publish right on the topic" };
	}
	if (grant.expires !== undefined && grant.expires <= Date.now()) {
		return { code: "unauthorized", message: "this socket's token has expired; reconnect with a fresh one" };
	}
	return undefined;
}

/**
 * Closes a socket whose token has expired (4401), so a page must come back
 * with a fresh token; resuming from its last seq loses nothing. Answers
 * whether it closed.
 */
export function closeIfExpired(ws: WebSocket, grant: SocketGrant | undefined, now = Date.now()): boolean {
	if (grant?.expires === undefined || grant.expires > now) return false;
	try {
		ws.close(CLOSE_CODES.tokenExpired, "token expired; reconnect with a fresh token and resume");
	} catch {
		// already closing
	}
	return true;
}
