/**
 * `npm run bench`: tidings against a ceiling (a bare SQLite Durable Object
 * speaking the same wire protocol), both in one workerd started through
 * Miniflare's API, driven by the same load generator over loopback; and,
 * as a peer, BullMQ on a redis-server the bench starts itself. Prints the
 * tables and writes bench/results.json. `-- --only groups,peer` runs a subset.
 * @module
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as setTimer } from "node:timers";
import { fileURLToPath } from "node:url";
import { memory, starvation, starvationResult } from "./backlog.js";
import { CONFIG, IMPLS, type Impl, TARGETS } from "./config.js";
import { bundle } from "./lib/build.js";
import { findWorkerd } from "./lib/cpu.js";
import { round } from "./lib/stats.js";
import { type Cell, renderTable } from "./lib/table.js";
import { COMPATIBILITY_DATE, startWorkers } from "./lib/workers.js";
import { Bench, GROUP_ROWS, LATENCY_ROWS, THROUGHPUT_ROWS } from "./measure.js";
import { PARTS, type Plan, plan } from "./parts.js";
import { PERSISTENCE_LABEL } from "./peer/redis.js";
import { type PeerResults, runPeer } from "./peer/rows.js";
import {
	detailTable,
	peerDetailTable,
	peerSummary,
	peerTable,
	queueSummary,
	queueTable,
	summarize,
	summaryTable,
} from "./report.js";
import { catchUp, type StreamsResult, sseFanOut } from "./streams.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const BUILD = path.join(HERE, ".build");

function versionOf(pkg: string): string {
	const file = path.join(ROOT, "node_modules", pkg, "package.json");
	return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

/** ABBA: alternate which implementation goes first, so drift over the run hits both alike. */
function ordered(i: number): Impl[] {
	return i % 2 === 0 ? [...IMPLS] : [...IMPLS].reverse();
}

/** Runs the planned rows of workerd; returns the publish rate of each latency row, by its key. */
async function measure(bench: Bench, p: Plan, peer: () => Promise<void>): Promise<Record<string, number>> {
	const runs = (part: Plan["parts"][number]) => p.parts.includes(part);
	for (const impl of IMPLS) await bench.step(`${impl}: warm-up (not measured)`, () => bench.warm(impl));
	for (const kind of p.throughputKinds) {
		for (let i = 0; i < CONFIG.repeats; i++) {
			for (const impl of ordered(i)) {
				await bench.step(`${impl}: ${THROUGHPUT_ROWS[kind]} #${i + 1}`, () => bench.throughput(kind, impl, i));
			}
		}
	}
	if (runs("typed")) {
		// ABBA: typed and untyped alternate who goes first.
		for (let i = 0; i < CONFIG.repeats; i++) {
			for (const typed of i % 2 === 0 ? [false, true] : [true, false]) {
				const label = `tidings: HTTP single, order, ${typed ? "typed" : "untyped"} topic #${i + 1}`;
				await bench.step(label, () => bench.typed(typed, i));
			}
		}
	}
	if (runs("groups")) {
		for (const row of GROUP_ROWS) {
			for (let i = 0; i < CONFIG.repeats; i++) {
				await bench.step(`tidings: group, ${row.label} #${i + 1}`, () => bench.group(row, i));
			}
		}
	}
	if (runs("starvation")) {
		const samples: Awaited<ReturnType<typeof starvation>>[] = [];
		for (let i = 0; i < CONFIG.repeats; i++) {
			await bench.step(
				`tidings: publishing while ${CONFIG.starvation.consumers} members drain a backlog #${i + 1}`,
				async () => {
					samples.push(await starvation(bench, i));
				},
			);
		}
		if (samples.length > 0)
			bench.results.tidings.starvation = starvationResult(samples, bench.results.tidings.httpSingle);
	}
	// workerd is idle from here on: BullMQ and Redis get the cores the tidings rows had.
	if (runs("peer")) await peer();
	const rates: Record<string, number> = {};
	if (runs("latency")) await latency(bench, rates);
	if (runs("streams")) await streams(bench);
	// Last: a thousand members take the object long to open and longer to let go of, and
	// workerd runs every object on one thread, so any row after this one would measure that.
	if (runs("memory")) {
		await bench.step("tidings: memory, backlog and members", async () => {
			bench.results.tidings.memory = await memory(bench);
		});
	}
	return rates;
}

