/**
 * The soak: tidings on the real runtime (`wrangler dev`, workerd, SQLite on
 * disk) behind the fault proxy, loopback only. Publishers, group members and
 * live subscribers (actors.ts) run for the given time while a fault driver
 * kill -9s the runtime and restarts it on the same state, cuts every
 * connection, blackholes the proxy, loses answers the server already sent,
 * and members crash in the middle of a handler or outlive their lease. Then
 * the faults stop, everything drains, and the oracle (oracle.ts) checks the
 * client-side records against the log, the group and its dead letters.
 *
 * `npm run soak -- --minutes N` runs it from the command line (cli.ts);
 * test/node/soak.test.ts runs it for 30 seconds inside `npm test`.
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type FaultProxy, startFaultProxy } from "../node/fault-proxy.js";
import { type DevServer, freePort, startDev } from "../node/wrangler-dev.js";
import {
	clientPublisher,
	httpPublisher,
	Member,
	type MemberShape,
	Rng,
	type Stage,
	Subscriber,
	sleep,
	within,
	wsPublisher,
} from "./actors.js";
import { judge, type Verdict } from "./oracle.js";
import {
	FAULT_KINDS,
	type FaultKind,
	type GroupSettings,
	newRecords,
	PUBLISH_VIAS,
	type PublishVia,
	type Records,
	type ServerView,
} from "./records.js";

export interface SoakOptions {
	/** How long the chaos lasts; the drain and the checks come after. */
	ms: number;
	seed?: number;
	/** Progress lines (faults, phases). */
	log?: (line: string) => void;
}

export interface SoakResult {
	violations: string[];
	/** The printed summary. */
	table: string;
	seed: number;
	faults: Record<FaultKind, number>;
	published: Record<PublishVia, number>;
	verdict: Verdict["counts"];
	wallMs: number;
}

const TOPIC = "soak";
const GROUP = "workers";
const HEARTBEAT_MS = 1000;
export const GROUP_SETTINGS: GroupSettings = { max_retries: 8, retry_delay_ms: 50, ack_timeout_ms: 3000 };
const MEMBERS: MemberShape[] = [
	{ concurrency: 1, prefetch: 1 },
	{ concurrency: 2, prefetch: 2 },
	{ concurrency: 4, prefetch: 8 },
	{ concurrency: 1, prefetch: 4 },
];
const SUBSCRIBERS = 3;

/** The runtime, killed and started again on the same state. */
class Runtime {
	server?: DevServer;
	constructor(readonly state: string) {}
	async start() {
		this.server = await startDev(this.state, await freePort(), { timeoutMs: 60_000 });
	}
	get url(): string {
		if (!this.server) throw new Error("the runtime is down");
		return this.server.url;
	}
	get port(): number {
		return Number(new URL(this.url).port);
	}
	async kill9() {
		const s = this.server;
		this.server = undefined;
		await s?.kill9();
	}
}

