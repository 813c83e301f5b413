/**
 * What the object knows of each socket, and the three ways it talks to one.
 *
 * A socket's attachment (its kind, grant, and a live socket's filter or a
 * member's group) survives hibernation; it is read from the runtime once per
 * instance and kept in one cache, so every module asks here instead of
 * deserializing it again.
 * @module
 */
import type { Filter } from "../../protocol/filter.js";
import type { ServerFrame } from "../../protocol/frames.js";
import type { SocketGrant } from "../../protocol/internal.js";

export interface LiveAttachment {
	kind: "live";
	filter?: Filter;
	grant: SocketGrant;
}

export interface MemberAttachment {
	kind: "member";
	group: string;
	/** Unacknowledged messages this member may hold; 0 once it drains. */
	prefetch: number;
	/** Owner id of this socket's leases. */
	id: string;
	grant: SocketGrant;
}

export type SocketAttachment = LiveAttachment | MemberAttachment;

/** A socket accepted before attachments had a kind, or not by this object: it may do nothing. */
const NOTHING: LiveAttachment = { kind: "live", grant: { rights: [] } };

const cache = new WeakMap<WebSocket, SocketAttachment>();

export function attachmentOf(ws: WebSocket): SocketAttachment {
	let att = cache.get(ws);
	if (!att) {
		att = (ws.deserializeAttachment() as SocketAttachment | null) ?? NOTHING;
		cache.set(ws, att);
	}
	return att;
}

/** Writes the attachment through to the runtime (it must outlive hibernation) and the cache. */
export function attach(ws: WebSocket, att: SocketAttachment): void {
	ws.serializeAttachment(att);
	cache.set(ws, att);
}

export function memberOf(ws: WebSocket): MemberAttachment | undefined {
	const att = attachmentOf(ws);
	return att.kind === "member" ? att : undefined;
}

export function send(ws: WebSocket, frame: ServerFrame): void {
	sendRaw(ws, JSON.stringify(frame));
}

/** Sends, ignoring sockets that are already closing: their close handler cleans up. */
export function sendRaw(ws: WebSocket, text: string): void {
	try {
		ws.send(text);
	} catch {
		// closing or closed
	}
}

/** Codes a close frame may not carry (RFC 6455 §7.4.1): they only report what happened. */
const RESERVED_CLOSE_CODES = new Set([1005, 1006, 1015]);

/**
 * Closes, ignoring sockets that are already closing. A reserved code (a
 * close handler echoing 1006, say) becomes 1000, so that finishing a close
 * handshake never throws.
 */
export function closeQuietly(ws: WebSocket, code = 1000, reason = ""): void {
	try {
		ws.close(RESERVED_CLOSE_CODES.has(code) ? 1000 : code, reason);
	} catch {
		// already closing or closed
	}
}
