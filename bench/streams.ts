/**
 * The Durable Streams rows (tidings only; the ceiling speaks no HTTP
 * streams): publish→deliver latency to SSE readers of the topic's stream at
 * the fixed rate of the WebSocket fan-out row, so the two read side by side;
 * and catch-up reads of a 10,000-message topic through `/v1/stream`.
 * @module
 */
import { CONFIG } from "./config.js";
import { cpuSpan } from "./lib/cpu.js";
import { fixedRate } from "./lib/http.js";
import { Histogram, round } from "./lib/stats.js";
import type { Bench, LatencyResult } from "./measure.js";

export interface CatchUpResult {
	messages: number;
	pages: number;
	ms: number;
	messagesPerSecond: number;
	/** Bytes of JSON read. */
	bytes: number;
}

export interface StreamsResult {
	/** SSE readers at the fixed rate of the WebSocket fan-out row (`latency["100@250"]`). */
	sse?: LatencyResult;
	catchUp?: CatchUpResult;
}

/** SSE readers of one stream, each its own HTTP connection, recording publish→deliver latency. */
class SseReaders {
	readonly histogram = new Histogram();
	readonly #aborts: AbortController[] = [];
	readonly #done: Promise<void>[] = [];

	async open(url: string, n: number): Promise<void> {
		const ready: Promise<void>[] = [];
		for (let i = 0; i < n; i++) {
			const abort = new AbortController();
			this.#aborts.push(abort);
			let opened: () => void = () => {};
			ready.push(new Promise((r) => (opened = r)));
			this.#done.push(this.#read(url, abort.signal, opened).catch(() => {}));
		}
		await Promise.all(ready);
	}

	async #read(url: string, signal: AbortSignal, opened: () => void): Promise<void> {
		const res = await fetch(url, { signal });
		if (!res.ok || !res.body) throw new Error(`SSE answered ${res.status}`);
		const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
		let buf = "";
		for (;;) {
			const { done, value } = await reader.read();
			if (done) return;
			buf += value;
			for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
				const event = buf.slice(0, end);
				buf = buf.slice(end + 2);
				if (event.startsWith("event: control")) opened();
				if (!event.startsWith("event: data\n")) continue;
				const now = performance.now();
				for (const m of JSON.parse(event.slice("event: data\ndata:".length)) as Array<{ t: number }>) {
					this.histogram.record(now - m.t);
				}
			}
		}
	}

	async drain(expected: number, idleMs: number, maxMs: number): Promise<void> {
		const t0 = performance.now();
		let last = this.histogram.count;
		let lastChange = t0;
		while (this.histogram.count < expected && performance.now() - t0 < maxMs) {
			await new Promise((r) => setTimeout(r, 50));
			if (this.histogram.count !== last) {
				last = this.histogram.count;
				lastChange = performance.now();
			} else if (performance.now() - lastChange > idleMs) return;
		}
	}

	async close(): Promise<void> {
		for (const a of this.#aborts) a.abort();
		await Promise.all(this.#done);
	}
}

/** SSE readers of a topic's stream while publishing over HTTP at the WebSocket fan-out row's fixed rate. */
export async function sseFanOut(bench: Bench, readers: number, rate: number): Promise<LatencyResult> {
	const topic = bench.topic("tidings", `streams-sse-${readers}`);
	const base = bench.urls.tidings;
	// The stream exists once the topic does: one message, then readers from the tail.
	await bench.withClient("tidings", (c) => c.post(bench.path(topic), `{"data":{"t":0}}`));
	const subs = new SseReaders();
	try {
		const t0 = performance.now();
		await subs.open(`${base}/v1/stream/${topic}?offset=now&live=sse`, readers);
		const openMs = round(performance.now() - t0, 0);
		const end = cpuSpan(bench.workerdPids);
		const r = await bench.withClient("tidings", (client) =>
			fixedRate(client, bench.path(topic), {
				ratePerSecond: rate,
				durationMs: CONFIG.fixedRateLatency.durationMs,
				maxInFlight: CONFIG.maxInFlight,
				body: (sentAt) => `{"data":{"t":${sentAt}}}`,
			}),
		);
		const cpu = end();
		const expected = r.outcomes.ok * readers;
		await subs.drain(expected, CONFIG.drainIdleMs, CONFIG.drainMaxMs);
		const h = subs.histogram;
		return {
			subscribers: readers,
			targetRatePerSecond: rate,
			achievedRatePerSecond: round(r.achievedPerSecond, 0),
			published: r.outcomes.ok,
			skippedSends: r.skipped,
			failures: { failed: r.outcomes.failed, byKind: r.outcomes.failures },
			expectedDeliveries: expected,
			deliveries: h.count,
			p50Ms: round(h.quantile(0.5)),
			p99Ms: round(h.quantile(0.99)),
			meanMs: round(h.mean),
			maxMs: round(h.max),
			openMs,
			cpu,
			settleMs: 0,
		};
	} finally {
		await subs.close();
	}
}

/** Publishes `n` messages in batches, then reads them all back as a stream, page by page. */
export async function catchUp(bench: Bench, n: number): Promise<CatchUpResult> {
	const topic = bench.topic("tidings", `streams-catchup-${n}`);
	const base = bench.urls.tidings;
	const batch = CONFIG.batchSize;
	await bench.withClient("tidings", async (client) => {
		for (let i = 0; i < n; i += batch) {
			const messages = Array.from({ length: Math.min(batch, n - i) }, (_, j) => ({
				data: { i: i + j, pad: "x".repeat(64) },
			}));
			const r = await client.post(bench.path(topic), JSON.stringify({ messages }));
			if (r.status !== 201) throw new Error(`publish failed: ${r.status}`);
		}
	});
	const t0 = performance.now();
	let offset = "-1";
	let read = 0;
	let pages = 0;
	let bytes = 0;
	for (;;) {
		const res = await fetch(`${base}/v1/stream/${topic}?offset=${offset}`);
		const text = await res.text();
		if (res.status !== 200) throw new Error(`read answered ${res.status}`);
		pages++;
		bytes += text.length;
		read += (JSON.parse(text) as unknown[]).length;
		offset = res.headers.get("Stream-Next-Offset") ?? offset;
		if (res.headers.get("Stream-Up-To-Date") === "true") break;
	}
	const ms = performance.now() - t0;
	if (read !== n) throw new Error(`read ${read} of ${n} messages`);
	return { messages: read, pages, ms: round(ms, 0), messagesPerSecond: round((read / ms) * 1000, 0), bytes };
}
