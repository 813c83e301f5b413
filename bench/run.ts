/**
 * `npm run bench`: tidings against a ceiling (a bare SQLite Durable Object
 * speaking the same wire protocol), both in one workerd started through
 * Miniflare's API, driven by the same load generator over loopback. Prints
 * two tables and writes bench/results.json.
 * @module
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as setTimer } from "node:timers";
import { fileURLToPath } from "node:url";
import { CONFIG, IMPLS, type Impl, TARGETS } from "./config.js";
import { bundle } from "./lib/build.js";
import { findWorkerd } from "./lib/cpu.js";
import { round } from "./lib/stats.js";
import { COMPATIBILITY_DATE, startWorkers } from "./lib/workers.js";
import { Bench, GROUP_ROWS, LATENCY_ROWS, THROUGHPUT_ROWS, type ThroughputKind } from "./measure.js";
import { detailTable, summarize, summaryTable } from "./report.js";

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

/** Runs every row; returns the publish rate of each latency row, by its key. */
async function measure(bench: Bench): Promise<Record<string, number>> {
	for (const impl of IMPLS) await bench.step(`${impl}: warm-up (not measured)`, () => bench.warm(impl));
	for (const kind of Object.keys(THROUGHPUT_ROWS) as ThroughputKind[]) {
		for (let i = 0; i < CONFIG.repeats; i++) {
			for (const impl of ordered(i)) {
				await bench.step(`${impl}: ${THROUGHPUT_ROWS[kind]} #${i + 1}`, () => bench.throughput(kind, impl, i));
			}
		}
	}
	for (const row of GROUP_ROWS) {
		for (let i = 0; i < CONFIG.repeats; i++) {
			await bench.step(`tidings: group, ${row.label} #${i + 1}`, () => bench.group(row, i));
		}
	}
	let rate = 0;
	await bench.step("latency publish rate", async () => {
		rate = bench.latencyRate();
		process.stdout.write(`${rate} msg/s for both (half the smaller single-publish maximum) … `);
	});
	const rates: Record<string, number> = {};
	for (const [i, row] of LATENCY_ROWS.entries()) {
		const rowRate = row.fixedRate ?? rate;
		rates[row.key] = rowRate;
		for (const impl of ordered(i)) {
			await bench.step(`${impl}: latency, ${row.label}`, async () => {
				if (rowRate === 0) throw new Error("no publish rate");
				await bench.latency(impl, row, rowRate);
			});
		}
	}
	return rates;
}

async function main(): Promise<number> {
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
	try {
		latencyRates = await measure(bench);
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
		`Fixed-rate latency: the same, with ${fixed.subscribers} subscribers at ${fixed.rates.join(" and ")} msg/s for both, whatever the maxima: at half rate ${fixed.subscribers} subscribers saturate a small machine (rate × subscribers frames/s), these show whether a ${TARGETS.p99At100Ms} ms p99 holds below saturation. Each row gets its own verdict; the half-rate row's is the issue's target as written.`,
		`Groups (tidings only; the ceiling has none): a fresh topic and group per run, ${groups.consumers.join(" or ")} members at prefetch ${groups.prefetch.join(" or ")} acking each message on receipt, while ${groups.publishConcurrency} closed-loop lanes publish HTTP batches of ${CONFIG.batchSize} (req/s in the details); the same warm-up, window and repeats as above. msg/s counts messages received and acked inside the window.`,
		"Group duplicates: first-attempt deliveries of a seq already delivered, over the whole run (should be 0). Share: each member's part of the acks, min–max over members and runs.",
		"Ratio is tidings / ceiling: above 1 is better for throughput, below 1 is better for latency.",
	];
	const summary = summarize(bench.results);
	console.log(`\n${summaryTable(summary)}\n\n${detailTable(bench.results)}\n`);
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
		versions: { miniflare: versionOf("miniflare"), workerd: versionOf("workerd") },
		compatibilityDate: COMPATIBILITY_DATE,
		config: CONFIG,
		targets: TARGETS,
		/** msg/s of each latency row, by its key in `results`. */
		latencyRates,
		notes,
		summary,
		results: bench.results,
		errors: bench.errors,
		workerdOutput: { lines: output.lines, first: output.first },
	};
	const out = path.join(HERE, "results.json");
	writeFileSync(out, `${JSON.stringify(results, null, "\t")}\n`);
	console.log(`\nwrote ${path.relative(ROOT, out)}`);
	return bench.errors.length === 0 ? 0 : 1;
}

main().then(
	(code) => process.exit(code),
	(err: unknown) => {
		console.error(err);
		process.exit(1);
	},
);
