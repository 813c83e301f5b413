/**
 * The peer rows: BullMQ on a local Redis, driven the way the tidings rows
 * are driven (the same lanes, batch size, warm-up, window and repeats), so
 * each ratio compares like with like. BullMQ runs in this process, as the
 * tidings members and publishers do: its client work shares the cores with
 * the load generator, as tidings' sockets do.
 * @module
 */
import { performance } from "node:perf_hooks";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { CONFIG } from "../config.js";
import { cpuSpan } from "../lib/cpu.js";
import { round } from "../lib/stats.js";
import type { Failures, ThroughputSample } from "../measure.js";
import type { RedisServer } from "./redis.js";

/** A processing row: `workers` Worker instances (each its own connections), each running `concurrency` jobs at once. */
export interface PeerProcessRow {
	/** Its key in results.json, matching the tidings group row it is compared with: "8x32". */
	key: string;
	label: string;
	workers: number;
	concurrency: number;
}

export const PEER_PROCESS_ROWS: PeerProcessRow[] = CONFIG.peer.process.map(([workers, concurrency]) => ({
	key: `${workers}x${concurrency}`,
	label: `${workers} worker${workers === 1 ? "" : "s"} × concurrency ${concurrency}`,
	workers,
	concurrency,
}));

export type PeerEnqueueKind = "enqueueSingle" | "enqueueBulk";

export const PEER_ENQUEUE_ROWS: Record<PeerEnqueueKind, string> = {
	enqueueSingle: `add one by one, ${CONFIG.singleConcurrency} in flight`,
	enqueueBulk: `addBulk of ${CONFIG.batchSize}, ${CONFIG.batchConcurrency} in flight`,
};

/** Completed jobs are dropped at once: the tidings members' acks keep nothing either, and Redis memory stays flat. */
const JOB_OPTIONS = { removeOnComplete: true, removeOnFail: true } as const;

const BULK = Array.from({ length: CONFIG.batchSize }, (_, i) => ({ name: "j", data: { i }, opts: JOB_OPTIONS }));

/** Like the HTTP closed loop: `concurrency` lanes each keep one call in flight; calls that finish inside the window count. */
async function lanes(
	concurrency: number,
	warmupMs: number,
	durationMs: number,
	call: (i: number) => Promise<unknown>,
): Promise<{ perSecond: number; failures: Failures }> {
	const start = performance.now() + warmupMs;
	const end = start + durationMs;
	const failures: Failures = { failed: 0, byKind: {} };
	let measured = 0;
	let i = 0;
	const lane = async () => {
		while (performance.now() < end) {
			try {
				await call(i++);
				const at = performance.now();
				if (at >= start && at <= end) measured++;
			} catch (err) {
				failures.failed++;
				const kind = failures.byKind.error;
				if (kind) kind.count++;
				else failures.byKind.error = { count: 1, sample: String(err).slice(0, 200) };
			}
		}
	};
	await Promise.all(Array.from({ length: concurrency }, lane));
	return { perSecond: measured / (durationMs / 1000), failures };
}

/** A processing sample also keeps each Worker's share of the completions, as the tidings group rows do. */
export interface PeerProcessSample extends ThroughputSample {
	shares: number[];
}

export class BullBench {
	#queues = 0;

	constructor(
		readonly redis: RedisServer,
		readonly runId: string,
	) {}

