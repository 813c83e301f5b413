/**
 * The soak's actors: HTTP publishers (single and batch), WebSocket
 * publishers (raw `publish` frames), a publisher through the client
 * library's outbox, group members through `consume` (some of which crash in
 * the middle of a handler, or outlive their lease), and live subscribers
 * through `subscribe`. All of them go through the fault proxy and write down
 * what they did in the shared records (records.ts).
 * @module
 */
import WebSocket from "ws";
import type { SocketClass, Socket as TidingsSocket } from "../../src/client/link.js";
import {
	type GroupDelivery,
	type Message,
	type Subscription,
	Tidings,
	type TidingsError,
} from "../../src/client/node.js";
import type { Handling, PublishVia, Records, Role, Sent, SocketRecord, SubscriberRecord } from "./records.js";

/** A seeded generator (mulberry32): the soak's choices repeat for a seed, its timing does not. */
export class Rng {
	#s: number;
	constructor(seed: number) {
		this.#s = seed >>> 0;
	}
	next(): number {
		this.#s = (this.#s + 0x6d2b79f5) >>> 0;
		let t = this.#s;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	}
	/** A whole number in [min, max]. */
	int(min: number, max: number): number {
		return min + Math.floor(this.next() * (max - min + 1));
	}
	chance(p: number): boolean {
		return this.next() < p;
	}
	shuffle<T>(items: T[]): T[] {
		const a = [...items];
		for (let i = a.length - 1; i > 0; i--) {
			const j = this.int(0, i);
			[a[i], a[j]] = [a[j] as T, a[i] as T];
		}
		return a;
	}
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves with `p`, or with `fallback` after `ms`. */
export function within<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
	let timer: ReturnType<typeof setTimeout> | undefined;
	return Promise.race([
		p.finally(() => clearTimeout(timer)),
		new Promise<F>((r) => {
			timer = setTimeout(() => r(fallback), ms);
		}),
	]);
}

/** What every actor shares. */
export interface Stage {
	/** The fault proxy's URL. */
	url: string;
	topic: string;
	group: string;
	rec: Records;
	rng: Rng;
	/** Publishers make new messages while this is true. */
	producing: boolean;
	/** Retries give up after this (ms since the epoch). */
	giveUpAt: number;
	/** The end of the run: members and subscribers stop being remade. */
	stopping: boolean;
	poisonRate: number;
	heartbeatMs: number;
	ackTimeoutMs: number;
	/** Per handler run. */
	crashRate: number;
	slowRate: number;
	/** No crash or slow handler before this (ms since the epoch); the first of each is forced soon after. */
	chaosFrom: number;
	chaosUntil: number;
	forced: { crash: boolean; slow: boolean };
}

const clientTimers = { backoff: { minMs: 50, maxMs: 500 }, requestTimeoutMs: 3000 } as const;

function noteClientError(rec: Records, e: TidingsError) {
	rec.clientErrors.set(e.code, (rec.clientErrors.get(e.code) ?? 0) + 1);
}

/** A client whose sockets `probe` watches, with the soak's short timers; its errors are counted. */
function probedClient(stage: Stage, probe: Probe): Tidings {
	const client = new Tidings({
		url: stage.url,
		...clientTimers,
		heartbeatMs: stage.heartbeatMs,
		WebSocket: probe.SocketClass,
	});
	client.on("error", (e) => noteClientError(stage.rec, e));
	return client;
}

// ————————————————————————————————————————— sockets we can watch and kill

let socketIds = 0;

/**
 * The sockets of one member or subscriber incarnation (one `Tidings`
 * client). Its WebSocket class records each socket's life and, on a member
 * socket, each delivery as it comes off the wire; `crash()` kills the
 * sockets the way a dying process would: no close frame, and nothing it
 * still tries to send goes out.
 */
export class Probe {
	dead = false;
	shuttingDown = false;
	/** The socket made last: the one whose deliveries the consumer is handling. */
	current = 0;
	readonly #open = new Map<number, { kill(): void }>();
	readonly SocketClass: SocketClass;

