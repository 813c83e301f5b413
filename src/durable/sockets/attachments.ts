/**
 * What the object knows of each socket, and the ways it talks to one.
 *
 * A socket's attachment (its kind, grant, whether it reads packed messages,
 * and a live socket's filter or a member's group) survives hibernation; it is
 * read from the runtime once per instance and kept in one cache, so every
 * module asks here instead of deserializing it again.
 * @module
 */
import type { Filter } from "../../protocol/filter.js";
import type { ServerFrame } from "../../protocol/frames.js";
import type { SocketGrant } from "../../protocol/internal.js";
import { TUNING } from "../../protocol/limits.js";

/** What every kind of socket carries. */
export interface AttachmentBase {
	grant: SocketGrant;
	/**
	 * The socket asked, when it opened, for several frames per WebSocket
	 * message, one per line. Absent: one frame per message, so that a reader
	 * doing `JSON.parse(event.data)` never breaks. Fixed for the socket's life.
	 */
	pack?: true;
}

export interface LiveAttachment extends AttachmentBase {
	kind: "live";
	filter?: Filter;
}

export interface MemberAttachment extends AttachmentBase {
	kind: "member";
	group: string;
	/** Unacknowledged messages this member may hold; 0 once it drains. */
	prefetch: number;
	/** Owner id of this socket's leases. */
	id: string;
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

/**
 * Frames bound for many sockets: kept as they are for sockets that read one
 * frame per message, packed once, on first need, for those that read packed.
 */
export class FrameBatch {
	#packed: string[] | undefined;
	constructor(readonly frames: readonly string[]) {}

	get packed(): readonly string[] {
		this.#packed ??= pack(this.frames);
		return this.#packed;
	}
}

/**
 * Sends frames (each one JSON text) the way the socket asked when it opened:
 * one per WebSocket message, or packed. Answers the texts actually handed to
 * the socket, for callers that count what a reader has not yet confirmed.
 * Give a `FrameBatch` when the same frames go to many sockets.
 */
export function sendFrames(ws: WebSocket, frames: readonly string[] | FrameBatch): readonly string[] {
	const batch = frames instanceof FrameBatch ? frames : undefined;
	const texts = attachmentOf(ws).pack
		? (batch?.packed ?? pack(frames as readonly string[]))
		: (batch?.frames ?? (frames as readonly string[]));
	for (const text of texts) sendRaw(ws, text);
	return texts;
}

/**
 * Joins frames with "\n" into texts of at most about `TUNING.packMaxChars`
 * (a larger frame goes alone). JSON text never holds a raw newline, so a
 * reader splits on it safely. Fewer, larger messages are what lets one
 * object feed many readers that ask for it: the cost is per message.
 */
export function pack(frames: readonly string[]): string[] {
	const out: string[] = [];
	let buf = "";
	for (const f of frames) {
		if (buf.length > 0 && buf.length + 1 + f.length > TUNING.packMaxChars) {
			out.push(buf);
			buf = f;
		} else buf = buf.length > 0 ? `${buf}\n${f}` : f;
	}
	if (buf.length > 0) out.push(buf);
	return out;
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
