/**
 * Runs the peer rows: one Redis per persistence setting, both up for the
 * whole part so every row alternates between them (ABBA, as tidings and the
 * ceiling alternate); each stopped at the end, on error too.
 * @module
 */
import { CONFIG } from "../config.js";
import { round } from "../lib/stats.js";
import { aggregate, type ThroughputResult, type ThroughputSample } from "../measure.js";
import {
	BullBench,
	PEER_ENQUEUE_ROWS,
	PEER_PROCESS_ROWS,
	type PeerEnqueueKind,
	type PeerProcessSample,
} from "./bullmq.js";
import { findRedisServer, INSTALL_HINT, PERSISTENCE_LABEL, type Persistence, RedisServer } from "./redis.js";

export interface PeerProcessResult extends ThroughputResult<PeerProcessSample> {
	workers: number;
	concurrency: number;
	minShare: number;
	maxShare: number;
}

export interface PeerModeResult {
	label: string;
	enqueueSingle?: ThroughputResult;
	enqueueBulk?: ThroughputResult;
	/** By row key ("8x32"). */
	process: Record<string, PeerProcessResult>;
}

export interface PeerResults {
	/** Why the rows did not run (no redis-server); absent when they did. */
	skipped?: string;
	bullmq: string;
	ioredis: string;
	redis?: string;
	redisBinary?: string;
	/** In the cpu columns of these rows, the `workerd` field is redis-server's CPU. */
	cpuServer: "redis-server";
	modes: Partial<Record<Persistence, PeerModeResult>>;
}

type Step = (label: string, fn: () => Promise<void>) => Promise<void>;

export async function runPeer(
	step: Step,
	runId: string,
	storageParent: string | undefined,
	versions: { bullmq: string; ioredis: string },
): Promise<PeerResults> {
	const results: PeerResults = { ...versions, cpuServer: "redis-server", modes: {} };
	const binary = findRedisServer();
	if (!binary) {
		results.skipped = `redis-server not found on PATH, /usr/bin or /usr/sbin; install it with: ${INSTALL_HINT}`;
		console.log(`  peer rows skipped: ${results.skipped}`);
		return results;
	}
	results.redisBinary = binary;
	const modes = CONFIG.peer.persistence as readonly Persistence[];
	const benches = new Map<Persistence, BullBench>();
	try {
		for (const mode of modes) {
			const server = await RedisServer.start(binary, mode, storageParent);
			results.redis = server.version;
			console.log(
				`  redis-server ${server.version} (${PERSISTENCE_LABEL[mode]}) on 127.0.0.1:${server.port}, pid ${server.pid}`,
			);
			benches.set(mode, new BullBench(server, `${runId}-${mode}`));
			results.modes[mode] = { label: PERSISTENCE_LABEL[mode], process: {} };
		}
		const ordered = (i: number) => (i % 2 === 0 ? [...modes] : [...modes].reverse());
		const each = async (label: string, i: number, fn: (b: BullBench, r: PeerModeResult) => Promise<void>) => {
			for (const mode of ordered(i)) {
				const b = benches.get(mode);
				const r = results.modes[mode];
				if (b && r) await step(`bullmq (${PERSISTENCE_LABEL[mode]}): ${label}`, () => fn(b, r));
			}
		};
		// JIT and connection warm-up for BullMQ's client code, as tidings gets its own.
		await each("warm-up (not measured)", 0, async (b) => {
			await b.enqueue("enqueueSingle", 0, CONFIG.warmupMs);
			await b.enqueue("enqueueBulk", 0, CONFIG.warmupMs);
		});
		const enqueueSamples = new Map<string, ThroughputSample[]>();
		for (const kind of Object.keys(PEER_ENQUEUE_ROWS) as PeerEnqueueKind[]) {
			for (let i = 0; i < CONFIG.repeats; i++) {
				await each(`${PEER_ENQUEUE_ROWS[kind]} #${i + 1}`, i, async (b, r) => {
					const key = `${b.redis.persistence}/${kind}`;
					const samples = [...(enqueueSamples.get(key) ?? []), await b.enqueue(kind)];
					enqueueSamples.set(key, samples);
					r[kind] = aggregate(samples);
				});
			}
		}
		for (const row of PEER_PROCESS_ROWS) {
			for (let i = 0; i < CONFIG.repeats; i++) {
				await each(`processed, ${row.label} #${i + 1}`, i, async (b, r) => {
					const samples = [...(r.process[row.key]?.samples ?? []), await b.process(row)];
					const shares = samples.flatMap((s) => s.shares);
					r.process[row.key] = {
						...aggregate(samples),
						workers: row.workers,
						concurrency: row.concurrency,
						minShare: round(Math.min(...shares), 4),
						maxShare: round(Math.max(...shares), 4),
					};
				});
			}
		}
	} finally {
		for (const b of benches.values()) await b.redis.stop();
	}
	return results;
}
