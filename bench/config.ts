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
	fixedRateLatency: { subscribers: 100, rates: [250, 500] },
	/**
	 * Consumer group rows (tidings only): every consumers × prefetch pair,
	 * members acking on receipt while this many lanes publish HTTP batches.
	 */
	groups: { consumers: [1, 8], prefetch: [1, 32], publishConcurrency: 4 },
	openChunk: 100,
	/** Open-loop sends beyond this many unanswered are skipped (and counted), not queued. */
	maxInFlight: 256,
	drainIdleMs: 2_000,
	drainMaxMs: 15_000,
	settleMaxMs: 15_000,
	/** The whole run normally takes about two minutes; past this something hangs. */
	watchdogMs: 6 * 60_000,
} as const;

export const TARGETS = {
	singleRatio: 0.8,
	batchPerSecond: 20_000,
	p99At100Ms: 25,
} as const;
