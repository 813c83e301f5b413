/**
 * `npm run bench:tail`: what makes the p99 of the fixed-rate latency rows.
 * Not a row of the bench: a diagnosis, for when a p99 ratio moves.
 *
 * For tidings and the ceiling in turn (ABBA), 100 subscribers and HTTP
 * publishes at a fixed rate, as in the bench's fixed-rate rows, while
 * workerd's CPU profiler runs on that Worker's isolate. Per publish it keeps
 * the send time, the reply, the first and last delivery, and the object's
 * own clock (the message's `ts`), so a late publish shows where it was held:
 * before the object ran it, or after. The CPU profile's garbage-collector
 * samples give the isolate's GC pauses, on the same monotonic clock as
 * this process (V8's and Node's both read CLOCK_MONOTONIC), so each cluster
 * of late publishes can be matched to a pause. With `--heap`, a second pass
 * samples allocations, to say how many bytes of V8 heap a publish costs
 * and how many of them its WebSocket sends.
 *
 *   npm run bench:tail -- [--rate 250] [--seconds 10] [--rounds 2] [--heap]
 * @module
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Log, LogLevel, Miniflare } from "miniflare";
import WebSocket from "ws";
import { bundle } from "../lib/build.js";
import { HttpClient } from "../lib/http.js";
import { Histogram } from "../lib/stats.js";
import { renderTable } from "../lib/table.js";
import { COMPATIBILITY_DATE } from "../lib/workers.js";
import { closeAll, connect, wsUrl } from "../lib/ws.js";

const HERE = path.dirname(new URL(import.meta.url).pathname);
const ROOT = path.resolve(HERE, "../..");
const BUILD = path.join(ROOT, "bench/.build");
const IMPLS = ["tidings", "ceiling"] as const;
type Impl = (typeof IMPLS)[number];

const { values: args } = parseArgs({
	options: {
		rate: { type: "string", default: "250" },
		seconds: { type: "string", default: "10" },
		rounds: { type: "string", default: "2" },
		subscribers: { type: "string", default: "100" },
		heap: { type: "boolean", default: false },
	},
});
const RATE = Number(args.rate);
const DURATION_MS = Number(args.seconds) * 1000;
const ROUNDS = Number(args.rounds);
const SUBSCRIBERS = Number(args.subscribers);
/** A GC run of the profile at least this long counts as a pause. */
const PAUSE_MS = 2;

// --- The runtime, with an inspector on each Worker -------------------------------------------

async function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const server = createServer();
		server.listen(0, "127.0.0.1", () => {
			const { port } = server.address() as { port: number };
			server.close(() => resolve(port));
		});
		server.on("error", reject);
	});
}

class Inspector {
	#id = 0;
	readonly #waiting = new Map<number, (result: unknown) => void>();
	private constructor(private readonly ws: WebSocket) {
		ws.on("message", (data) => {
			const m = JSON.parse(String(data)) as { id?: number; result?: unknown };
			if (m.id !== undefined) this.#waiting.get(m.id)?.(m.result);
			if (m.id !== undefined) this.#waiting.delete(m.id);
		});
	}
	static async open(url: string): Promise<Inspector> {
		const ws = new WebSocket(url);
		await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
		return new Inspector(ws);
	}
	call<T>(method: string, params: object = {}): Promise<T> {
		const id = ++this.#id;
		return new Promise((resolve) => {
			this.#waiting.set(id, resolve as (r: unknown) => void);
			this.ws.send(JSON.stringify({ id, method, params }));
		});
	}
	close(): void {
		this.ws.close();
	}
}

interface CallFrame {
	functionName: string;
	url: string;
}
interface CpuProfile {
	nodes: { id: number; callFrame: CallFrame }[];
	startTime: number;
	samples: number[];
	timeDeltas: number[];
}
interface HeapNode {
	callFrame: CallFrame;
	selfSize: number;
	children: HeapNode[];
}

/** The profile's GC runs of `PAUSE_MS` or more, as [start, end] in ms of `performance.now()`. */
function gcPauses(profile: CpuProfile): [number, number][] {
	const gcIds = new Set(
		profile.nodes.filter((n) => n.callFrame.functionName === "(garbage collector)").map((n) => n.id),
	);
	// µs of CLOCK_MONOTONIC, as performance.timeOrigin is ms of the wall clock: go through hrtime.
	const offsetMs = performance.now() - Number(process.hrtime.bigint()) / 1e6;
	const monoToPerf = (us: number) => us / 1000 + offsetMs;
	const pauses: [number, number][] = [];
	let t = profile.startTime;
	let start: number | undefined;
	for (let i = 0; i < profile.samples.length; i++) {
		t += profile.timeDeltas[i] ?? 0;
		const inGc = gcIds.has(profile.samples[i] as number);
		if (inGc && start === undefined) start = t;
		if (!inGc && start !== undefined) {
			if ((t - start) / 1000 >= PAUSE_MS) pauses.push([monoToPerf(start), monoToPerf(t)]);
			start = undefined;
		}
	}
	return pauses;
}