	constructor(
		readonly owner: string,
		readonly role: Role,
		rec: Records,
	) {
		const probe = this;
		this.SocketClass = class TrackedSocket implements TidingsSocket {
			onopen: ((e: unknown) => void) | null = null;
			onmessage: ((e: { data: unknown }) => void) | null = null;
			onclose: ((e: { code: number; reason: string }) => void) | null = null;
			onerror: ((e: unknown) => void) | null = null;
			readonly #ws: WebSocket;
			readonly #record: SocketRecord;

			constructor(url: string, protocols: string[]) {
				if (probe.dead) throw new Error("this member has crashed");
				const id = ++socketIds;
				this.#record = { id, owner: probe.owner, role: probe.role };
				rec.sockets.set(id, this.#record);
				probe.current = id;
				const ws = new WebSocket(url, protocols);
				this.#ws = ws;
				probe.#open.set(id, this);
				ws.on("open", () => {
					this.#record.openedAt = Date.now();
					this.onopen?.({});
				});
				ws.on("message", (raw) => {
					const data = String(raw);
					if (probe.role === "member" && data !== "pong") {
						const at = Date.now();
						for (const line of data.split("\n")) {
							const frame = JSON.parse(line) as { type: string; message?: GroupDelivery };
							if (frame.type === "message" && frame.message) {
								const { seq, attempt, id: messageId } = frame.message;
								rec.deliveries.push({ socket: id, owner: probe.owner, seq, attempt, id: messageId, at });
							}
						}
					}
					this.onmessage?.({ data });
				});
				ws.on("close", (code, reason) => {
					probe.#open.delete(id);
					this.#closed("remote", code);
					this.onclose?.({ code, reason: String(reason) });
				});
				ws.on("error", (e) => this.onerror?.(e));
			}

			#closed(by: NonNullable<SocketRecord["closedBy"]>, code?: number) {
				if (this.#record.closedAt !== undefined) return;
				this.#record.closedAt = Date.now();
				this.#record.closedBy = probe.shuttingDown ? "shutdown" : by;
				this.#record.code = code;
			}

			send(data: string) {
				if (probe.dead) return; // a dead process sends nothing
				this.#ws.send(data);
			}

			close(code?: number) {
				this.#closed("local", code);
				this.#ws.close(code);
			}

			/** The socket dies with its process: no close frame. */
			kill() {
				this.#closed("crash");
				this.#ws.terminate();
			}
		};
	}

	/** The process died: its sockets end without a close frame, and it sends nothing more. */
	crash() {
		this.dead = true;
		for (const s of this.#open.values()) s.kill();
	}
}

// ————————————————————————————————————————— publishers

let poisonCount = 0;

function newMessage(stage: Stage, via: PublishVia, key: string): Sent {
	// The first message is poison for sure, so every run dead-letters something.
	const poison = poisonCount++ === 0 || stage.rng.chance(stage.poisonRate);
	const s: Sent = { key, via, poison, attempts: 0, duplicateAnswers: 0 };
	stage.rec.sent.set(key, s);
	return s;
}

const bodyOf = (s: Sent) => ({ data: s.poison ? { k: s.key, poison: true } : { k: s.key }, key: s.key });

interface WireResult {
	id?: string;
	seq?: number;
	duplicate?: boolean;
}

function acknowledge(s: Sent, r: WireResult | undefined) {
	if (!r || typeof r.seq !== "number" || typeof r.id !== "string") {
		s.rejected = `acknowledged without a seq: ${JSON.stringify(r)}`;
		return;
	}
	s.acked = { id: r.id, seq: r.seq, at: Date.now() };
	if (r.duplicate) s.duplicateAnswers++;
}

const backoff = (stage: Stage, attempt: number) => stage.rng.int(0, Math.min(500, 50 * 2 ** attempt));

/** Sends `items` over HTTP, as one request (a batch body when `batch`), until acknowledged or refused. */
async function sendHttp(stage: Stage, items: Sent[], batch: boolean) {
	const url = `${stage.url}/v1/topics/${stage.topic}/messages`;
	const body = JSON.stringify(batch ? { messages: items.map(bodyOf) } : bodyOf(items[0] as Sent));
	for (let attempt = 0; Date.now() < stage.giveUpAt; attempt++) {
		for (const s of items) s.attempts++;
		try {
			const res = await fetch(url, {
				method: "POST",
				headers: { "content-type": "application/json" },
				body,
				signal: AbortSignal.timeout(3000),
			});
			const text = await res.text();
			if (res.status === 200 || res.status === 201) {
				const answer = JSON.parse(text) as WireResult & { messages?: WireResult[] };
				items.forEach((s, i) => {
					acknowledge(s, batch ? answer.messages?.[i] : answer);
				});
				return;
			}
			if (res.status < 500 && res.status !== 429) {
				for (const s of items) s.rejected = `HTTP ${res.status} ${text.slice(0, 200)}`;
				return;
			}
		} catch {
			// a cut, a lost answer, a timeout, the runtime down: retry with the same keys
		}
		await sleep(backoff(stage, attempt));
	}
}

/** Publishes over HTTP, one message per request or batches of 2–20, each with its own key. */
export async function httpPublisher(stage: Stage, name: string, batch: boolean, pauseMs: number) {
	const via: PublishVia = batch ? "http-batch" : "http-single";
	for (let n = 0; stage.producing; ) {
		const size = batch ? stage.rng.int(2, 20) : 1;
		const items = Array.from({ length: size }, () => newMessage(stage, via, `${name}-${n++}`));
		await sendHttp(stage, items, batch);
		await sleep(stage.rng.int(0, pauseMs));
	}
}

/**
 * Publishes with `publish` frames on a live socket of the topic, single
 * messages and batches, and resends the same keys on a new socket when the
 * answer does not come.
 */
export async function wsPublisher(stage: Stage, name: string, pauseMs: number) {
	const wsUrl = `${stage.url.replace(/^http/, "ws")}/v1/topics/${stage.topic}/ws?from=latest`;
	let ws: WebSocket | undefined;
	const waiting = new Map<string, (frame: { type: string; code?: string } | undefined) => void>();
	const drop = () => {
		ws?.terminate();
		ws = undefined;
		for (const w of waiting.values()) w(undefined);
		waiting.clear();
	};
	const connect = () =>
		new Promise<WebSocket>((resolve, reject) => {
			const s = new WebSocket(wsUrl, ["tidings"]);
			const timer = setTimeout(() => {
				s.terminate();
				reject(new Error("connect timeout"));
			}, 3000);
			s.on("open", () => {
				clearTimeout(timer);
				resolve(s);
			});
			s.on("error", () => {
				clearTimeout(timer);
				reject(new Error("connect failed"));
			});
			s.on("close", () => {
				if (ws === s) drop();
			});
			s.on("message", (raw) => {
				const text = String(raw);
				if (text === "pong") return;
				for (const line of text.split("\n")) {
					const frame = JSON.parse(line) as { type: string; ref?: string; code?: string };
					if (frame.ref === undefined) continue;
					waiting.get(frame.ref)?.(frame);
					waiting.delete(frame.ref);
				}
			});
		});
	let frames = 0;
	for (let n = 0; stage.producing; ) {
		const batch = stage.rng.chance(0.3);
		const via: PublishVia = batch ? "ws-batch" : "ws-single";
		const items = Array.from({ length: batch ? stage.rng.int(2, 10) : 1 }, () =>
			newMessage(stage, via, `${name}-${n++}`),
		);
		for (let attempt = 0; Date.now() < stage.giveUpAt; attempt++) {
			if (!ws) {
				try {
					ws = await connect();
				} catch {
					await sleep(backoff(stage, attempt));
					continue;
				}
			}
			const ref = `${name}-${frames++}`;
			const answer = new Promise<{ type: string; code?: string; messages?: WireResult[] } | undefined>((r) =>
				waiting.set(ref, r),
			);
			for (const s of items) s.attempts++;
			const frame = batch
				? { type: "publish", ref, messages: items.map(bodyOf) }
				: { type: "publish", ref, ...bodyOf(items[0] as Sent) };
			try {
				ws.send(JSON.stringify(frame));
			} catch {
				drop();
				continue;
			}
			const got = await within(answer, 3000, undefined);
			if (!got) {
				drop(); // no answer: the link is dead or the answer was lost; resend on a new socket
				await sleep(backoff(stage, attempt));
				continue;
			}
			if (got.type === "published") {
				items.forEach((s, i) => {
					acknowledge(s, batch ? got.messages?.[i] : (got as WireResult));
				});
				break;
			}
			if (got.code === "internal" || got.code === "unavailable" || got.code === "rate_limited") continue;
			for (const s of items) s.rejected = `error frame ${JSON.stringify(got)}`;
			break;
		}
		await sleep(stage.rng.int(0, pauseMs));
	}
	drop();
}

/** Publishes through the client library (outbox, batching, retries), `wait: true`, a few in flight. */
export async function clientPublisher(stage: Stage, name: string, pauseMs: number) {
	const client = new Tidings({ url: stage.url, ...clientTimers, heartbeatMs: stage.heartbeatMs });
	client.on("error", (e) => noteClientError(stage.rec, e));
	const inFlight = new Set<Promise<void>>();
	for (let n = 0; stage.producing; ) {
		const s = newMessage(stage, "client", `${name}-${n++}`);
		s.attempts++;
		const { data, key } = bodyOf(s);
		const p = client.publish(stage.topic, data, { key, wait: true }).then(
			(r) => acknowledge(s, "seq" in r ? (r as WireResult) : undefined),
			(e: TidingsError) => {
				if (e.code !== "closed") s.rejected = `${e.code}: ${e.message}`;
			},
		);
		inFlight.add(p);
		void p.finally(() => inFlight.delete(p));
		if (inFlight.size >= 20) await Promise.race(inFlight);
		await sleep(stage.rng.int(0, pauseMs));
	}
	await within(Promise.all(inFlight), Math.max(0, stage.giveUpAt - Date.now()), undefined);
	await within(client.close(), 3000, undefined);
}

// ————————————————————————————————————————— group members

export interface MemberShape {
	concurrency: number;
	prefetch: number;
}

/** A group member that, now and then, dies in the middle of a handler and is started again (a new process). */
export class Member {
	incarnation = 0;
	crashes = 0;
	#client?: Tidings;
	#stop?: () => Promise<void>;
	#slowRunning = false;
	#restarting?: Promise<void>;
	readonly #left = new Set<Promise<unknown>>();

	constructor(
		readonly stage: Stage,
		readonly name: string,
		readonly shape: MemberShape,
	) {
		this.#start();
	}

	#start() {
		const owner = `${this.name}#${++this.incarnation}`;
		const probe = new Probe(owner, "member", this.stage.rec);
		const client = probedClient(this.stage, probe);
		const consumer = client.consume<{ k: string; poison?: boolean }>(
			this.stage.topic,
			(m) => this.#handle(probe, owner, m),
			{ group: this.stage.group, ...this.shape },
		);
		this.#client = client;
		this.#stop = async () => {
			probe.shuttingDown = true;
			await within(consumer.stop(), 5000, undefined);
			await within(client.close(), 3000, undefined);
		};
	}

