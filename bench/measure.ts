/**
 * The measurements: every row drives both implementations through the same
 * wire protocol, each on a topic of its own (so a fresh Durable Object);
 * the consumer group rows drive tidings alone, as the ceiling has no groups.
 * @module
 */
import { setTimeout as sleep } from "node:timers/promises";
import { orderSchema } from "../examples/typed-topic/orders.js";
import type { MemoryResult, StarvationResult } from "./backlog.js";
import { CONFIG, IMPLS, type Impl } from "./config.js";
import { type CpuShare, cpuSpan } from "./lib/cpu.js";
import { closedLoop, fixedRate, HttpClient, type Outcomes } from "./lib/http.js";
import { Histogram, round } from "./lib/stats.js";
import { GroupConsumers, memberUrl, Subscribers, wsPublish, wsUrl } from "./lib/ws.js";
import type { StreamsResult } from "./streams.js";

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

/** A consumer group row: `consumers` members, each holding up to `prefetch` unacked messages. */
export interface GroupRow {
	/** Its key in results.json: "8x32". */
	key: string;
	/** "8 consumers, prefetch 32". */
	label: string;
	consumers: number;
	prefetch: number;
}

export const GROUP_ROWS: GroupRow[] = CONFIG.groups.consumers.flatMap((consumers) =>
	CONFIG.groups.prefetch.map((prefetch) => ({
		key: `${consumers}x${prefetch}`,
		label: `${consumers} consumer${consumers === 1 ? "" : "s"}, prefetch ${prefetch}`,
		consumers,
		prefetch,
	})),
);

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
	/** HTTP rows: the p99 round trip of the requests answered in the window, in ms. */
	p99Ms?: number;
}

/** msg/s are messages received and acked by the members; requests are publish batches. */
export interface GroupSample extends ThroughputSample {
	duplicates: number;
	redelivered: number;
	/** Each member's part of the acks in the window. */
	shares: number[];
}

export interface ThroughputResult<S extends ThroughputSample = ThroughputSample> {
	/** Mean over the samples. */
	messagesPerSecond: number;
	requestsPerSecond: number;
	minMessagesPerSecond: number;
	maxMessagesPerSecond: number;
	failed: number;
	cpu: CpuShare;
	/** HTTP rows: the worst sample's p99 round trip, in ms. */
	p99Ms?: number;
	samples: S[];
}

export interface GroupResult extends ThroughputResult<GroupSample> {
	consumers: number;
	prefetch: number;
	/** Summed over the samples. */
	duplicates: number;
	redelivered: number;
	/** The smallest and largest member share over every sample. */
	minShare: number;
	maxShare: number;
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
	/** Every sample's p99, when the row ran more than once; the fields above are the median sample's. */
	p99Samples?: number[];
}

export type ImplResults = Partial<Record<ThroughputKind, ThroughputResult>> & {
	latency: Record<string, LatencyResult>;
	/** By group row key; tidings only. */
	groups?: Record<string, GroupResult>;
	/** Publishing while a backlog drains; tidings only. */
	starvation?: StarvationResult;
	/** Durable Streams rows; tidings only. */
	streams?: StreamsResult;
	/** workerd's RSS with a backlog pending and a thousand members; tidings only. */
	memory?: MemoryResult;
	/** Single publishes of an order, to a topic with the order schema and to one without; tidings only. */
	typed?: Partial<Record<"typed" | "untyped", ThroughputResult>>;
};

const BATCH_BODY = JSON.stringify({
	messages: Array.from({ length: CONFIG.batchSize }, (_, i) => ({ data: { i } })),
});

/** An order that matches examples/typed-topic's schema (about 400 bytes), its id varied per request. */
function orderBody(i: number): string {
	return JSON.stringify({
		data: {
			id: `ord_${i.toString(36).padStart(8, "0")}`,
			customer: { id: "cus_42", email: "ada@example.com", name: "Ada Lovelace" },
			currency: "EUR",
			lines: [
				{ sku: "MUG-01", qty: 2, unit_cents: 1250 },
				{ sku: "TEA-GREEN-250", qty: 1, unit_cents: 899 },
				{ sku: "SPOON-3", qty: 4, unit_cents: 150 },
			],
			total_cents: 3999,
			coupon: null,
			shipping: { country: "DE", postcode: "10115", express: false },
			placed_at: "2026-11-30T12:00:00Z",
		},
	});
}

const GROUP = "bench";
const GROUP_SETTINGS = JSON.stringify({ start: "latest", retry_delay_ms: 0 });

function failuresOf(o: Outcomes): Failures {
	return { failed: o.failed, byKind: o.failures };
}

export function sum(xs: number[]): number {
	return xs.reduce((a, b) => a + b, 0);
}