// --- One sample -------------------------------------------------------------------------------

interface Publish {
	sentAt: number;
	replyMs: number;
	firstMs: number;
	lastMs: number;
	/** The object's clock when it stored the message, over the send time (ms; the clock has 1 ms steps). */
	objectMs: number;
}

const SENT = /"data":\{"t":([0-9.]+),"i":(\d+)\}/;
const TS = /"ts":(\d+)/;

/** With an inspector, the CPU profiler runs through the sample and its GC pauses are matched to the late publishes. */
async function sample(impl: Impl, base: string, topic: string, inspector?: Inspector) {
	const total = Math.round((RATE * DURATION_MS) / 1000);
	const publishes: Publish[] = Array.from({ length: total }, () => ({
		sentAt: 0,
		replyMs: Number.NaN,
		firstMs: Number.POSITIVE_INFINITY,
		lastMs: 0,
		objectMs: Number.NaN,
	}));
	const histogram = new Histogram();
	const sockets: WebSocket[] = [];
	let wsMessages = 0;
	for (let i = 0; i < SUBSCRIBERS; i++) {
		const ws = await connect(`${wsUrl(base, topic)}?pack=1`, 15_000, (text) => {
			const now = performance.now();
			const m = SENT.exec(text);
			if (!m) return;
			const p = publishes[Number(m[2])] as Publish;
			const ms = now - Number(m[1]);
			histogram.record(ms);
			if (ms < p.firstMs) {
				p.firstMs = ms;
				const ts = TS.exec(text);
				if (ts) p.objectMs = Number(ts[1]) - (performance.timeOrigin + Number(m[1]));
			}
			if (ms > p.lastMs) p.lastMs = ms;
		});
		ws.on("message", () => wsMessages++);
		sockets.push(ws);
	}
	const client = new HttpClient(base, 64);
	if (inspector) {
		await inspector.call("Profiler.enable");
		await inspector.call("Profiler.setSamplingInterval", { interval: 250 });
		await inspector.call("Profiler.start");
	}
	const t0 = performance.now();
	const inFlight = new Set<Promise<void>>();
	for (let next = 0; next < total; ) {
		const due = Math.min(total, Math.floor(((performance.now() - t0) * RATE) / 1000) + 1);
		for (; next < due; next++) {
			const i = next;
			const sentAt = performance.now();
			(publishes[i] as Publish).sentAt = sentAt;
			const p: Promise<void> = client
				.post(`/v1/topics/${topic}/messages`, `{"data":{"t":${sentAt},"i":${i}}}`)
				.then(() => {
					(publishes[i] as Publish).replyMs = performance.now() - sentAt;
				})
				.finally(() => inFlight.delete(p));
			inFlight.add(p);
		}
		await sleep(1);
	}
	await Promise.all(inFlight);
	await sleep(500);
	const profile = inspector ? (await inspector.call<{ profile: CpuProfile }>("Profiler.stop")).profile : undefined;
	client.close();
	await closeAll(sockets);

	const p99 = histogram.quantile(0.99);
	const pauses = profile ? gcPauses(profile).filter(([, end]) => end >= t0) : [];
	// Late publishes (a delivery past the p99), in clusters of publishes less than 50 ms apart.
	const late = publishes.filter((p) => p.lastMs > p99);
	const clusters: Publish[][] = [];
	for (const p of late) {
		const last = clusters.at(-1);
		if (last && p.sentAt - (last.at(-1) as Publish).sentAt < 50) last.push(p);
		else clusters.push([p]);
	}
	// A cluster is a pause's when a pause ran between its first publish's send and its last one's first delivery.
	const byPause = clusters.filter((c) => {
		const from = (c[0] as Publish).sentAt;
		const to = Math.max(...c.map((p) => p.sentAt + p.firstMs));
		return pauses.some(([s, e]) => s <= to && e >= from);
	});
	const heldBeforeObject = late.filter((p) => p.objectMs > p99 / 2).length;
	const pauseMs = pauses.map(([s, e]) => e - s);
	return {
		impl,
		p50: histogram.quantile(0.5),
		p99,
		wsMessages,
		deliveries: histogram.count,
		late: late.length,
		heldBeforeObject,
		clusters: clusters.length,
		byPause: byPause.length,
		pauses: pauses.length,
		pauseMax: Math.max(0, ...pauseMs),
		pauseTotal: pauseMs.reduce((a, b) => a + b, 0),
	};
}

