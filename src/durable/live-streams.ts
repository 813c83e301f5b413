/**
 * Live subscribers of a topic: hibernatable sockets tagged `live`, each with
 * its filter in the socket attachment.
 *
 * No gap, no duplicate: a resuming socket is "replaying" until it has read
 * the log up to the head. Broadcasts skip replaying sockets; the replay reads
 * pages from the log (which already holds anything published meanwhile) and
 * turns the socket live in the same synchronous step that reads the last
 * page, so no publish can slip between the two.
 * @module
 */

import { CLOSE_CODES } from "../protocol/errors.js";
import { type Filter, matchesFilter } from "../protocol/filter.js";
import type { ServerFrame } from "../protocol/frames.js";
import { LIMITS, TUNING } from "../protocol/limits.js";
import type { Attributes } from "../protocol/message.js";
import { closeIfExpired, type SocketGrant } from "./grant.js";
import { type LogRow, renderMessage, type TopicLog } from "./topic-log.js";

export const LIVE_TAG = "live";

export interface LiveAttachment {
	kind: "live";
	filter?: Filter;
	grant: SocketGrant;
}

/** A message appended to the log, waiting to fan out. */
export interface Outgoing {
	row: LogRow;
	/** Parsed attributes, when the caller has them (the publish path); parsed lazily otherwise. */
	attributes?: Attributes | undefined;
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

export function messageFrame(topicJson: string, row: LogRow): string {
	return `{"type":"message","message":${renderMessage(topicJson, row)}}`;
}

function attributesOf(o: Outgoing): Attributes {
	if (o.attributes === undefined)
		o.attributes = o.row.attributes === null ? {} : (JSON.parse(o.row.attributes) as Attributes);
	return o.attributes;
}

/**
 * Joins frames with "\n" into WebSocket messages of at most about
 * `TUNING.packMaxChars`. JSON text never holds a raw newline, so a reader
 * splits on it safely. Fewer, larger WebSocket messages are what lets one
 * object feed many subscribers: the cost is per message, not per byte.
 */
export function pack(frames: string[]): string[] {
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

/**
 * What a socket that confirms its reads has been sent and has confirmed.
 * workerd has no `bufferedAmount` (cloudflare/workerd#988), so the client's
 * `received` frames are the only measure of how far behind it is. Kept in
 * memory: after hibernation a socket starts a fresh account.
 */
interface Flow {
	/** Characters sent since the account started. */
	sent: number;
	/** Characters the client has confirmed. */
	confirmed: number;
	/** [last seq of a send, `sent` after it], oldest first. */
	marks: [number, number][];
	/** When the account started or last moved forward. */
	at: number;
}

export class LiveStreams {
	readonly #flows = new WeakMap<WebSocket, Flow>();
	readonly #replaying = new Set<WebSocket>();
	/** Filters parsed from attachments, cached per socket for the life of this instance. */
	readonly #filters = new WeakMap<WebSocket, Filter | null>();
	readonly #grants = new WeakMap<WebSocket, SocketGrant | undefined>();
	/**
	 * For sockets that started (or finished replaying) since the last flush:
	 * the seq up to which they already have everything, so pending messages
	 * at or below it are not sent twice. Reset by every flush.
	 */
	#floors = new WeakMap<WebSocket, number>();
	#pending: Outgoing[] = [];
	#flushTimer: ReturnType<typeof setTimeout> | undefined;
	#lastFlush = 0;

	constructor(
		private readonly ctx: DurableObjectState,
		private readonly log: TopicLog,
		private readonly topicJson: () => string,
	) {}

	get count(): number {
		return this.ctx.getWebSockets(LIVE_TAG).length;
	}

	/**
	 * Accepts a live socket: `ready`, then `gap` if the resume point is gone,
	 * then the replay, then live messages.
	 */
	accept(
		ws: WebSocket,
		topic: string,
		from: number | "latest" | "earliest",
		filter: Filter | undefined,
		grant: SocketGrant,
	): void {
		this.ctx.acceptWebSocket(ws, [LIVE_TAG]);
		ws.serializeAttachment({ kind: "live", grant, ...(filter ? { filter } : {}) } satisfies LiveAttachment);
		this.#filters.set(ws, filter ?? null);
		const head = this.log.head;
		let after = from === "latest" ? head : from === "earliest" ? this.log.first - 1 : Math.min(from, head);
		send(ws, { type: "ready", topic, head_seq: head, from: after });
		if (after < this.log.first - 1) {
			send(ws, { type: "gap", from: after + 1, to: this.log.first - 1 });
			after = this.log.first - 1;
		}
		if (after >= head) {
			this.#floors.set(ws, after);
			return;
		}
		this.#replaying.add(ws);
		void this.#replay(ws, after);
	}

	async #replay(ws: WebSocket, after: number): Promise<void> {
		let cursor = after;
		try {
			for (;;) {
				if (ws.readyState !== WebSocket.OPEN) return;
				// A replay may wait long for its reader: a token that expired meanwhile gets nothing more.
				if (closeIfExpired(ws, this.#grantOf(ws))) return;
				if (cursor < this.log.first - 1) {
					// Retention trimmed ahead of us while we paused.
					send(ws, { type: "gap", from: cursor + 1, to: this.log.first - 1 });
					cursor = this.log.first - 1;
				}
				const rows = this.log.readBounded(cursor, TUNING.replayPageSize, TUNING.replayPageMaxBytes);
				const filter = this.filterOf(ws);
				const frames: string[] = [];
				let last = cursor;
				for (const row of rows) {
					if (!filter || matchesFilter(filter, attributesOf({ row }))) {
						frames.push(messageFrame(this.topicJson(), row));
						last = row.seq;
					}
					cursor = row.seq;
				}
				this.#sendCounted(ws, pack(frames), last);
				if (cursor >= this.log.head) {
					// Live from here, in this same synchronous step: nothing can slip between.
					this.#floors.set(ws, cursor);
					return;
				}
				// Let publishes and other sockets in between pages, and a reader that confirms its reads catch up.
				await new Promise((resolve) => setTimeout(resolve, 0));
				if (!(await this.#drained(ws))) return;
			}
		} catch (err) {
			// Never go live short of the head: close, so the client resumes from its last seq.
			console.error("tidings: replay failed", err);
			try {
				ws.close(1011, "replay failed; resume from your last seq");
			} catch {
				// already closing
			}
		} finally {
			this.#replaying.delete(ws);
		}
	}

	/** The socket's grant, read from its attachment once per instance. */
	#grantOf(ws: WebSocket): SocketGrant | undefined {
		if (!this.#grants.has(ws)) {
			this.#grants.set(ws, (ws.deserializeAttachment() as LiveAttachment | null)?.grant);
		}
		return this.#grants.get(ws);
	}

	filterOf(ws: WebSocket): Filter | null {
		let f = this.#filters.get(ws);
		if (f === undefined) {
			const att = ws.deserializeAttachment() as LiveAttachment | null;
			f = att?.filter ?? null;
			this.#filters.set(ws, f);
		}
		return f;
	}

	/**
	 * Queues new messages for every live socket. When idle they go out at
	 * once; under load with many sockets, sends within `TUNING.coalesceMs` of
	 * the last flush wait for the next one, so each socket gets one packed
	 * message per flush instead of one per publish.
	 */
	broadcast(messages: Outgoing[]): void {
		if (messages.length === 0) return;
		const sockets = this.ctx.getWebSockets(LIVE_TAG);
		// Nobody to tell: a socket that comes later replays from the log.
		if (sockets.length === 0 && this.#pending.length === 0) return;
		for (const m of messages) this.#pending.push(m);
		const wait = this.#lastFlush + TUNING.coalesceMs - Date.now();
		// A timer can run late behind a busy object, so a publish that finds
		// the window passed flushes by itself. Few sockets gain nothing from
		// packing: send at once.
		if (wait <= 0 || sockets.length < TUNING.coalesceMinSockets) {
			this.flush(sockets);
			return;
		}
		this.#flushTimer ??= setTimeout(() => this.flush(), wait);
	}

	/** Sends everything pending now. */
	flush(sockets = this.ctx.getWebSockets(LIVE_TAG)): void {
		if (this.#flushTimer !== undefined) {
			clearTimeout(this.#flushTimer);
			this.#flushTimer = undefined;
		}
		const pending = this.#pending;
		const floors = this.#floors;
		this.#pending = [];
		this.#floors = new WeakMap();
		this.#lastFlush = Date.now();
		if (pending.length === 0 || sockets.length === 0) return;
		const topicJson = this.topicJson();
		const frames = pending.map((m) => messageFrame(topicJson, m.row));
		/** The packed messages for a socket with no filter and no floor: the same for all of them. */
		let shared: string[] | undefined;
		const lastSeq = (pending[pending.length - 1] as Outgoing).row.seq;
		const now = Date.now();
		for (const ws of sockets) {
			if (this.#replaying.has(ws)) continue;
			if (closeIfExpired(ws, this.#grantOf(ws), now)) continue;
			const filter = this.filterOf(ws);
			const floor = floors.get(ws);
			if (!filter && floor === undefined) {
				shared ??= pack(frames);
				this.#sendCounted(ws, shared, lastSeq);
				continue;
			}
			const mine: string[] = [];
			let last = 0;
			pending.forEach((m, i) => {
				if (floor !== undefined && m.row.seq <= floor) return;
				if (filter && !matchesFilter(filter, attributesOf(m))) return;
				mine.push(frames[i] as string);
				last = m.row.seq;
			});
			this.#sendCounted(ws, pack(mine), last);
		}
	}

	forget(ws: WebSocket): void {
		this.#replaying.delete(ws);
	}

	/** A `received` frame: the client has read everything up to `seq`. The first one starts the account. */
	received(ws: WebSocket, seq: number): void {
		let flow = this.#flows.get(ws);
		if (!flow) {
			flow = { sent: 0, confirmed: 0, marks: [], at: Date.now() };
			this.#flows.set(ws, flow);
		}
		let n = 0;
		while (n < flow.marks.length && (flow.marks[n] as [number, number])[0] <= seq) n++;
		if (n > 0) {
			flow.confirmed = (flow.marks[n - 1] as [number, number])[1];
			flow.marks.splice(0, n);
			// Only progress counts against a stall: repeating an old seq does not keep a replay waiting.
			flow.at = Date.now();
		}
	}

	/** Sends texts ending with message `lastSeq`; false if that took the socket past its unread bound (it is then closed). */
	#sendCounted(ws: WebSocket, texts: string[], lastSeq: number): boolean {
		for (const text of texts) sendRaw(ws, text);
		const flow = this.#flows.get(ws);
		if (!flow || texts.length === 0) return true;
		for (const text of texts) flow.sent += text.length;
		flow.marks.push([lastSeq, flow.sent]);
		if (flow.sent - flow.confirmed <= LIMITS.liveUnreadMaxChars) return true;
		this.#closeSlow(ws);
		return false;
	}

	#closeSlow(ws: WebSocket): void {
		this.#flows.delete(ws);
		try {
			ws.close(CLOSE_CODES.slowConsumer, "too far behind; reconnect with from=<last seq>");
		} catch {
			// already closing
		}
	}

	/** Replays wait while the socket has half its unread bound outstanding; false if it stalled for good. */
	async #drained(ws: WebSocket): Promise<boolean> {
		for (;;) {
			const flow = this.#flows.get(ws);
			if (!flow || flow.sent - flow.confirmed <= LIMITS.liveUnreadMaxChars / 2) return true;
			if (ws.readyState !== WebSocket.OPEN) return false;
			if (Date.now() - flow.at > LIMITS.liveUnreadStallMs) {
				this.#closeSlow(ws);
				return false;
			}
			await new Promise((resolve) => setTimeout(resolve, 50));
		}
	}
}
