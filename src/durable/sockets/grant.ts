/**
 * What a socket's grant allows once it is open: publishing needs the
 * `publish` right and a token that has not expired, and a socket whose token
 * expired is closed (4401) before anything more is sent to it.
 * @module
 */
import { CLOSE_CODES } from "../../protocol/errors.js";
import type { Failure, SocketGrant } from "../../protocol/internal.js";
import { fail } from "../../protocol/internal.js";
import { closeQuietly } from "./attachments.js";

/** Why a publish frame is refused: no right (`forbidden`), or a credential no longer valid (`unauthorized`). */
export function publishDenied(grant: SocketGrant, now = Date.now()): Failure | undefined {
	if (!grant.rights.includes("publish")) {
		return fail("forbidden", "this socket's token has no publish right on the topic");
	}
	if (grant.expires !== undefined && grant.expires <= now) {
		return fail("unauthorized", "this socket's token has expired; reconnect with a fresh one");
	}
	return undefined;
}

/**
 * Closes a socket whose token has expired (4401), so a page must come back
 * with a fresh token; resuming from its last seq loses nothing. Answers
 * whether it closed.
 */
export function closeIfExpired(ws: WebSocket, grant: SocketGrant, now = Date.now()): boolean {
	if (grant.expires === undefined || grant.expires > now) return false;
	closeQuietly(ws, CLOSE_CODES.tokenExpired, "token expired; reconnect with a fresh token and resume");
	return true;
}