async function call(url: string, method: string, body?: unknown): Promise<unknown> {
	const res = await fetch(url, {
		method,
		headers: body === undefined ? {} : { "content-type": "application/json" },
		body: body === undefined ? undefined : JSON.stringify(body),
		signal: AbortSignal.timeout(15_000),
	});
	const text = await res.text();
	if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text.slice(0, 300)}`);
	return JSON.parse(text);
}

/** The log, the group and the DLQ, read straight from the runtime (not through the proxy). */
async function readServer(base: string): Promise<ServerView> {
	const topic = `${base}/v1/topics/${TOPIC}`;
	const log: ServerView["log"] = [];
	let page: { messages: ServerView["log"]; next_after: number; head_seq: number; first_seq: number };
	let after = 0;
	do {
		page = (await call(`${topic}/messages?after=${after}&limit=1000`, "GET")) as typeof page;
		log.push(...page.messages);
		after = page.next_after;
	} while (page.messages.length > 0 && after < page.head_seq);
	const group = (await call(`${topic}/groups/${GROUP}`, "GET")) as ServerView["group"];
	const dlq: ServerView["dlq"] = [];
	for (let afterSeq = 0; ; ) {
		const p = (await call(`${topic}/groups/${GROUP}/dlq?after=${afterSeq}&limit=1000`, "GET")) as {
			messages: ServerView["dlq"];
		};
		if (p.messages.length === 0) break;
		dlq.push(...p.messages);
		afterSeq = (p.messages.at(-1) as ServerView["dlq"][number]).seq;
	}
	return { log, headSeq: page.head_seq, firstSeq: page.first_seq, group, dlq };
}

/** Faults in rounds: each round is every proxy/runtime fault once, in a random order, a second or three apart. */
async function driveFaults(
	stage: Stage,
	runtime: Runtime,
	proxy: FaultProxy,
	subscribers: Subscriber[],
	log: (l: string) => void,
) {
	const { rng, rec } = stage;
	const kinds = ["kill", "cut", "blackhole", "lose-replies"] as const;
	let round: (typeof kinds)[number][] = [];
	const t = () => `+${((Date.now() - rec.startedAt) / 1000).toFixed(1)} s`;
	for (;;) {
		await sleep(rng.int(1000, 3000));
		if (Date.now() >= stage.chaosUntil) return;
		if (round.length === 0) round = rng.shuffle([...kinds]);
		const kind = round.shift() as (typeof kinds)[number];
		const ev = { kind, at: Date.now(), until: Date.now(), detail: "" };
		rec.faults.push(ev);
		if (kind === "kill") {
			await runtime.kill9();
			await sleep(rng.int(0, 1000)); // down for a while: connections are refused
			await runtime.start();
			proxy.upstreamPort = runtime.port;
			ev.detail = `down ${Date.now() - ev.at} ms`;
		} else if (kind === "cut") {
			proxy.cut();
		} else {
			proxy.fault = kind;
			if (kind === "blackhole") await sleep(rng.int(500, 2500));
			else await sleep(rng.int(200, 1000));
			proxy.fault = "none";
		}
		ev.until = Date.now();
		log(`${t()} ${kind}${ev.detail ? ` (${ev.detail})` : ""}`);
		if (rng.chance(0.3)) {
			const s = subscribers[rng.int(0, subscribers.length - 1)] as Subscriber;
			void s.restart();
			log(`${t()} ${s.record.name} restarted from seq ${s.lastSeq}`);
		}
	}
}

export async function runSoak({ ms, seed = Date.now() % 1_000_000, log = () => {} }: SoakOptions): Promise<SoakResult> {
	const wallStart = Date.now();
	const state = mkdtempSync(path.join(os.tmpdir(), "tidings-soak-"));
	const runtime = new Runtime(state);
	let proxy: FaultProxy | undefined;
	const rec = newRecords();
	const rng = new Rng(seed);
	const members: Member[] = [];
	const subscribers: Subscriber[] = [];
	const setupViolations: string[] = [];
	try {
		await runtime.start();
		proxy = await startFaultProxy(runtime.port);
		await call(`${runtime.url}/v1/topics/${TOPIC}`, "PUT", { max_messages: 1_000_000 });
		await call(`${runtime.url}/v1/topics/${TOPIC}/groups/${GROUP}`, "PUT", { start: "earliest", ...GROUP_SETTINGS });
		log(`runtime up (seed ${seed}); state in ${state}`);

		rec.startedAt = Date.now();
		const stage: Stage = {
			url: proxy.url,
			topic: TOPIC,
			group: GROUP,
			rec,
			rng,
			producing: true,
			giveUpAt: Number.POSITIVE_INFINITY,
			stopping: false,
			poisonRate: 0.01,
			heartbeatMs: HEARTBEAT_MS,
			ackTimeoutMs: GROUP_SETTINGS.ack_timeout_ms,
			crashRate: 0.002,
			slowRate: 0.002,
			chaosFrom: Date.now(),
			chaosUntil: Date.now() + ms,
			forced: { crash: false, slow: false },
		};
		for (let i = 1; i <= SUBSCRIBERS; i++) subscribers.push(new Subscriber(stage, `s${i}`));
		MEMBERS.forEach((shape, i) => {
			members.push(new Member(stage, `m${i + 1}`, shape));
		});
		const publishers = [
			httpPublisher(stage, "h1", false, 10),
			httpPublisher(stage, "h2", false, 10),
			httpPublisher(stage, "b1", true, 30),
			wsPublisher(stage, "w1", 10),
			clientPublisher(stage, "c1", 10),
		];

		// Chaos.
		await driveFaults(stage, runtime, proxy, subscribers, log);
		rec.chaosEndedAt = Date.now();
		proxy.fault = "none";
		log(`chaos over after ${((rec.chaosEndedAt - rec.startedAt) / 1000).toFixed(1)} s; draining`);

		// Drain: publishers finish what they started (retrying with the same keys), the group and the subscribers catch up.
		stage.producing = false;
		stage.giveUpAt = Date.now() + 30_000;
		if ((await within(Promise.all(publishers), 35_000, "timeout")) === "timeout")
			setupViolations.push("drain: publishers did not finish within 35 s");
		const base = runtime.url;
		const drainedBy = Date.now() + 30_000;
		let last = "";
		for (;;) {
			const g = (await call(`${base}/v1/topics/${TOPIC}/groups/${GROUP}`, "GET")) as ServerView["group"];
			const head = ((await call(`${base}/v1/topics/${TOPIC}/messages?after=0&limit=1`, "GET")) as { head_seq: number })
				.head_seq;
			const behind = subscribers.filter((s) => (s.lastSeq ?? 0) < head).map((s) => s.record.name);
			const running = rec.handlings.filter((h) => h.end === undefined).length;
			last = `head ${head}, group cursor ${g.cursor} pending ${g.counts.pending} in_flight ${g.counts.in_flight}, handlers running ${running}, subscribers behind: ${behind.join(" ") || "none"}`;
			if (g.cursor === head && !g.counts.pending && !g.counts.in_flight && !running && !behind.length) break;
			if (Date.now() > drainedBy) {
				setupViolations.push(`drain: not settled within 30 s: ${last}`);
				break;
			}
			await sleep(200);
		}
		log(`drained: ${last}`);
		stage.stopping = true;
		await within(Promise.all([...members, ...subscribers].map((a) => a.stop())), 15_000, undefined);

		const server = await readServer(base);
		const verdict = judge(rec, server, GROUP_SETTINGS, { heartbeatMs: HEARTBEAT_MS });
		const violations = [...setupViolations, ...verdict.violations];
		const faults = Object.fromEntries(
			FAULT_KINDS.map((k) => [k, rec.faults.filter((f) => f.kind === k).length]),
		) as Record<FaultKind, number>;
		const published = Object.fromEntries(
			PUBLISH_VIAS.map((via) => [via, [...rec.sent.values()].filter((s) => s.via === via).length]),
		) as Record<PublishVia, number>;
		const wallMs = Date.now() - wallStart;
		const table = render({
			ms,
			seed,
			wallMs,
			rec,
			server,
			verdict: verdict.counts,
			faults,
			published,
			violations,
			members,
		});
		return { violations, table, seed, faults, published, verdict: verdict.counts, wallMs };
	} finally {
		await proxy?.close();
		await runtime.kill9().catch(() => {});
		rmSync(state, { recursive: true, force: true });
	}
}

const n = (x: number) => x.toLocaleString("en-US");
const list = (m: Map<string, number> | Record<string, number>) =>
	(m instanceof Map ? [...m] : Object.entries(m))
		.filter(([, v]) => v > 0)
		.sort((a, b) => b[1] - a[1])
		.map(([k, v]) => `${k} ${n(v)}`)
		.join(", ") || "none";

function render(r: {
	ms: number;
	seed: number;
	wallMs: number;
	rec: Records;
	server: ServerView;
	verdict: Verdict["counts"];
	faults: Record<FaultKind, number>;
	published: Record<PublishVia, number>;
	violations: string[];
	members: Member[];
}): string {
	const { rec, server, verdict: c } = r;
	const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
	const sent = [...rec.sent.values()];
	const runs = rec.handlings;
	const poison = server.log.filter((m) => (m.data as { poison?: boolean }).poison).length;
	const chaos = ((rec.chaosEndedAt - rec.startedAt) / 1000).toFixed(1);
	const rows: [string, string][] = [
		[
			"duration",
			`${chaos} s of chaos (asked ${(r.ms / 1000).toFixed(0)} s), ${(r.wallMs / 1000).toFixed(1)} s in all, seed ${r.seed}`,
		],
		["faults", list(r.faults)],
		["published", `${n(sent.length)} messages: ${list(r.published)}`],
		["publish attempts", `${n(sent.reduce((a, s) => a + s.attempts, 0))} (requests/frames × messages)`],
		[
			"acknowledged",
			`${n(c.acknowledged)}; ${n(c.duplicateAnswers)} answers said duplicate (a retry deduped by its key); ${n(c.unacknowledged)} unacknowledged (${n(c.unacknowledgedStored)} of them stored)`,
		],
		["in log", `${n(c.inLog)} messages, head_seq ${n(server.headSeq)}, ${n(poison)} poison`],
		["deliveries", `${n(c.deliveries)} message frames to members`],
		[
			"handler runs",
			`${n(runs.length)}: ${n(c.handled)} ok (acked), ${n(c.nacked)} failed (poison, nacked), ${n(runs.filter((h) => h.outcome === "crashed").length)} crashed`,
		],
		["redeliveries", `${n(sum(c.redeliveries))}: ${list(c.redeliveries)}`],
		["duplicates", `${n(sum(c.duplicates))} (delivered again after a handler completed it): ${list(c.duplicates)}`],
		["overlapping runs", `${n(c.overlapping)} (a run began while another run of the seq was going)`],
		[
			"dead letters",
			`${n(c.deadLetters)}: ${n(poison)} poison, ${n(c.deadByFaults)} whose attempts were all spent by disconnects or lapsed leases (${n(c.deadByFaultsHandled)} of them handled, their acks lost)`,
		],
		[
			"group counts",
			`acked ${n(server.group.counts.acked)}, dead ${n(server.group.counts.dead)}, retried ${n(server.group.counts.retried)}, pending ${server.group.counts.pending}, in_flight ${server.group.counts.in_flight}`,
		],
		["members", r.members.map((m) => `${m.name} ×${m.incarnation}`).join(", ")],
		[
			"live subscribers",
			rec.subscribers.map((s) => `${s.name} ${n(s.seen.length)} msgs (${s.restarts} restarts)`).join(", "),
		],
		["sockets closed", list(c.socketsClosed)],
		["client error events", list(rec.clientErrors)],
		["violations", r.violations.length ? String(r.violations.length) : "none"],
	];
	const w = Math.max(...rows.map(([k]) => k.length));
	const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
	for (const v of r.violations) lines.push(`  ✗ ${v}`);
	return lines.join("\n");
}