/** SSE fan-out beside the WebSocket fan-out row, at its rate and reader count; catch-up reads of a full topic. */
async function streams(bench: Bench): Promise<void> {
	const { subscribers, rates } = CONFIG.fixedRateLatency;
	const rate = rates[0] ?? 250;
	const result: StreamsResult = {};
	bench.results.tidings.streams = result;
	await bench.step(`tidings: SSE fan-out, ${subscribers} readers at ${rate} msg/s`, async () => {
		result.sse = await sseFanOut(bench, subscribers, rate);
	});
	await bench.step(`tidings: catch-up read of ${CATCH_UP_MESSAGES} messages over /v1/stream`, async () => {
		result.catchUp = await catchUp(bench, CATCH_UP_MESSAGES);
	});
}

const CATCH_UP_MESSAGES = 10_000;

/** The SSE row beside the WebSocket row of the same readers and rate, and the catch-up row. */
function streamsTable(results: Bench["results"]): string | undefined {
	const s = results.tidings.streams;
	if (!s) return undefined;
	const { subscribers, rates } = CONFIG.fixedRateLatency;
	const ws = results.tidings.latency[`${subscribers}@${rates[0]}`];
	const rows: Cell[][] = [];
	for (const [label, r] of [
		[`WebSocket, ${subscribers} subscribers`, ws],
		[`SSE (/v1/stream), ${subscribers} readers`, s.sse],
	] as const) {
		if (r)
			rows.push([label, r.achievedRatePerSecond, `${r.deliveries}/${r.expectedDeliveries}`, r.p50Ms, r.p99Ms, r.maxMs]);
	}
	const table = renderTable(["fan-out at the fixed rate", "msg/s", "delivered", "p50 ms", "p99 ms", "max ms"], rows);
	const c = s.catchUp;
	return c
		? `${table}\n\n${renderTable(["catch-up read", "messages", "pages", "ms", "msg/s"], [["/v1/stream?offset=-1 to the tail", c.messages, c.pages, c.ms, c.messagesPerSecond]])}`
		: table;
}

/** The latency rows, at half the smaller single-publish maximum, and at the fixed rates. */
async function latency(bench: Bench, rates: Record<string, number>): Promise<void> {
	let rate = 0;
	await bench.step("latency publish rate", async () => {
		rate = bench.latencyRate();
		process.stdout.write(`${rate} msg/s for both (half the smaller single-publish maximum) … `);
	});
	for (const [i, row] of LATENCY_ROWS.entries()) {
		const rowRate = row.fixedRate ?? rate;
		rates[row.key] = rowRate;
		// The fixed-rate rows hold a ratio target, so they repeat (ABBA) and report the median p99.
		const repeats = row.fixedRate === undefined ? 1 : CONFIG.fixedRateLatency.repeats;
		for (let r = 0; r < repeats; r++) {
			for (const impl of ordered(i + r)) {
				await bench.step(`${impl}: latency, ${row.label}${repeats > 1 ? ` #${r + 1}` : ""}`, async () => {
					if (rowRate === 0) throw new Error("no publish rate");
					await bench.latency(impl, row, rowRate, r);
				});
			}
		}
	}
}

