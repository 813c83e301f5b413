/**
 * The Worker's end of a stream waiter: a hibernatable WebSocket to the
 * topic's object, which sends one small frame when the log's head moves or
 * the stream closes. Long-poll and SSE responses are held here, in the
 * Worker, so the object sleeps between writes however many readers wait.
 * @module
 */
import { WAITER_HEADER, type WaiterFrame } from "../../protocol/streams.js";

type Stub = { fetch(input: string, init?: RequestInit): Promise<Response> };

export class Waiter {
	#pending = false;
	#ended = false;
	#wake: (() => void) | undefined;

	private constructor(private readonly ws: WebSocket) {
		ws.addEventListener("message", (e) => {
			try {
				const frame = JSON.parse(String(e.data)) as WaiterFrame;
				if (frame.gone) this.#ended = true;
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