	get #connection() {
		return { host: "127.0.0.1", port: this.redis.port };
	}

	/** A fresh queue name per sample, so no sample sees another's jobs. */
	#name(row: string): string {
		return `bench-${this.runId}-${row}-${this.#queues++}`;
	}

	#queue(name: string): Queue {
		return new Queue(name, { connection: this.#connection, defaultJobOptions: JOB_OPTIONS });
	}

	/**
	 * Empties Redis between samples: a processing row leaves the jobs its
	 * producers added beyond what the workers took, and the next sample should
	 * not pay for them (tidings' rows each get a fresh object for the same reason).
	 */
	async flush(): Promise<void> {
		const client = new Redis({ ...this.#connection, lazyConnect: true, maxRetriesPerRequest: 1 });
		try {
			await client.connect();
			await client.flushall();
		} finally {
			client.disconnect();
		}
	}

	/** One sample of an enqueue row: one Queue (one connection, as an application would hold), `concurrency` calls in flight. */
	async enqueue(kind: PeerEnqueueKind, warmupMs: number = CONFIG.warmupMs, durationMs: number = CONFIG.durationMs) {
		const queue = this.#queue(this.#name(kind));
		try {
			await queue.waitUntilReady();
			const end = cpuSpan([this.redis.pid]);
			const bulk = kind === "enqueueBulk";
			const r = await lanes(
				bulk ? CONFIG.batchConcurrency : CONFIG.singleConcurrency,
				warmupMs,
				durationMs,
				bulk ? () => queue.addBulk(BULK) : (i) => queue.add("j", { i }),
			);
			const cpu = end();
			const perRequest = bulk ? CONFIG.batchSize : 1;
			const sample: ThroughputSample = {
				messagesPerSecond: round(r.perSecond * perRequest, 0),
				requestsPerSecond: round(r.perSecond, 0),
				failures: r.failures,
				cpu,
				settleMs: 0,
			};
			return sample;
		} finally {
			await queue.close();
			await this.flush();
		}
	}

	/**
	 * One sample of a processing row on a fresh queue: the Workers complete
	 * each job at once while producer lanes add bulks of 100 throughout,
	 * exactly as the tidings group rows publish. Counts jobs completed (moved
	 * to completed in Redis, so acknowledged) inside the window.
	 */
	async process(row: PeerProcessRow): Promise<PeerProcessSample> {
		const name = this.#name(`process-${row.key}`);
		const queue = this.#queue(name);
		const completed = Array.from({ length: row.workers }, () => 0);
		let start = Number.POSITIVE_INFINITY;
		let end = Number.POSITIVE_INFINITY;
		const workers = Array.from({ length: row.workers }, (_, w) => {
			// Each Worker gets its own connections (BullMQ opens a blocking one beside it), as separate processes would.
			const worker = new Worker(name, async () => undefined, {
				connection: this.#connection,
				concurrency: row.concurrency,
				removeOnComplete: { count: 0 },
				removeOnFail: { count: 0 },
			});
			worker.on("completed", () => {
				const now = performance.now();
				if (now >= start && now <= end) completed[w] = (completed[w] ?? 0) + 1;
			});
			return worker;
		});
		let failedJobs = 0;
		let sampleFailure = "";
		for (const worker of workers)
			worker.on("failed", (_job, err) => {
				failedJobs++;
				sampleFailure ||= String(err).slice(0, 200);
			});
		try {
			await Promise.all([queue.waitUntilReady(), ...workers.map((w) => w.waitUntilReady())]);
			const endCpu = cpuSpan([this.redis.pid]);
			start = performance.now() + CONFIG.warmupMs;
			end = start + CONFIG.durationMs;
			const r = await lanes(CONFIG.groups.publishConcurrency, CONFIG.warmupMs, CONFIG.durationMs, () =>
				queue.addBulk(BULK),
			);
			const cpu = endCpu();
			const total = completed.reduce((a, b) => a + b, 0);
			const failures = r.failures;
			if (failedJobs > 0) {
				failures.failed += failedJobs;
				failures.byKind["failed job"] = { count: failedJobs, sample: sampleFailure };
			}
			return {
				messagesPerSecond: round(total / (CONFIG.durationMs / 1000), 0),
				requestsPerSecond: round(r.perSecond, 0),
				failures,
				cpu,
				settleMs: 0,
				shares: completed.map((n) => round(n / Math.max(1, total), 4)),
			};
		} finally {
			// force: jobs still active are left behind, not awaited; the flush drops them.
			await Promise.all(workers.map((w) => w.close(true)));
			await queue.close();
			await this.flush();
		}
	}
}
