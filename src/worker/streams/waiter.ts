/**
 * The Worker's end of a stream waiter: a hibernatable WebSocket to the
 * topic's object, which sends one small frame when the log's head moves or
 * the stream closes. Long-poll and SSE responses are held here, in the
 * Worker, so the object sleeps between writes however many readers wait.
 * @module
 */
import type { Message } from "../../protocol/message.js";
import { WAITER_HEADER, type WaiterFrame } from "../../protocol/streams.js";

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

	constructor(private readonly stubs: () => S) {
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
			this.#waiter = await retrying(this.stubs, this.holder, (s) => Waiter.open(s, after));
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
				const frame = JSON.parse(String(e.data)) as WaiterFrame;
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

	/** Opens a waiter for a reader that has everything up to `after`. */
	static async open(stub: Stub, after: number): Promise<Waiter> {
		const res = await stub.fetch("https://topic/stream-wait", {
			headers: { Upgrade: "websocket", [WAITER_HEADER]: String(after) },
		});
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
	 * The messages after `after` that frames carried, if they reach it with
	 * no hole (else undefined: read the log). Takes every frame.
	 */
	take(after: number): Tail | undefined {
		const frames = this.#frames;
		this.#frames = [];
		const messages: Message[] = [];
		let at = after;
		let tail: Tail | undefined;
		for (const f of frames) {
			if (f.head <= at && !f.closed) continue;
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
