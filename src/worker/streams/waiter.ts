/**
 * The Worker's end of a stream waiter: a hibernatable WebSocket to the
 * topic's object, which sends one small frame when the log's head moves or
 * the stream closes. Long-poll and SSE responses are held here, in the
 * Worker, so the object sleeps between writes however many readers wait.
 * @module
 */
import type { Message } from "../../protocol/message.js";
import { WAITER_HEADER, WAITER_SSE_HEADER, type WaiterFrame } from "../../protocol/streams.js";

type Stub = { fetch(input: string, init?: RequestInit): Promise<Response> };

/**
 * An object that restarted (deploy, eviction, reset) breaks the stubs made
 * before; a reader that outlives it asks through a fresh one, once.
 */
export async function retrying<S, T>(stubs: () => S, holder: { stub: S }, op: (s: S) => Promise<T>): Promise<T> {
	try {
		return await op(holder.stub);
	} catch {
		holder.stub = stubs();
		return op(holder.stub);
	}
}

/** A waiting reader's waiter, opened when first needed and again after the object restarted (a few times). */
export class Follow<S extends Stub> {
	#waiter: Waiter | undefined;
	#reopened = 0;
	readonly holder: { stub: S };

	constructor(
		private readonly stubs: () => S,
		/** Waiters that take rendered SSE events (a stream's SSE reader). */
		private readonly sse = false,
	) {
		this.holder = { stub: stubs() };
	}

	/** The reader should end its response (the waiter could not be kept open, or the reader left). */
	ended = false;

	/** Waits up to `ms` for the head to pass `after`; false when the time ran out or the reader should reconnect. */
	async wait(after: number, ms: number, abort?: Promise<unknown>): Promise<boolean> {
		if (!this.#waiter || this.#waiter.ended) {
			if (this.#waiter && ++this.#reopened > 3) {
				this.ended = true;
				return false;
			}
			this.#waiter?.close();
			this.#waiter = await retrying(this.stubs, this.holder, (s) => Waiter.open(s, after, this.sse));
		}
		const woke = await this.#waiter.wait(ms, abort);
		if (abort && !woke && (await Promise.race([abort.then(() => true), Promise.resolve(false)]))) this.ended = true;
		return woke;
	}

	/** What waiter frames carried past `after` (see `Waiter.take`). */
	take(after: number): Tail | undefined {
		return this.#waiter?.take(after);
	}

	/** Runs `op` through the current stub, or a fresh one if the object restarted. */
	ask<T>(op: (s: S) => Promise<T>): Promise<T> {
		return retrying(this.stubs, this.holder, op);
	}

	close(): void {
		this.#waiter?.close();
	}
}

/** What arrived since a reader's position: the new messages, in order, and the state after them. */
export interface Tail {
	messages: Message[];
	head: number;
	closed: boolean;
	/** The events to write as they are (frames of an SSE waiter), instead of the messages. */
	sse?: string;
}

/** Frames are applied in order; one at or below the reader's position adds nothing (unless it closes). */
function stale(f: WaiterFrame, at: number): boolean {
	return f.head <= at && !f.closed;
}

/** The rendered SSE text of frames that chain exactly from `after`. */
function rendered(frames: WaiterFrame[], after: number): Tail | undefined {
	let at = after;
	let tail: Tail | undefined;
	for (const f of frames) {
		if (stale(f, at)) continue;
		if (f.sse === undefined || f.prev !== at) return undefined;
		at = f.head;
		tail = { messages: [], head: at, closed: f.closed === true, sse: (tail?.sse ?? "") + f.sse };
		if (tail.closed) break;
	}
	return tail;
}

/** The messages frames carried past `after`, when they reach on from it with no hole. */
function carried(frames: WaiterFrame[], after: number): Tail | undefined {
	const messages: Message[] = [];
	let at = after;
	let tail: Tail | undefined;
	for (const f of frames) {
		if (stale(f, at)) continue;
		if (f.prev > at || (f.head > at && !f.messages)) return undefined;
		for (const m of f.messages ?? []) {
			if (m.seq <= at) continue;
			if (m.seq !== at + 1) return undefined;
			messages.push(m);
			at = m.seq;
		}
		tail = { messages, head: f.head, closed: f.closed === true };
	}
	return tail && at === tail.head ? tail : undefined;
}

export class Waiter {
	/** Frames not yet taken, oldest first. */
	#frames: WaiterFrame[] = [];
	#pending = false;
	#ended = false;
	#wake: (() => void) | undefined;

	private constructor(private readonly ws: WebSocket) {
		ws.addEventListener("message", (e) => {
			try {
				// An SSE waiter's frame: the JSON, a newline, then the rendered events.
				const text = String(e.data);
				const cut = text.indexOf("\n");
				const frame = JSON.parse(cut < 0 ? text : text.slice(0, cut)) as WaiterFrame;
				if (cut >= 0) frame.sse = text.slice(cut + 1);
				if (frame.gone) this.#ended = true;
				// A bounded queue: a reader that lags reads the log instead.
				if (this.#frames.push(frame) > 64) this.#frames = [];
			} catch {
				// not ours: any frame still means "look again"
			}
			this.#signal();
		});
		// An object restart (deploy, eviction) closes the socket: the reader looks again, then opens another.
		ws.addEventListener("close", () => {
			this.#ended = true;
			this.#signal();
		});
		ws.addEventListener("error", () => {
			this.#ended = true;
			this.#signal();
		});
	}

	/** Opens a waiter for a reader that has everything up to `after` (`sse`: a stream's SSE reader). */
	static async open(stub: Stub, after: number, sse = false): Promise<Waiter> {
		const headers: Record<string, string> = { Upgrade: "websocket", [WAITER_HEADER]: String(after) };
		if (sse) headers[WAITER_SSE_HEADER] = "1";
		const res = await stub.fetch("https://topic/stream-wait", { headers });
		const ws = res.webSocket;
		if (!ws) throw new Error(`stream waiter refused: ${res.status}`);
		ws.accept();
		return new Waiter(ws);
	}

	/** The socket closed: the next wait returns at once, and the reader should open another. */
	get ended(): boolean {
		return this.#ended;
	}

	/**
	 * Waits up to `ms` for a frame (or `abort`). Answers whether something
	 * happened; false means the time ran out.
	 */
	async wait(ms: number, abort?: Promise<unknown>): Promise<boolean> {
		if (this.#pending || this.#ended) {
			this.#pending = false;
			return true;
		}
		let timer: ReturnType<typeof setTimeout> | undefined;
		const woke = await Promise.race([
			new Promise<boolean>((resolve) => {
				this.#wake = () => resolve(true);
			}),
			new Promise<boolean>((resolve) => {
				timer = setTimeout(() => resolve(false), ms);
			}),
			...(abort ? [abort.then(() => false)] : []),
		]);
		clearTimeout(timer);
		this.#wake = undefined;
		this.#pending = false;
		return woke;
	}

	/**
	 * What frames carried past `after`, if it reaches on from `after` with no
	 * hole (else undefined: read the log): the SSE text rendered in the
	 * object when every frame has it, else the messages. Takes every frame.
	 */
	take(after: number): Tail | undefined {
		const frames = this.#frames;
		this.#frames = [];
		return rendered(frames, after) ?? carried(frames, after);
	}

	close(): void {
		this.#ended = true;
		try {
			this.ws.close(1000, "reader done");
		} catch {
			// already closing
		}
	}

	#signal(): void {
		this.#pending = true;
		this.#wake?.();
	}
}
