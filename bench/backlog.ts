/**
 * The rows that need a backlog (tidings only): publishing while members
 * drain one (no starvation), and workerd's memory while one sits pending
 * with a thousand members connected.
 * @module
 */
import { setTimeout as sleep } from "node:timers/promises";
import { CONFIG } from "./config.js";
import { type CpuShare, cpuSpan } from "./lib/cpu.js";
import { closedLoop, type HttpClient } from "./lib/http.js";
import { rssMiB } from "./lib/memory.js";
import { Histogram, round } from "./lib/stats.js";
import { GroupConsumers, memberUrl } from "./lib/ws.js";
import { type Bench, type Failures, mean } from "./measure.js";

const GROUP = "bench";

export interface StarvationSample {
	/** Single publishes answered 201 inside the window, per second. */
	publishPerSecond: number;
	p50Ms: number;
	/** Over the requests answered in the window and those still unanswered at its end (counted at their wait so far). */
	p99Ms: number;
	/** True when the p99 falls on a request still unanswered at the end: the true p99 is at least this. */
	p99AtLeast: boolean;
	/** Requests still unanswered when the window closed. */
	unansweredAtEnd: number;
	/** Messages the members received and acked inside the window, per second. */
	drainPerSecond: number;
	/** Backlog messages not yet delivered when the window ended; 0 means it ran dry inside the window. */
	backlogLeft: number;
	/** Time to publish the backlog (HTTP batches, before any member connects). */
	backlogPublishMs: number;
	failures: Failures;
	cpu: CpuShare;
}

export interface StarvationResult {
	publishPerSecond: number;
	/** The worst sample's p99. */
	p99Ms: number;
	p99AtLeast: boolean;
	p50Ms: number;
	drainPerSecond: number;
	/** The idle HTTP single row's mean of this run, and the ratio to it. */
	idlePerSecond: number | undefined;
	/** The idle HTTP single row's worst p99 round trip. */
	idleP99Ms: number | undefined;
	ratio: number | undefined;
	minBacklogLeft: number;
	samples: StarvationSample[];
}

export interface MemoryResult {
	pending: number;
	members: number;
	prefetch: number;
	/** workerd's VmRSS (MiB) before the topic exists, after the backlog is in, and with the members holding their leases. */
	rssBeforeMiB: number | undefined;
	rssBacklogMiB: number | undefined;
	rssMembersMiB: number | undefined;
	deltaMiB: number | undefined;
	/** The group's counts as the topic reported them, to show the state measured. */
	counts: Record<string, number> | undefined;
	/** Time to open every member socket. */
	openMs: number;
	/** Deliveries the members got (one each at prefetch 1). */
	delivered: number;
}

async function put(client: HttpClient, path: string, body: unknown): Promise<void> {
	const reply = await client.request("PUT", path, JSON.stringify(body));
	if (reply.status < 200 || reply.status > 299) throw new Error(`PUT ${path} answered ${reply.status}: ${reply.body}`);
}

const BATCH_BODY = JSON.stringify({
	messages: Array.from({ length: CONFIG.batchSize }, (_, i) => ({ data: { i } })),
});

/**
 * A topic holding `count` messages its group has not taken yet: retention
 * raised to keep them all, the group created before the first publish so it
 * owes every one, then HTTP batches on the batch row's lanes.
 */
async function backlog(
	bench: Bench,
	topic: string,
	count: number,
	maxMessages: number,
	group: Record<string, unknown>,
): Promise<number> {
	return bench.withClient("tidings", async (client) => {
		await put(client, `/v1/topics/${topic}`, { max_messages: maxMessages });
		await put(client, `/v1/topics/${topic}/groups/${GROUP}`, { start: "earliest", ...group });
		const t0 = performance.now();
		let next = 0;
		const batches = Math.ceil(count / CONFIG.batchSize);
		const lane = async () => {
			while (next < batches) {
				next++;
				const reply = await client.post(bench.path(topic), BATCH_BODY);
				if (reply.status !== 201)
					throw new Error(`backlog publish answered ${reply.status}: ${reply.body.slice(0, 200)}`);
			}
		};
		await Promise.all(Array.from({ length: CONFIG.batchConcurrency }, lane));
		return round(performance.now() - t0, 0);
	});
}

/**
 * One sample of the no-starvation row: members connect to a topic holding
 * the backlog and ack on receipt while single publishes run the HTTP single
 * row's closed loop; the publish rate, its latency, and the drain are measured
 * over the same window.
 */
