/** What the bench runs, for how long, and what it is held to. */

export type Impl = "tidings" | "ceiling";
export const IMPLS: readonly Impl[] = ["tidings", "ceiling"];

export const CONFIG = {
	warmupMs: 1_000,
	durationMs: 4_000,
	/**
	 * Each throughput row runs this many times per implementation, in ABBA
	 * order, and reports the mean: on a shared VM one 4 s sample can be off by
	 * a third, and the order cancels drift.
	 */
	repeats: 2,
	/** In-flight single publishes: enough to keep workerd busy without a long queue. */
	singleConcurrency: 32,
	batchConcurrency: 8,
	batchSize: 100,
	wsWindow: 64,
	latencyMs: 3_000,
	subscriberCounts: [1, 100, 1_000],
	/**
	 * Extra latency rows at fixed publish rates, the same for both: at half the
	 * single-publish maximum, 100 subscribers saturate a small machine, so
	 * these show whether the p99 target holds below saturation.
	 */
	fixedRateLatency: { subscribers: 100, rates: [250, 500], repeats: 3, durationMs: 10_000 },
	/**
	 * Consumer group rows (tidings only): every consumers × prefetch pair,
	 * members acking on receipt while this many lanes publish HTTP batches.
	 */
	groups: { consumers: [1, 8], prefetch: [1, 32], publishConcurrency: 4 },
	/**
	 * The peer: BullMQ on a local Redis, started by the bench once per
	 * persistence setting. Processing rows are [workers, concurrency], keyed
	 * like the tidings group rows they are compared with.
	 */
	peer: {
		persistence: ["aof", "none"],
		process: [
			[1, 1],
			[1, 32],
			[8, 32],
		],
	},
	/**
	 * No starvation: HTTP single publishes (at the single row's concurrency)
	 * while this many members drain a backlog published before they connect.
	 * Retention is raised to hold it, as a user holding a backlog would.
	 */
	starvation: { backlog: 50_000, consumers: 8, prefetch: 32, maxMessages: 100_000 },
	/** Memory: workerd's RSS with this many pending messages and member sockets that never ack. */
	memory: { pending: 50_000, members: 1_000, prefetch: 1, maxMessages: 100_000 },
	openChunk: 100,
	/** Open-loop sends beyond this many unanswered are skipped (and counted), not queued. */
	maxInFlight: 256,
	drainIdleMs: 2_000,
	drainMaxMs: 15_000,
	settleMaxMs: 15_000,
	/** The whole run normally takes about six minutes; past this something hangs. */
	watchdogMs: 12 * 60_000,
} as const;

export const TARGETS = {
	singleRatio: 0.8,
	batchPerSecond: 20_000,
	p99At100Ms: 25,
	/** p99 of the fixed-rate rows (100 subscribers at 250 and 500 msg/s), over the ceiling's in the same run. */
	p99FixedRateRatio: 1.0,
	/** tidings / BullMQ (AOF everysec) for the enqueue and processing rows compared. */
	peerRatio: 1.0,
	/** What the 8 × 32 row aims for, printed beside its target. */
	peerAim: 1.5,
	/** Each member's share of the acks, over the mean share, in every sample of a row with equal members. */
	fairness: { min: 0.67, max: 1.5 },
	/** Single publishes while a backlog drains, over the idle single-publish rate of the same run. */
	starvationRatio: 0.5,
	/** Single publishes of an order to a topic with the ~1 KB order schema, over the same publishes to an untyped topic. */
	typedRatio: 0.9,
} as const;