	async #handle(probe: Probe, owner: string, m: GroupDelivery<{ k: string; poison?: boolean }>) {
		const stage = this.stage;
		const h: Handling = { owner, socket: probe.current, seq: m.seq, attempt: m.attempt, start: Date.now() };
		stage.rec.handlings.push(h);
		const now = Date.now();
		const chaos = now >= stage.chaosFrom && now < stage.chaosUntil && !stage.stopping;
		if (m.data.poison) {
			await sleep(stage.rng.int(0, 3));
			h.end = Date.now();
			h.outcome = "failed";
			throw new Error("poison: this message always fails");
		}
		const forceCrash = chaos && !stage.forced.crash && now >= stage.chaosFrom + 2000;
		if (!probe.dead && chaos && (forceCrash || stage.rng.chance(stage.crashRate))) {
			stage.forced.crash = true;
			await sleep(stage.rng.int(0, 5)); // in the middle of the work
			this.#crash(probe, owner);
			h.end = Date.now();
			h.outcome = "crashed";
			throw new Error("crashed"); // not sent: the process is dead
		}
		const forceSlow = chaos && !stage.forced.slow && now >= stage.chaosFrom + 4000;
		if (chaos && !this.#slowRunning && (forceSlow || stage.rng.chance(stage.slowRate))) {
			// Outlives its lease: the group gives the message to another member meanwhile.
			stage.forced.slow = true;
			this.#slowRunning = true;
			const at = Date.now();
			stage.rec.faults.push({ kind: "slow", at, until: at, detail: `${owner} seq ${m.seq}` });
			await sleep(stage.ackTimeoutMs + 500);
			this.#slowRunning = false;
		} else await sleep(stage.rng.int(0, 4));
		h.end = Date.now();
		h.outcome = "ok";
	}