async function main(): Promise<number> {
	const p = plan(process.argv.slice(2));
	if (p.parts.length < PARTS.length) {
		const extra = p.parts.filter((x) => !p.requested.includes(x));
		console.log(
			`parts: ${p.requested.join(", ")}${extra.length > 0 ? ` (with ${extra.join(", ")} for their ratios)` : ""}; throughput rows: ${p.throughputKinds.join(", ") || "none"}`,
		);
	}
	const watchdog = setTimer(() => {
		console.error(`bench: still running after ${CONFIG.watchdogMs / 1000} s; giving up`);
		process.exit(2);
	}, CONFIG.watchdogMs);
	watchdog.unref();

	mkdirSync(BUILD, { recursive: true });
	const [tidings, ceiling] = await Promise.all([
		bundle(path.join(ROOT, "src/worker/index.ts"), path.join(BUILD, "tidings.mjs")),
		bundle(path.join(HERE, "ceiling/worker.ts"), path.join(BUILD, "ceiling.mjs")),
	]);
	// tmpfs where there is one: the bench measures the code, not this machine's disk.
	const storageDir = existsSync("/dev/shm") ? mkdtempSync("/dev/shm/tidings-bench-") : undefined;
	const storage = storageDir ? "SQLite files on tmpfs" : "SQLite files in Miniflare's temporary directory";
	const started = new Date();
	const { mf, urls, output } = await startWorkers({ tidings, ceiling }, storageDir);
	const bench = new Bench(urls, findWorkerd());
	console.log(`tidings ${urls.tidings}  ceiling ${urls.ceiling}  workerd pid ${bench.workerdPids.join(", ") || "?"}`);
	let latencyRates: Record<string, number> = {};
	let peer: PeerResults | undefined;
	const runPeerPart = async () => {
		try {
			peer = await runPeer((label, fn) => bench.step(label, fn), bench.runId, storageDir ?? os.tmpdir(), {
				bullmq: versionOf("bullmq"),
				ioredis: versionOf("ioredis"),
			});
		} catch (err) {
			bench.errors.push(`peer: ${err instanceof Error ? err.message : String(err)}`);
		}
	};
	try {
		latencyRates = await measure(bench, p, runPeerPart);
	} finally {
		await mf.dispose();
		if (storageDir) rmSync(storageDir, { recursive: true, force: true });
	}

	const cpus = os.cpus();
	const fixed = CONFIG.fixedRateLatency;
	const groups = CONFIG.groups;
	const notes = [
		"Path: Miniflare API, workerd, loopback; each Worker on its own direct socket (no entry Worker, no wrangler dev proxy).",
		`Storage: ${storage}; every row and repeat on a fresh topic, so a fresh Durable Object.`,
		`The load generator (Node) shares the ${cpus.length} cores with workerd, which runs all JavaScript (both Workers and their objects) on one thread.`,
		'"cores" is CPU time / wall time; steal is CPU the hypervisor gave to other guests (a noisy host).',
		`Throughput: closed loop, ${CONFIG.warmupMs / 1000} s warm-up + ${CONFIG.durationMs / 1000} s measured, mean of ${CONFIG.repeats} runs in ABBA order.`,
		`Latency: HTTP publishes at one rate for both, half the smaller single-publish maximum, for ${CONFIG.latencyMs / 1000} s, open loop (sends past ${CONFIG.maxInFlight} unanswered are skipped and counted); publish sent → frame received, over every delivery to every subscriber.`,
		`Fixed-rate latency: the same, with ${fixed.subscribers} subscribers at ${fixed.rates.join(" and ")} msg/s for both, whatever the maxima: at half rate ${fixed.subscribers} subscribers saturate a small machine (rate × subscribers frames/s), these show whether fan-out costs latency below saturation: their p99 is held to ≤ ${TARGETS.p99FixedRateRatio}× the ceiling's. Each runs ${fixed.repeats} times for ${fixed.durationMs / 1000} s in ABBA order and reports the sample with the median p99 (a 3 s sample's p99 is its worst few publishes, so one stall of the host decided it); the half-rate row is held to ${TARGETS.p99At100Ms} ms.`,
		`Groups (tidings only; the ceiling has none): a fresh topic and group per run, ${groups.consumers.join(" or ")} members at prefetch ${groups.prefetch.join(" or ")} acking each message on receipt, while ${groups.publishConcurrency} closed-loop lanes publish HTTP batches of ${CONFIG.batchSize} (req/s in the details); the same warm-up, window and repeats as above. msg/s counts messages received and acked inside the window.`,
		"Group duplicates: first-attempt deliveries of a seq already delivered, over the whole run (should be 0). Share: each member's part of the acks, min–max over members and runs.",
		"Ratio is tidings / ceiling: above 1 is better for throughput, below 1 is better for latency.",
		...peerNotes(peer),
		`Fairness: for each group row with more than one (equal) member, each member's share of the acks over the mean share (1/members), min and max over every member of every sample; within ${TARGETS.fairness.min}×–${TARGETS.fairness.max}× passes.`,
		`No starvation (tidings): a fresh topic (retention raised to ${CONFIG.starvation.maxMessages.toLocaleString("en-US")}) with a group created first, then ${CONFIG.starvation.backlog.toLocaleString("en-US")} messages published in HTTP batches; then ${CONFIG.starvation.consumers} members at prefetch ${CONFIG.starvation.prefetch} ack on receipt while the HTTP single row's closed loop (${CONFIG.singleConcurrency} in flight) publishes for the same warm-up and window. publish msg/s and its p99 request round trip over the window (requests still unanswered when it closes count at their wait so far; "≥" marks a p99 that is only a lower bound), against the idle HTTP single row's p99; ratio to the idle HTTP single row of this run; drain = messages acked in the window per second; "left" = backlog not yet delivered when the window ended (0 means it ran dry and the row measured less than a full backlog).`,
		`Memory (tidings): workerd's process RSS (/proc/<pid>/status VmRSS, all of workerd: an upper bound on the object's heap) before the topic exists, after ${CONFIG.memory.pending.toLocaleString("en-US")} messages are published to a group that has taken none, and with ${CONFIG.memory.members.toLocaleString("en-US")} member sockets at prefetch ${CONFIG.memory.prefetch} that never ack (opened ${CONFIG.openChunk} at a time; ack timeout 10 min, so nothing moves). Measured last, as the run's other objects idle; V8 may not have collected garbage, so small deltas are noise. The open time is reported: on one runtime thread it is time every other object waits.`,
		`Parts run: ${p.parts.join(", ")}${p.parts.length < PARTS.length ? ` (of ${PARTS.join(", ")}; npm run bench -- --only <parts>)` : ""}.`,
	];
	const summary = summarize(bench.results, p.parts);
	const peerRows = peer ? peerSummary(bench.results.tidings, peer) : [];
	const queueRows = queueSummary(bench.results.tidings, p.parts);
	const tables = [summaryTable(summary)];
	if (peerRows.length > 0 && peer) tables.push(peerTable(peerRows, peer));
	if (queueRows.length > 0) tables.push(queueTable(queueRows));
	tables.push(detailTable(bench.results, p.parts));
	const streamRows = streamsTable(bench.results);
	if (streamRows) tables.push(streamRows);
	if (peer && !peer.skipped) tables.push(peerDetailTable(peer));
	console.log(`\n${tables.join("\n\n")}\n`);
	for (const n of notes) console.log(`* ${n}`);
	for (const e of bench.errors) console.log(`! ${e}`);
	if (output.lines > 0) {
		console.log(`! workerd wrote ${output.lines} lines of output; the first:`);
		for (const line of output.first) console.log(`    ${line}`);
	}

	const results = {
		timestamp: started.toISOString(),
		path: "Miniflare API, workerd, loopback",
		storage,
		machine: {
			cpus: cpus.length,
			cpuModel: cpus[0]?.model ?? "unknown",
			memoryGiB: round(os.totalmem() / 2 ** 30, 1),
			platform: `${os.platform()} ${os.release()}`,
			node: process.version,
		},
		versions: {
			miniflare: versionOf("miniflare"),
			workerd: versionOf("workerd"),
			bullmq: versionOf("bullmq"),
			ioredis: versionOf("ioredis"),
			redis: peer?.redis ?? null,
		},
		/** Which parts ran: `requested` by --only (all by default), `parts` with what their ratios need. */
		parts: p,
		compatibilityDate: COMPATIBILITY_DATE,
		config: CONFIG,
		targets: TARGETS,
		/** msg/s of each latency row, by its key in `results`. */
		latencyRates,
		notes,
		summary,
		peerSummary: peerRows,
		queueSummary: queueRows,
		results: bench.results,
		/** BullMQ on Redis; `skipped` says why when redis-server was missing. Absent when the part did not run. */
		peer: peer ?? null,
		errors: bench.errors,
		workerdOutput: { lines: output.lines, first: output.first },
	};
	const out = path.join(HERE, "results.json");
	writeFileSync(out, `${JSON.stringify(results, null, "\t")}\n`);
	console.log(`\nwrote ${path.relative(ROOT, out)}`);
	return bench.errors.length === 0 ? 0 : 1;
}

