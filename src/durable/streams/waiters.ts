/**
 * Waiter sockets: how long-poll and SSE readers wait without costing the
 * object anything. The Worker holds the reader's response and opens one
 * hibernatable WebSocket here (tag `stream-wait`, no attachment); the
 * object sends it one frame when the head moves or the stream closes, with
 * the new messages rendered once for every waiter when they are small, and
 * nothing otherwise. See src/worker/streams/waiter.ts for the other end.
 * @module
 */
import { TUNING } from "../../protocol/limits.js";
import {
	nextCursor,
	sseControlEvent,
	sseDataEvent,
	WAITER_SSE_TAG,
	WAITER_TAG,
	type WaiterFrame,
} from "../../protocol/streams.js";
import { type LogRow, renderMessage, type TopicLog } from "../log/topic-log.js";
import { closeQuietly, sendRaw } from "../sockets/attachments.js";
import { concat, rowBytes } from "./bytes.js";

/** New messages ride the frame up to this much text; past it, readers read them. */
const TAIL_FRAME_MAX_CHARS = 256 * 1024;

/** What a frame says of the stream, and how its SSE events are encoded. */
export interface WaitedOn {
	closed?: boolean | undefined;
	deleted?: boolean | undefined;
	json: boolean;
	text: boolean;
}

export class Waiters {
	/** New messages not yet sent, oldest first. */
	#pending: LogRow[] = [];
	#timer: ReturnType<typeof setTimeout> | undefined;
	#timerSetAt = 0;

	constructor(
		private readonly ctx: DurableObjectState,
		private readonly log: TopicLog,
		private readonly topicJson: string,
		/** The stream's state when a frame goes out. */
		private readonly state: () => WaitedOn | undefined,
	) {}

	/**
	 * A reader's waiter: told at once if the head already passed `after` or
	 * the stream closed. `sse`: a stream's SSE reader, which takes its events
	 * rendered (WAITER_SSE_TAG).
	 */
	accept(after: number, sse: boolean): Response {
		const s = this.state();
		const pair = new WebSocketPair();
		const [client, server] = [pair[0], pair[1]];
		this.ctx.acceptWebSocket(server, sse ? [WAITER_TAG, WAITER_SSE_TAG] : [WAITER_TAG]);
		// A topic not written yet is waited on like any other; only a deleted stream sends readers away.
		if (s?.deleted) closeQuietly(server, 4404, "stream gone");
		else if (this.log.head > after || s?.closed) sendRaw(server, this.#frame(s, []));
		return new Response(null, { status: 101, webSocket: client });
	}

	/**
	 * The head moved (by `rows`, the newest messages) or the stream closed:
	 * every waiter hears it once. A reader that had everything before `rows`
	 * needs no read, so fan-out to SSE readers costs one rendering and one
	 * send per reader, as for sockets. With many waiters, the frame waits for
	 * the object to be idle, as live fan-out does (live-streams.ts): the
	 * publishes queued meanwhile share it.
	 */
	notify(rows: readonly { row: LogRow }[]): void {
		const waiters = this.ctx.getWebSockets(WAITER_TAG);
		// On every publish: nothing more when nobody waits.
		if (waiters.length === 0 && this.#pending.length === 0) return;
		for (const r of rows) this.#pending.push(r.row);
		// A timer can run late behind a busy object: a notify that finds the window passed flushes by itself.
		const late = this.#timer !== undefined && Date.now() - this.#timerSetAt >= TUNING.coalesceMs;
		if (late || (this.#timer === undefined && waiters.length < TUNING.coalesceMinSockets)) {
			this.flush(waiters);
		} else if (this.#timer === undefined) {
			this.#timerSetAt = Date.now();
			this.#timer = setTimeout(() => this.flush(), 0);
		}
	}

	/** Sends what is pending now. */
	flush(waiters = this.ctx.getWebSockets(WAITER_TAG)): void {
		clearTimeout(this.#timer);
		this.#timer = undefined;
		const rows = this.#pending;
		this.#pending = [];
		if (waiters.length === 0) return;
		const s = this.state();
		const frame = this.#frame(s, rows);
		const sseReaders = new Set(this.ctx.getWebSockets(WAITER_SSE_TAG));
		const sseFrame = sseReaders.size > 0 ? this.#sseFrame(s, rows) : frame;
		for (const ws of waiters) sendRaw(ws, sseReaders.has(ws) ? sseFrame : frame);
	}

	/** The stream went away: readers end their responses (and learn why from their next read). */
	closeAll(): void {
		clearTimeout(this.#timer);
		this.#timer = undefined;
		this.#pending = [];
		for (const ws of this.ctx.getWebSockets(WAITER_TAG)) closeQuietly(ws, 4404, "stream gone");
	}

	/**
	 * For SSE readers that had everything up to the frame's `prev`: the data
	 * event and its control event, in one text, as the Worker would write
	 * them (without the messages: the events carry them).
	 */
	#sseFrame(s: WaitedOn | undefined, rows: readonly LogRow[]): string {
		const head = this.log.head;
		const header = this.#header(s, rows);
		if (!s || s.deleted || (rows.length === 0 && !s.closed)) return header;
		if (rows.reduce((n, r) => n + r.data.length, 0) > TAIL_FRAME_MAX_CHARS) return header;
		const body = s.json ? `[${rows.map((r) => r.data).join(",")}]` : concat(rows.map((r) => rowBytes(r.data)));
		const data = rows.length > 0 ? sseDataEvent(body, s.text) : "";
		const control = sseControlEvent(head, s.closed === true, true, nextCursor(Date.now(), undefined));
		return `${header}\n${data}${control}`;
	}

	#header(s: WaitedOn | undefined, rows: readonly LogRow[]): string {
		// Rows are the newest messages: the head is the last of them.
		const head = this.log.head;
		const frame: Omit<WaiterFrame, "messages" | "sse"> = { type: "tail", head, prev: head - rows.length };
		if (s?.closed) frame.closed = true;
		if (s?.deleted) frame.gone = true;
		return JSON.stringify(frame);
	}

	#frame(s: WaitedOn | undefined, rows: readonly LogRow[]): string {
		const text = this.#header(s, rows);
		const messages = rows.map((r) => renderMessage(this.topicJson, r));
		if (messages.reduce((n, m) => n + m.length, 0) > TAIL_FRAME_MAX_CHARS) return text;
		// Stored message text is spliced in, never parsed (as for socket frames).
		return `${text.slice(0, -1)},"messages":[${messages.join(",")}]}`;
	}
}