	#crash(probe: Probe, owner: string) {
		this.crashes++;
		const at = Date.now();
		this.stage.rec.faults.push({ kind: "crash", at, until: at, detail: owner });
		probe.crash();
		const client = this.#client as Tidings;
		// What is left of the dead process is cleaned up in the background; a new one starts soon.
		const closing = within(client.close(), 10_000, undefined);
		this.#left.add(closing);
		void closing.finally(() => this.#left.delete(closing));
		this.#restarting = sleep(this.stage.rng.int(100, 600)).then(() => {
			if (!this.stage.stopping) this.#start();
		});
	}

	/** Stops the current incarnation (its running handlers finish and ack) and waits for the dead ones' leftovers. */
	async stop() {
		await this.#restarting;
		await this.#stop?.();
		await Promise.all(this.#left);
	}
}

// ————————————————————————————————————————— live subscribers

/** A live subscriber from the earliest seq; `restart()` throws its client away and resumes from its own last seq. */
export class Subscriber {
	readonly record: SubscriberRecord;
	#client?: Tidings;
	#sub?: Subscription;
	#probe?: Probe;
	#incarnation = 0;

	constructor(
		readonly stage: Stage,
		name: string,
	) {
		this.record = { name, seen: [], gaps: [], restarts: 0 };
		stage.rec.subscribers.push(this.record);
		this.#start("earliest");
	}

	get lastSeq(): number | undefined {
		return this.record.seen.at(-1)?.seq;
	}

	#start(from: "earliest" | number) {
		const probe = new Probe(`${this.record.name}#${++this.#incarnation}`, "subscriber", this.stage.rec);
		const client = probedClient(this.stage, probe);
		this.#sub = client.subscribe(
			this.stage.topic,
			(m: Message) => {
				this.record.seen.push({ seq: m.seq, id: m.id });
			},
			{ from, onGap: (g) => this.record.gaps.push(g) },
		);
		this.#client = client;
		this.#probe = probe;
	}

	/** Like a page reload: a new client, resuming after the last seq this subscriber saw. */
	async restart() {
		const old = this.#client;
		if (this.#probe) this.#probe.shuttingDown = true;
		await within(old?.close() ?? Promise.resolve(), 3000, undefined);
		this.record.restarts++;
		this.#start(this.lastSeq ?? "earliest");
	}

	get subscription(): Subscription | undefined {
		return this.#sub;
	}

	async stop() {
		if (this.#probe) this.#probe.shuttingDown = true;
		await within(this.#client?.close() ?? Promise.resolve(), 3000, undefined);
	}
}
