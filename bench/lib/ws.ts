/**
 * WebSocket clients: subscribers that time each delivery, consumer group
 * members that ack on receipt, and a pipelined publisher. Compression is off (as in most non-browser clients) so zlib on
 * both ends does not blur what the server itself costs.
 * @module
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { ranges } from "../../src/protocol/seq-list.js";
import { Histogram } from "./stats.js";

export function wsUrl(base: string, topic: string): string {
	return `${base.replace(/^http/, "ws")}/v1/topics/${topic}/ws`;
}

/** Opens a socket and resolves once the server's `ready` frame arrives; later frames go to `onFrame`, one by one. */
/**
 * A group member's socket URL, asking for packed messages as the client
 * library does (docs/protocol.md#packed-messages).
 */
export function memberUrl(base: string, topic: string, group: string, prefetch: number): string {
	return `${wsUrl(base, topic)}?group=${group}&prefetch=${prefetch}&pack=1`;
}

export function connect(
	url: string,
	timeoutMs: number,
	onFrame: (text: string, ws: WebSocket) => void,
): Promise<WebSocket> {
	return new Promise((resolve, reject) => {
		const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
		const timer = setTimeout(() => {
			ws.terminate();
			reject(new Error(`no ready frame from ${url} in ${timeoutMs} ms`));
		}, timeoutMs);
		let ready = false;
		ws.on("message", (raw: WebSocket.RawData) => {
			// tidings packs several frames into one WebSocket message, one per line.
			for (const text of raw.toString().split("\n")) {
				if (ready) onFrame(text, ws);
				else if (text.startsWith('{"type":"ready"')) {
					ready = true;
					clearTimeout(timer);
					resolve(ws);
				}
			}
		});
		ws.on("error", (err: Error) => {
			clearTimeout(timer);
			reject(err);
		});
	});
}

/** Closes cleanly where the server answers in time, else drops the connection. */
export async function closeAll(sockets: WebSocket[], timeoutMs = 5_000): Promise<void> {
	const closed = sockets.map(
		(ws) =>
			new Promise<void>((resolve) => {
				if (ws.readyState === WebSocket.CLOSED) return resolve();
				ws.once("close", () => resolve());
				ws.close(1000);
			}),
	);
	await Promise.race([Promise.all(closed), sleep(timeoutMs)]);
	for (const ws of sockets) if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
}