function peerNotes(peer: PeerResults | undefined): string[] {
	if (!peer) return [];
	if (peer.skipped) return [`Peer (BullMQ on Redis): skipped, ${peer.skipped}.`];
	const modes = (CONFIG.peer.persistence as readonly (keyof typeof PERSISTENCE_LABEL)[]).map(
		(m) => PERSISTENCE_LABEL[m],
	);
	return [
		`Peer: BullMQ ${peer.bullmq} (ioredis ${peer.ioredis}) on redis-server ${peer.redis ?? "?"} started by the bench on a free loopback port in a temporary directory on the same storage as tidings' SQLite files, once per setting (${modes.join("; ")}), both up for the part and alternated row by row (ABBA). Path: local Redis over loopback; BullMQ's producers and Workers run in the load generator's Node process, as the tidings publishers and members do.`,
		`Peer rows, driven as the tidings rows are: add one by one with ${CONFIG.singleConcurrency} in flight on one Queue (the HTTP single row's concurrency), addBulk of ${CONFIG.batchSize} with ${CONFIG.batchConcurrency} in flight (the batch row's), and jobs processed (completed in Redis, so acked) per second inside the window by N Workers × concurrency C, each Worker with its own connections, a processor that returns at once, removeOnComplete, a fresh queue per sample and Redis flushed after it, while ${CONFIG.groups.publishConcurrency} lanes addBulk ${CONFIG.batchSize} at a time (as the group rows publish). Same warm-up, window and repeats.`,
		`Peer ratio is tidings / BullMQ; the verdict is against Redis with ${PERSISTENCE_LABEL.aof} (the closest Redis comes to tidings' durable log); the no-persistence ratio is shown beside it. In the peer details the first cores figure is redis-server's.`,
	];
}

main().then(
	(code) => process.exit(code),
	(err: unknown) => {
		console.error(err);
		process.exit(1);
	},
);
