/**
 * The measurements: every row drives both implementations through the same
 * wire protocol, each on a topic of its own (so a fresh Durable Object).
 * @module
 */
import { setTimeout as sleep } from "node:timers/promises";
import { CONFIG, IMPLS, type Impl } from "./config.js";
import { type CpuShare, cpuSpan } from "./lib/cpu.js";
import { closedLoop, fixedRate, HttpClient, type Outcomes } from "./lib/http.js";
import { round } from "./lib/stats.js";
import { Subscribers, wsPublish, wsUrl } from "./lib/ws.js";

export type ThroughputKind = "httpSingle" | "httpBatch" | "wsPublish";

export const THROUGHPUT_ROWS: Record<ThroughputKind, string> = {
	httpSingle: "HTTP single",
	httpBatch: `HTTP batch of ${CONFIG.batchSize}`,
	wsPublish: `WS publish, window ${CONFIG.wsWindow}`,
};

/** A latency row: at the derived half rate unless it has a `fixedRate`. */
export interface LatencyRow {
	/** Its key in results.json: "100", or "100@250" at a fixed rate. */
	key: string;
	/** "100 sub", or "100 sub @ 250 msg/s". */
	label: string;
	subscribers: number;
	fixedRate?: number;
}

const { subscribers: fixedSubs, rates: fixedRates } = CONFIG.fixedRateLatency;
export const LATENCY_ROWS: LatencyRow[] = [
	...CONFIG.subscriberCounts.map((n) => ({ key: String(n), label: `${n} sub`, subscribers: n })),
	...fixedRates.map((rate) => ({
		key: `${fixedSubs}@${rate}`,
		label: `${fixedSubs} sub @ ${rate} msg/s`,
		subscribers: fixedSubs,
		fixedRate: rate,
	})),
];

export interface Failures {
	failed: number;
	byKind: Outcomes["failures"];
}

export interface ThroughputSample {
	messagesPerSecond: number;
	/** Requests (or publish frames) per second. */
	requestsPerSecond: number;
	failures: Failures;
	cpu: CpuShare;
	/** Time tidings' background retention needed afterwards, waited out before the next sample. */
	settleMs: number;
}

export interface ThroughputResult {
	/** Mean over the samples. */
	messagesPerSecond: number;
	requestsPerSecond: number;
	minMessagesPerSecond: number;
	maxMessagesPerSecond: number;
	failed: number;
	cpu: CpuShare;
	samples: ThroughputSample[];
}

export interface LatencyResult {
	subscribers: number;
	targetRatePerSecond: number;
	achievedRatePerSecond: number;
	published: number;
	skippedSends: number;
	failures: Failures;
	expectedDeliveries: number;
	deliveries: number;
	p50Ms: number;
	p99Ms: number;
	meanMs: number;
	maxMs: number;
	/** Time to open every subscriber and get its `ready` frame. */
	openMs: number;
	cpu: CpuShare;
	settleMs: number;
}

export type ImplResults = Partial<Record<ThroughputKind, ThroughputResult>> & {
	latency: Record<string, LatencyResult>;
};

const BATCH_BODY = JSON.stringify({
	messages: Array.from({ length: CONFIG.batchSize }, (_, i) => ({ data: { i } })),
});

function failuresOf(o: Outcomes): Failures {
	return { failed: o.failed, byKind: o.failures };
}