/** The send time the publisher put in `data.t` (performance.now() of this process). */
const SENT_AT = /"data":\{"t":([0-9.]+)/;

export class Subscribers {
	readonly histogram = new Histogram();
	readonly sockets: WebSocket[] = [];
	/** Message frames that carried no send time: should stay 0. */
	unparsed = 0;

	/** Opens `n` sockets, `chunk` at a time, so the handshakes do not all land at once. */
	async open(url: string, n: number, chunk = 100, timeoutMs = 15_000): Promise<void> {
		const onFrame = (text: string) => {
			const now = performance.now();
			if (!text.startsWith('{"type":"message"')) return;
			const m = SENT_AT.exec(text);
			if (m) this.histogram.record(now - Number(m[1]));
			else this.unparsed++;
		};
		for (let i = 0; i < n; i += chunk) {
			const batch = Array.from({ length: Math.min(chunk, n - i) }, () => connect(url, timeoutMs, onFrame));
			// allSettled: the sockets that did open must still be closed by close().
			const settled = await Promise.allSettled(batch);
			for (const s of settled) if (s.status === "fulfilled") this.sockets.push(s.value);
			const failed = settled.find((s) => s.status === "rejected");
			if (failed) throw failed.reason;
		}
	}

	/** Waits until `expected` deliveries arrived or nothing new came for `idleMs`. */
	async drain(expected: number, idleMs: number, maxMs: number): Promise<void> {
		const deadline = performance.now() + maxMs;
		let last = this.histogram.count;
		let lastChange = performance.now();
		while (this.histogram.count < expected && performance.now() < deadline) {
			await sleep(20);
			if (this.histogram.count !== last) {
				last = this.histogram.count;
				lastChange = performance.now();
			} else if (performance.now() - lastChange > idleMs) return;
		}
	}

	close(): Promise<void> {
		return closeAll(this.sockets);
	}
}

/**
 * Members of one consumer group, each acking every message as it arrives
 * (or, with `ack: false`, holding what it gets, so it stays leased).
 * Counts, per member, the messages received (and so acked) inside a window,
 * and every seq delivered twice as a first attempt.
 */
export class GroupConsumers {
	readonly sockets: WebSocket[] = [];
	/** Messages received and acked inside the window, per member. */
	readonly acked: number[] = [];
	/** Every delivery up to the window's end, warm-up and the time before the window included. */
	received = 0;
	/** First-attempt deliveries of a seq already delivered: should stay 0. */
	duplicates = 0;
	/** Deliveries after a failed attempt, inside the window: should stay 0 when every message is acked. */
	redelivered = 0;
	errors = 0;
	sampleError: string | undefined;
	readonly #first = new Set<number>();
	readonly #ack: boolean;
	readonly #acks = new Map<WebSocket, number[]>();
	#start = Number.POSITIVE_INFINITY;
	#end = Number.POSITIVE_INFINITY;

	constructor(opts: { ack?: boolean } = {}) {
		this.#ack = opts.ack ?? true;
	}

	/** Opens `n` members, `chunk` at a time (all at once by default), so a thousand handshakes do not land together. */
	async open(url: string, n: number, timeoutMs = 15_000, chunk = n): Promise<void> {
		const first = this.acked.length;
		this.acked.push(...Array.from({ length: n }, () => 0));
		const onFrame = (i: number) => (text: string, ws: WebSocket) => {
			if (text.startsWith('{"type":"error"')) {
				this.errors++;
				this.sampleError ??= text.slice(0, 200);
			}
			if (!text.startsWith('{"type":"message"')) return;
			const { seq, attempt } = (JSON.parse(text) as { message: { seq: number; attempt: number } }).message;
			if (this.#ack) this.#queueAck(ws, seq);
			const now = performance.now();
			if (attempt === 1) {
				if (this.#first.has(seq)) this.duplicates++;
				else this.#first.add(seq);
			}
			if (now <= this.#end) this.received++;
			if (now < this.#start || now > this.#end) return;
			this.acked[i] = (this.acked[i] ?? 0) + 1;
			if (attempt > 1) this.redelivered++;
		};
		for (let at = 0; at < n; at += chunk) {
			const batch = Array.from({ length: Math.min(chunk, n - at) }, (_, j) =>
				connect(url, timeoutMs, onFrame(first + at + j)),
			);
			// allSettled: the sockets that did open must still be closed by close().
			const settled = await Promise.allSettled(batch);
			for (const s of settled) if (s.status === "fulfilled") this.sockets.push(s.value);
			const failed = settled.find((s) => s.status === "rejected");
			if (failed) throw failed.reason;
		}
	}

	/**
	 * Acks as the client library sends them: those of messages handled in
	 * the same turn of the event loop go as one frame, runs as ranges.
	 */
	#queueAck(ws: WebSocket, seq: number): void {
		let queued = this.#acks.get(ws);
		if (!queued) {
			queued = [];
			this.#acks.set(ws, queued);
			setImmediate(() => {
				this.#acks.delete(ws);
				const seqs = queued as number[];
				if (ws.readyState !== WebSocket.OPEN) return;
				ws.send(
					JSON.stringify(seqs.length === 1 ? { type: "ack", seq: seqs[0] } : { type: "ack", seqs: ranges(seqs) }),
				);
			});
		}
		queued.push(seq);
	}

	/** Counts from `warmupMs` from now, for `durationMs`. */
	window(warmupMs: number, durationMs: number): void {
		this.#start = performance.now() + warmupMs;
		this.#end = this.#start + durationMs;
	}

	close(): Promise<void> {
		return closeAll(this.sockets);
	}
}

export interface WsPublish {
	window: number;
	warmupMs: number;
	durationMs: number;
	timeoutMs: number;
}

export interface WsPublishResult {
	publishesPerSecond: number;
	measured: number;
	errors: number;
	sampleError?: string;
}

/**
 * One socket keeps `window` publishes outstanding. The socket is also a
 * subscriber (the protocol has no publish-only socket), so it gets its own
 * messages back, as a browser publishing on its stream would.
 */
export async function wsPublish(url: string, opts: WsPublish): Promise<WsPublishResult> {
	let ref = 0;
	let outstanding = 0;
	let measured = 0;
	let errors = 0;
	let sampleError: string | undefined;
	let start = Number.POSITIVE_INFINITY;
	let end = Number.POSITIVE_INFINITY;
	let finish: () => void = () => {};
	const finished = new Promise<void>((resolve) => {
		finish = resolve;
	});
	const send = () => {
		outstanding++;
		ws.send(`{"type":"publish","ref":"r${ref++}","data":{"i":${ref}}}`);
	};
	const onFrame = (text: string) => {
		if (text.startsWith('{"type":"message"')) return;
		const frame = JSON.parse(text) as { type: string };
		if (frame.type !== "published" && frame.type !== "error") return;
		outstanding--;
		const now = performance.now();
		if (frame.type === "error") {
			errors++;
			sampleError ??= text.slice(0, 200);
		} else if (now >= start && now <= end) measured++;
		if (now < end) send();
		else if (outstanding === 0) finish();
	};
	const ws = await connect(url, opts.timeoutMs, onFrame);
	try {
		start = performance.now() + opts.warmupMs;
		end = start + opts.durationMs;
		for (let i = 0; i < opts.window; i++) send();
		await Promise.race([finished, sleep(opts.warmupMs + opts.durationMs + opts.timeoutMs)]);
	} finally {
		await closeAll([ws]);
	}
	return {
		publishesPerSecond: measured / (opts.durationMs / 1000),
		measured,
		errors,
		...(sampleError === undefined ? {} : { sampleError }),
	};
}