export function mean(xs: number[]): number {
	return sum(xs) / xs.length;
}

function meanOrNull(xs: (number | null)[]): number | null {
	return xs.some((x) => x === null) ? null : mean(xs as number[]);
}

export function aggregate<S extends ThroughputSample>(samples: S[]): ThroughputResult<S> {
	const rates = samples.map((s) => s.messagesPerSecond);
	const p99s = samples.flatMap((s) => (s.p99Ms === undefined ? [] : [s.p99Ms]));
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
		...(p99s.length > 0 ? { p99Ms: Math.max(...p99s) } : {}),
		samples,
	};
}

export class Bench {
	readonly results: Record<Impl, ImplResults> = { tidings: { latency: {}, groups: {} }, ceiling: { latency: {} } };
	readonly errors: string[] = [];
	readonly runId = Date.now().toString(36);
	readonly #samples = new Map<string, ThroughputSample[]>();
	readonly #latencySamples = new Map<string, LatencyResult[]>();

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

	topic(impl: Impl, row: string): string {
		return `bench.${this.runId}.${impl}.${row}`;
	}

	path(topic: string): string {
		return `/v1/topics/${topic}/messages`;
	}

	/**
	 * A fresh keep-alive pool per row: connections an earlier row left idle
	 * can be closed by workerd just as they are reused (ECONNRESET).
	 */
	async withClient<T>(impl: Impl, fn: (client: HttpClient) => Promise<T>): Promise<T> {
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
	async settle(impl: Impl, topic: string): Promise<number> {
		if (impl !== "tidings") return 0;
		const t0 = performance.now();
		return this.withClient(impl, async (client) => {
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
		const latency = new Histogram();
		const r = await this.withClient(impl, (client) =>
			closedLoop(client, this.path(topic), {
				concurrency: batch ? CONFIG.batchConcurrency : CONFIG.singleConcurrency,
				warmupMs,
				durationMs,
				body: batch ? () => BATCH_BODY : (i) => `{"data":{"i":${i}}}`,
				latency,
			}),
		);
		return {
			requestsPerSecond: r.requestsPerSecond,
			perRequest: batch ? CONFIG.batchSize : 1,
			failures: failuresOf(r.outcomes),
			p99Ms: round(latency.quantile(0.99)),
		};
	}

	/** One sample of a throughput row: warm-up, then a measured window, on a fresh topic. */
	async throughput(kind: ThroughputKind, impl: Impl, repeat: number): Promise<void> {
		const topic = this.topic(impl, `${kind}-${repeat}`);
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
			settleMs: await this.settle(impl, topic),
			...("p99Ms" in r && !Number.isNaN(r.p99Ms) ? { p99Ms: r.p99Ms } : {}),
		});
		this.#samples.set(key, samples);
		this.results[impl][kind] = aggregate(samples);
	}

	/**
	 * One sample of the typed row: HTTP single publishes of an order, on a
	 * fresh topic that has the order schema (`typed`) or none; the ratio of
	 * the two is what the schema check costs.
	 */
	async typed(typed: boolean, repeat: number): Promise<void> {
		const name = typed ? "typed" : "untyped";
		const topic = this.topic("tidings", `${name}-${repeat}`);
		if (typed) {
			const put = await this.withClient("tidings", (client) =>
				client.request("PUT", `/v1/topics/${topic}`, JSON.stringify({ schema: orderSchema })),
			);
			if (put.status !== 200) throw new Error(`schema PUT answered ${put.status}: ${put.body.slice(0, 200)}`);
		}
		const end = cpuSpan(this.workerdPids);
		const latency = new Histogram();
		const r = await this.withClient("tidings", (client) =>
			closedLoop(client, this.path(topic), {
				concurrency: CONFIG.singleConcurrency,
				warmupMs: CONFIG.warmupMs,
				durationMs: CONFIG.durationMs,
				body: orderBody,
				latency,
			}),
		);
		const cpu = end();
		const key = `tidings/${name}`;
		const samples = this.#samples.get(key) ?? [];
		samples.push({
			messagesPerSecond: round(r.requestsPerSecond, 0),
			requestsPerSecond: round(r.requestsPerSecond, 0),
			failures: failuresOf(r.outcomes),
			cpu,
			settleMs: await this.settle("tidings", topic),
			p99Ms: round(latency.quantile(0.99)),
		});
		this.#samples.set(key, samples);
		this.results.tidings.typed = { ...this.results.tidings.typed, [name]: aggregate(samples) };
	}

	/**
	 * One sample of a group row on a fresh topic and group: the members ack
	 * each message on receipt while HTTP batches publish at full speed.
	 */
	async group(row: GroupRow, repeat: number): Promise<void> {
		const topic = this.topic("tidings", `group-${row.key}-${repeat}`);
		const consumers = new GroupConsumers();
		let sample: GroupSample;
		try {
			const created = await this.withClient("tidings", (client) =>
				client.request("PUT", `/v1/topics/${topic}/groups/${GROUP}`, GROUP_SETTINGS),
			);
			if (created.status !== 201)
				throw new Error(`group PUT answered ${created.status}: ${created.body.slice(0, 200)}`);
			const url = memberUrl(this.urls.tidings, topic, GROUP, row.prefetch);
			await consumers.open(url, row.consumers);
			const end = cpuSpan(this.workerdPids);
			consumers.window(CONFIG.warmupMs, CONFIG.durationMs);
			const r = await this.withClient("tidings", (client) =>
				closedLoop(client, this.path(topic), {
					concurrency: CONFIG.groups.publishConcurrency,
					warmupMs: CONFIG.warmupMs,
					durationMs: CONFIG.durationMs,
					body: () => BATCH_BODY,
				}),
			);
			const cpu = end();
			const failures = failuresOf(r.outcomes);
			if (consumers.errors > 0) {
				failures.failed += consumers.errors;
				failures.byKind["error frame"] = { count: consumers.errors, sample: consumers.sampleError ?? "" };
			}
			const acked = sum(consumers.acked);
			sample = {
				messagesPerSecond: round(acked / (CONFIG.durationMs / 1000), 0),
				requestsPerSecond: round(r.requestsPerSecond, 0),
				failures,
				cpu,
				settleMs: 0,
				duplicates: consumers.duplicates,
				redelivered: consumers.redelivered,
				shares: consumers.acked.map((n) => round(n / Math.max(1, acked), 4)),
			};
		} finally {
			await consumers.close();
		}
		sample.settleMs = await this.settle("tidings", topic);
		const samples = [...(this.results.tidings.groups?.[row.key]?.samples ?? []), sample];
		const shares = samples.flatMap((s) => s.shares);
		const result: GroupResult = {
			...aggregate(samples),
			consumers: row.consumers,
			prefetch: row.prefetch,
			duplicates: sum(samples.map((s) => s.duplicates)),
			redelivered: sum(samples.map((s) => s.redelivered)),
			minShare: Math.min(...shares),
			maxShare: Math.max(...shares),
		};
		this.results.tidings.groups = { ...this.results.tidings.groups, [row.key]: result };
	}

	/**
	 * Before the first row: JIT, isolate and connection warm-up on throwaway
	 * topics, so the implementation measured first does not pay for it.
	 */
	async warm(impl: Impl): Promise<void> {
		for (const kind of Object.keys(THROUGHPUT_ROWS) as ThroughputKind[]) {
			const topic = this.topic(impl, `warm-${kind}`);
			await this.#runThroughput(kind, impl, topic, 0, CONFIG.warmupMs);
			await this.settle(impl, topic);
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
	async latency(impl: Impl, row: LatencyRow, rate: number, repeat = 0): Promise<void> {
		const { subscribers } = row;
		const topic = this.topic(impl, `latency-${row.key.replace("@", "at")}-${repeat}`);
		const subs = new Subscribers();
		let sample: LatencyResult;
		try {
			const t0 = performance.now();
			// Subscribers ask for packing, as the client library does; the ceiling ignores the query and sends one frame per message.
			await subs.open(`${wsUrl(this.urls[impl], topic)}?pack=1`, subscribers, CONFIG.openChunk);
			const openMs = round(performance.now() - t0, 0);
			const end = cpuSpan(this.workerdPids);
			const r = await this.withClient(impl, (client) =>
				fixedRate(client, this.path(topic), {
					ratePerSecond: rate,
					// The fixed-rate rows hold a p99 ratio: a longer window puts more publishes behind their tail.
					durationMs: row.fixedRate === undefined ? CONFIG.latencyMs : CONFIG.fixedRateLatency.durationMs,
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
			sample = {
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
		sample.settleMs = await this.settle(impl, topic);
		// A p99 of one 3 s sample is the worst few publishes: a single stall of the host decides it.
		// With repeats, the row reports the sample with the median p99, and lists them all.
		const key = `${impl}/latency/${row.key}`;
		const samples = [...(this.#latencySamples.get(key) ?? []), sample];
		this.#latencySamples.set(key, samples);
		const byP99 = [...samples].sort((a, b) => a.p99Ms - b.p99Ms);
		const median = byP99[Math.floor((byP99.length - 1) / 2)] as LatencyResult;
		this.results[impl].latency[row.key] =
			samples.length > 1 ? { ...median, p99Samples: samples.map((x) => x.p99Ms) } : median;
	}
}