export async function starvation(bench: Bench, repeat: number): Promise<StarvationSample> {
	const { backlog: count, consumers, prefetch, maxMessages } = CONFIG.starvation;
	const topic = bench.topic("tidings", `starvation-${repeat}`);
	const backlogPublishMs = await backlog(bench, topic, count, maxMessages, { retry_delay_ms: 0 });
	const members = new GroupConsumers();
	let sample: StarvationSample;
	try {
		await members.open(memberUrl(bench.urls.tidings, topic, GROUP, prefetch), consumers);
		const latency = new Histogram();
		const end = cpuSpan(bench.workerdPids);
		members.window(CONFIG.warmupMs, CONFIG.durationMs);
		const r = await bench.withClient("tidings", (client) =>
			closedLoop(client, bench.path(topic), {
				concurrency: CONFIG.singleConcurrency,
				warmupMs: CONFIG.warmupMs,
				durationMs: CONFIG.durationMs,
				body: (i) => `{"data":{"i":${i}}}`,
				latency,
			}),
		);
		const cpu = end();
		const failures: Failures = { failed: r.outcomes.failed, byKind: r.outcomes.failures };
		if (members.errors > 0) {
			failures.failed += members.errors;
			failures.byKind["error frame"] = { count: members.errors, sample: members.sampleError ?? "" };
		}
		const acked = members.acked.reduce((a, b) => a + b, 0);
		for (const waited of r.unansweredAtEnd) latency.record(waited);
		const p99 = latency.quantile(0.99);
		sample = {
			publishPerSecond: round(r.requestsPerSecond, 0),
			p50Ms: round(latency.quantile(0.5)),
			p99Ms: round(p99),
			// A wait so far above the p99 cannot move it; one at or below it could, once answered.
			p99AtLeast: r.unansweredAtEnd.some((waited) => waited <= p99),
			unansweredAtEnd: r.unansweredAtEnd.length,
			drainPerSecond: round(acked / (CONFIG.durationMs / 1000), 0),
			// Delivery is in seq order, so the backlog goes first: what arrived before the end came from it.
			backlogLeft: Math.max(0, count - members.received),
			backlogPublishMs,
			failures,
			cpu,
		};
	} finally {
		await members.close();
	}
	await bench.settle("tidings", topic);
	return sample;
}

export function starvationResult(
	samples: StarvationSample[],
	idle: { messagesPerSecond: number; p99Ms?: number } | undefined,
): StarvationResult {
	const idlePerSecond = idle?.messagesPerSecond;
	const publishPerSecond = round(mean(samples.map((s) => s.publishPerSecond)), 0);
	return {
		publishPerSecond,
		p99Ms: Math.max(...samples.map((s) => s.p99Ms)),
		p99AtLeast: samples.some((s) => s.p99AtLeast),
		p50Ms: round(mean(samples.map((s) => s.p50Ms))),
		drainPerSecond: round(mean(samples.map((s) => s.drainPerSecond)), 0),
		idlePerSecond,
		idleP99Ms: idle?.p99Ms,
		ratio: idlePerSecond ? round(publishPerSecond / idlePerSecond) : undefined,
		minBacklogLeft: Math.min(...samples.map((s) => s.backlogLeft)),
		samples,
	};
}

/**
 * The memory row: workerd's RSS before the topic exists, with the backlog
 * in, and with a thousand members connected, each holding the one message
 * its prefetch allows and never acking (a long ack timeout keeps the leases
 * still), so the object holds the pending set and every member at once.
 */
export async function memory(bench: Bench): Promise<MemoryResult> {
	const { pending, members: n, prefetch, maxMessages } = CONFIG.memory;
	const pids = bench.workerdPids;
	const rssBeforeMiB = rssMiB(pids);
	const topic = bench.topic("tidings", "memory");
	await backlog(bench, topic, pending, maxMessages, { ack_timeout_ms: 10 * 60_000 });
	await sleep(1_000);
	const rssBacklogMiB = rssMiB(pids);
	const members = new GroupConsumers({ ack: false });
	try {
		const t0 = performance.now();
		await members.open(memberUrl(bench.urls.tidings, topic, GROUP, prefetch), n, 15_000, CONFIG.openChunk);
		const openMs = round(performance.now() - t0, 0);
		const deadline = performance.now() + 15_000;
		while (members.received < n * prefetch && performance.now() < deadline) await sleep(50);
		// Let the object finish what the last handshakes started before reading.
		await sleep(1_000);
		const rssMembersMiB = rssMiB(pids);
		const counts = await bench.withClient("tidings", async (client) => {
			const reply = await client.request("GET", `/v1/topics/${topic}`);
			if (reply.status !== 200) return undefined;
			const stats = JSON.parse(reply.body) as { groups?: { group: string; counts?: Record<string, number> }[] };
			return stats.groups?.find((g) => g.group === GROUP)?.counts;
		});
		if (members.errors > 0) throw new Error(`${members.errors} error frames: ${members.sampleError}`);
		const delta = (a: number | undefined, b: number | undefined) =>
			a === undefined || b === undefined ? undefined : round(a - b, 1);
		const r = (x: number | undefined) => (x === undefined ? undefined : round(x, 1));
		return {
			pending,
			members: n,
			prefetch,
			rssBeforeMiB: r(rssBeforeMiB),
			rssBacklogMiB: r(rssBacklogMiB),
			rssMembersMiB: r(rssMembersMiB),
			deltaMiB: delta(rssMembersMiB, rssBeforeMiB),
			counts,
			openMs,
			delivered: members.received,
		};
	} finally {
		await members.close();
	}
}