function mean(xs: number[]): number {
	return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function meanOrNull(xs: (number | null)[]): number | null {
	return xs.some((x) => x === null) ? null : mean(xs as number[]);
}

function aggregate(samples: ThroughputSample[]): ThroughputResult {
	const rates = samples.map((s) => s.messagesPerSecond);
	return {
		messagesPerSecond: round(mean(rates), 0),
		requestsPerSecond: round(mean(samples.map((s) => s.requestsPerSecond)), 0),
		minMessagesPerSecond: Math.min(...rates),
		maxMessagesPerSecond: Math.max(...rates),
		failed: samples.reduce((n, s) => n + s.failures.failed, 0),
		cpu: {
			workerd: meanOrNull(samples.map((s) => s.cpu.workerd)),
			loadGenerator: mean(samples.map((s) => s.cpu.loadGenerator)),
			steal: meanOrNull(samples.map((s) => s.cpu.steal)),
		},
		samples,
	};
}

export class Bench {
	readonly results: Record<Impl, ImplResults> = { tidings: { latency: {} }, ceiling: { latency: {} } };
	readonly errors: string[] = [];
	readonly #runId = Date.now().toString(36);
	readonly #samples = new Map<string, ThroughputSample[]>();

	constructor(
		readonly urls: Record<Impl, string>,
		readonly workerdPids: number[],
	) {}

	/** Runs one measurement; a failure is recorded and the run goes on. */
	async step(label: string, fn: () => Promise<void>): Promise<void> {
		process.stdout.write(`  ${label} … `);
		const t = Date.now();
		try {
			await fn();
			process.stdout.write(`${((Date.now() - t) / 1000).toFixed(1)} s\n`);
		} catch (err) {
			const message = err instanceof Error ? err.message : String(err);
			this.errors.push(`${label}: ${message}`);
			process.stdout.write(`FAILED: ${message}\n`);
		}
	}

	#topic(impl: Impl, row: string): string {
		return `bench.${this.#runId}.${impl}.${row}`;
	}

	#path(topic: string): string {
		return `/v1/topics/${topic}/messages`;
	}

	/**
	 * A fresh keep-alive pool per row: connections an earlier row left idle
	 * can be closed by workerd just as they are reused (ECONNRESET).
	 */
	async #withClient<T>(impl: Impl, fn: (client: HttpClient) => Promise<T>): Promise<T> {
		const client = new HttpClient(this.urls[impl], CONFIG.maxInFlight);
		try {
			return await fn(client);
		} finally {
			client.close();
		}
	}

	/**
	 * Waits until tidings has trimmed the topic back to its retention count, so
	 * its background work does not land in the next sample (which may be the
	 * ceiling's: both run on workerd's one JavaScript thread). The ceiling
	 * keeps everything and has nothing to wait for.
	 */
	async #settle(impl: Impl, topic: string): Promise<number> {
		if (impl !== "tidings") return 0;
		const t0 = performance.now();
		return this.#withClient(impl, async (client) => {
			while (performance.now() - t0 < CONFIG.settleMaxMs) {
				const reply = await client.request("GET", `/v1/topics/${topic}`);
				if (reply.status !== 200) throw new Error(`stats answered ${reply.status}: ${reply.body.slice(0, 200)}`);
				const stats = JSON.parse(reply.body) as { retained: number; settings: { max_messages: number } };
				if (stats.retained <= stats.settings.max_messages) return round(performance.now() - t0, 0);
				await sleep(100);
			}
			throw new Error(`retention did not catch up within ${CONFIG.settleMaxMs} ms`);
		});
	}

	async #runThroughput(kind: ThroughputKind, impl: Impl, topic: string, warmupMs: number, durationMs: number) {
		if (kind === "wsPublish") {
			const r = await wsPublish(wsUrl(this.urls[impl], topic), {
				window: CONFIG.wsWindow,
				warmupMs,
				durationMs,
				timeoutMs: 10_000,
			});
			const byKind: Failures["byKind"] = r.sampleError ? { error: { count: r.errors, sample: r.sampleError } } : {};
			return { requestsPerSecond: r.publishesPerSecond, perRequest: 1, failures: { failed: r.errors, byKind } };
		}
		const batch = kind === "httpBatch";
		const r = await this.#withClient(impl, (client) =>
			closedLoop(client, this.#path(topic), {
				concurrency: batch ? CONFIG.batchConcurrency : CONFIG.singleConcurrency,
				warmupMs,
				durationMs,
				body: batch ? () => BATCH_BODY : (i) => `{"data":{"i":${i}}}`,
			}),
		);
		return {
			requestsPerSecond: r.requestsPerSecond,
			perRequest: batch ? CONFIG.batchSize : 1,
			failures: failuresOf(r.outcomes),
		};
	}

	/** One sample of a throughput row: warm-up, then a measured window, on a fresh topic. */
	async throughput(kind: ThroughputKind, impl: Impl, repeat: number): Promise<void> {
		const topic = this.#topic(impl, `${kind}-${repeat}`);
		const end = cpuSpan(this.workerdPids);
		const r = await this.#runThroughput(kind, impl, topic, CONFIG.warmupMs, CONFIG.durationMs);
		const cpu = end();
		const key = `${impl}/${kind}`;
		const samples = this.#samples.get(key) ?? [];
		samples.push({
			messagesPerSecond: round(r.requestsPerSecond * r.perRequest, 0),
			requestsPerSecond: round(r.requestsPerSecond, 0),
			failures: r.failures,
			cpu,
			settleMs: await this.#settle(impl, topic),
		});
		this.#samples.set(key, samples);
		this.results[impl][kind] = aggregate(samples);
	}

	/**
	 * Before the first row: JIT, isolate and connection warm-up on throwaway
	 * topics, so the implementation measured first does not pay for it.
	 */
	async warm(impl: Impl): Promise<void> {
		for (const kind of Object.keys(THROUGHPUT_ROWS) as ThroughputKind[]) {
			const topic = this.#topic(impl, `warm-${kind}`);
			await this.#runThroughput(kind, impl, topic, 0, CONFIG.warmupMs);
			await this.#settle(impl, topic);
		}
	}

	/**
	 * The publish rate of the latency rows: half the smaller single-publish
	 * maximum, the same for both, so both fan out the same number of frames
	 * and the ratio compares like with like.
	 */
	latencyRate(): number {
		const smaller = Math.min(...IMPLS.map((impl) => this.results[impl].httpSingle?.messagesPerSecond ?? 0));
		if (smaller <= 0) throw new Error("no single-publish maximum to derive the rate from");
		return Math.round(smaller / 2);
	}

	/** Publish→deliver latency with `row.subscribers` sockets while publishing over HTTP at `rate`. */
	async latency(impl: Impl, row: LatencyRow, rate: number): Promise<void> {
		const { subscribers } = row;
		const topic = this.#topic(impl, `latency-${row.key.replace("@", "at")}`);
		const subs = new Subscribers();
		try {
			const t0 = performance.now();
			await subs.open(wsUrl(this.urls[impl], topic), subscribers, CONFIG.openChunk);
			const openMs = round(performance.now() - t0, 0);
			const end = cpuSpan(this.workerdPids);
			const r = await this.#withClient(impl, (client) =>
				fixedRate(client, this.#path(topic), {
					ratePerSecond: rate,
					durationMs: CONFIG.latencyMs,
					maxInFlight: CONFIG.maxInFlight,
					body: (sentAt) => `{"data":{"t":${sentAt}}}`,
				}),
			);
			// CPU over the publish window only: the drain after it is mostly waiting.
			const cpu = end();
			const expected = r.outcomes.ok * subscribers;
			await subs.drain(expected, CONFIG.drainIdleMs, CONFIG.drainMaxMs);
			if (subs.unparsed > 0) throw new Error(`${subs.unparsed} message frames without a send time`);
			const h = subs.histogram;
			this.results[impl].latency[row.key] = {
				subscribers,
				targetRatePerSecond: rate,
				achievedRatePerSecond: round(r.achievedPerSecond, 0),
				published: r.outcomes.ok,
				skippedSends: r.skipped,
				failures: failuresOf(r.outcomes),
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
		const result = this.results[impl].latency[row.key];
		if (result) result.settleMs = await this.#settle(impl, topic);
	}
}