/** V8 heap bytes allocated per publish, and the functions that allocate most of them (the runtime's own allocations count to the JS caller). */
async function allocation(impl: Impl, base: string, topic: string, inspector: Inspector) {
	await inspector.call("HeapProfiler.enable");
	await inspector.call("HeapProfiler.startSampling", {
		samplingInterval: 4096,
		includeObjectsCollectedByMajorGC: true,
		includeObjectsCollectedByMinorGC: true,
	});
	await sample(impl, base, topic);
	const { profile } = await inspector.call<{ profile: { head: HeapNode } }>("HeapProfiler.stopSampling");
	const bySelf = new Map<string, number>();
	let total = 0;
	const walk = (n: HeapNode) => {
		total += n.selfSize;
		const name = n.callFrame.functionName || "(anonymous)";
		bySelf.set(name, (bySelf.get(name) ?? 0) + n.selfSize);
		for (const c of n.children) walk(c);
	};
	walk(profile.head);
	const top = [...bySelf]
		.sort((a, b) => b[1] - a[1])
		.slice(0, 3)
		.map(([name, bytes]) => `${name} ${Math.round((100 * bytes) / total)} %`);
	const published = Math.round((RATE * DURATION_MS) / 1000);
	return { impl, kbPerPublish: total / 1024 / published, top: top.join(", ") };
}

// --- Main -------------------------------------------------------------------------------------

const [tidingsScript, ceilingScript] = await Promise.all([
	bundle(path.join(ROOT, "src/worker/index.ts"), path.join(BUILD, "tail-tidings.mjs")),
	bundle(path.join(ROOT, "bench/ceiling/worker.ts"), path.join(BUILD, "tail-ceiling.mjs")),
]);
const storageDir = existsSync("/dev/shm") ? mkdtempSync("/dev/shm/tidings-tail-") : undefined;
const inspectorPort = await freePort();
const worker = (name: Impl, scriptPath: string, extra: object) => ({
	name,
	modules: true,
	scriptPath,
	compatibilityDate: COMPATIBILITY_DATE,
	unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
	unsafeInspectorProxy: true,
	...extra,
});
const mf = new Miniflare({
	host: "127.0.0.1",
	port: 0,
	inspectorPort,
	log: new Log(LogLevel.WARN),
	cf: false,
	...(storageDir ? { durableObjectsPersist: storageDir } : {}),
	workers: [
		worker("tidings", tidingsScript, {
			durableObjects: { TOPIC: { className: "Topic", useSQLite: true } },
			bindings: { TIDINGS_ALLOW_ANONYMOUS: "true" },
		}),
		worker("ceiling", ceilingScript, { durableObjects: { CEILING: { className: "Ceiling", useSQLite: true } } }),
	],
} as ConstructorParameters<typeof Miniflare>[0]);
try {
	await mf.ready;
	const urls = {} as Record<Impl, string>;
	const inspectors = {} as Record<Impl, Inspector>;
	for (const impl of IMPLS) {
		urls[impl] = (await mf.unsafeGetDirectURL(impl)).origin;
		inspectors[impl] = await Inspector.open(`ws://127.0.0.1:${inspectorPort}/${impl}`);
	}
	console.log(
		`${SUBSCRIBERS} subscribers, ${RATE} msg/s for ${DURATION_MS / 1000} s, ${ROUNDS} rounds ABBA (Miniflare API path)`,
	);
	let n = 0;
	const topic = (impl: Impl) => `tail-${impl}-${n++}`;
	// Warm-up: JIT and connections, not measured.
	for (const impl of IMPLS) await sample(impl, urls[impl], topic(impl), inspectors[impl]);
	const rows: (string | number)[][] = [];
	for (let round = 0; round < ROUNDS; round++) {
		for (const impl of round % 2 === 0 ? IMPLS : [...IMPLS].reverse()) {
			const s = await sample(impl, urls[impl], topic(impl), inspectors[impl]);
			rows.push([
				s.impl,
				s.p50.toFixed(2),
				s.p99.toFixed(1),
				`${s.late} (${s.heldBeforeObject})`,
				`${s.byPause} / ${s.clusters}`,
				s.pauses,
				`${s.pauseMax.toFixed(1)} / ${s.pauseTotal.toFixed(0)}`,
				s.wsMessages,
			]);
		}
	}
	console.log(
		renderTable(
			[
				"impl",
				"p50 ms",
				"p99 ms",
				"late publishes (of them, held ≥ p99/2 before the object ran them)",
				"late clusters during a GC pause",
				"GC pauses ≥ 2 ms",
				"longest / total pause ms",
				"WebSocket messages",
			],
			rows,
		),
	);
	if (args.heap) {
		const heapRows: (string | number)[][] = [];
		for (const impl of IMPLS) {
			const a = await allocation(impl, urls[impl], topic(impl), inspectors[impl]);
			heapRows.push([a.impl, a.kbPerPublish.toFixed(1), a.top]);
		}
		console.log(renderTable(["impl", "V8 heap KiB allocated per publish", "most of it in"], heapRows));
	}
	for (const impl of IMPLS) inspectors[impl].close();
} finally {
	await mf.dispose();
	if (storageDir) rmSync(storageDir, { recursive: true, force: true });
}
