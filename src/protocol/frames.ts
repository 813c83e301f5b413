/**
 * WebSocket frames, one discriminated union per direction. Sends in the
 * object are checked with `satisfies ServerFrame`.
 * @module
 */
import type { ErrorCode, SchemaMismatch } from "./errors.js";
import type { Message, PublishInput, PublishResult, SeqList } from "./message.js";

export type ServerFrame =
	| {
			type: "ready";
			topic: string;
			/** Set on a consumer group member's socket. */
			group?: string;
			/** Newest seq in the log when the socket was accepted. */
			head_seq: number;
			/** The stream delivers every message with a seq above this one. */
			from: number;
	  }
	| { type: "message"; message: Message & { group?: string; attempt?: number } }
	| { type: "gap"; from: number; to: number }
	| ({ type: "published"; ref: string } & PublishResult)
	| { type: "published"; ref: string; messages: PublishResult[] }
	| ({ type: "error"; code: ErrorCode; message: string; ref?: string } & Partial<SchemaMismatch>);

/** The seqs an ack or nack settles: one, or a list of seqs and inclusive `[first, last]` ranges. */
export type SettledSeqs = { seq: number; seqs?: never } | { seqs: SeqList; seq?: never };

export type ClientFrame =
	| ({ type: "publish"; ref: string } & PublishInput)
	| { type: "publish"; ref: string; messages: PublishInput[] }
	/**
	 * Group members: settle delivered messages, one `seq` or several `seqs`
	 * (numbers or inclusive `[first, last]` ranges); `ref`, if given, comes
	 * back on an error.
	 */
	| ({ type: "ack"; ref?: string } & SettledSeqs)
	/** Group members: fail these attempts; retried after `delay_ms` (or the group's backoff), or dead-lettered. */
	| ({ type: "nack"; delay_ms?: number; error?: string; ref?: string } & SettledSeqs)
	/**
	 * Live sockets: every message up to `seq` has been read. A socket that
	 * sends these is closed with `slowConsumer` when it falls
	 * `LIMITS.liveUnreadMaxChars` behind, instead of piling up in memory.
	 */
	| { type: "received"; seq: number }
	/** Group members: send no more messages to this socket; those it holds are settled as usual. */
	| { type: "drain" };

/** The plain-text heartbeat, answered by auto-response without waking the object. */
export const PING = "ping";
export const PONG = "pong";

/** The subprotocol a client offers (and the server echoes), beside which a browser may offer its token. */
export const SUBPROTOCOL = "tidings";
/**
 * Offered instead of (or beside) `SUBPROTOCOL`, it asks for packed messages:
 * several frames in one WebSocket message, one per line. The server echoes it
 * when it packs, so a client can tell from `WebSocket.protocol`.
 */
export const PACK_SUBPROTOCOL = "tidings.pack";
/** The query parameter that asks for packed messages where subprotocols are awkward: `?pack=1`. */
export const PACK_PARAM = "pack";

/**
 * The subprotocol the server answers to an offer (`Sec-WebSocket-Protocol`,
 * split on commas): `PACK_SUBPROTOCOL` where offered, else `SUBPROTOCOL` where
 * offered, else none. Never a `bearer.` one, which would echo the token in a
 * response header; and never one not offered, which a client must refuse.
 */
export function chooseSubprotocol(offered: readonly string[]): string | undefined {
	if (offered.includes(PACK_SUBPROTOCOL)) return PACK_SUBPROTOCOL;
	if (offered.includes(SUBPROTOCOL)) return SUBPROTOCOL;
	return undefined;
}

/** The protocols of a `Sec-WebSocket-Protocol` header. */
export function splitProtocols(header: string | null): string[] {
	return (header ?? "")
		.split(",")
		.map((p) => p.trim())
		.filter(Boolean);
}
/**
 * A browser's WebSocket cannot set headers, so it offers its token as a
 * subprotocol: `new WebSocket(url, [SUBPROTOCOL, BEARER_SUBPROTOCOL_PREFIX + token])`.
 */
export const BEARER_SUBPROTOCOL_PREFIX = "bearer.";
