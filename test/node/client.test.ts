/**
 * The client in Node against the real Worker on workerd (`wrangler dev`),
 * with a fault proxy in between to drop, blackhole and refuse connections.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { Message } from "../../src/client/index.js";
import type { SocketClass } from "../../src/client/link.js";
import {
	type ConnectionState,
	type GroupDelivery,
	MemoryOutbox,
	Tidings,
	TidingsError,
} from "../../src/client/node.js";
import { eventually } from "../shared/eventually.js";
import { type FaultProxy, startFaultProxy } from "./fault-proxy.js";
import { type DevServer, freePort, startDev } from "./wrangler-dev.js";

const state = mkdtempSync(path.join(os.tmpdir(), "tidings-client-"));
let server: DevServer;
let proxy: FaultProxy;
const clients: Tidings[] = [];

beforeAll(async () => {
	server = await startDev(state, await freePort());
	proxy = await startFaultProxy(Number(new URL(server.url).port));
}, 90_000);

afterEach(() => {
	proxy.fault = "none";
});

afterAll(async () => {
	await Promise.all(clients.map((c) => c.close().catch(() => {})));
	await proxy?.close();
	await server?.kill9().catch(() => {});
	rmSync(state, { recursive: true, force: true });
});

/** A client through the fault proxy, with short timers so faults show within a test. */
function client(extra: Partial<ConstructorParameters<typeof Tidings>[0]> = {}) {
	const c = new Tidings({
		url: proxy.url,
		heartbeatMs: 300,
		backoff: { minMs: 50, maxMs: 400 },
		requestTimeoutMs: 2000,
		...extra,
	});
	clients.push(c);
	return c;
}

/** Publishes straight to the server (not through the proxy or the client). */
async function publishDirect(topic: string, data: unknown[]) {
	const res = await fetch(`${server.url}/v1/topics/${topic}/messages`, {
		method: "POST",
		headers: { "content-type": "application/json" },
		body: JSON.stringify({ messages: data.map((d) => ({ data: d })) }),
	});
	expect(res.status).toBe(201);
	return ((await res.json()) as { messages: { seq: number }[] }).messages;
}

async function history(topic: string): Promise<Message[]> {
	const res = await fetch(`${server.url}/v1/topics/${topic}/messages?after=0&limit=1000`);
	return ((await res.json()) as { messages: Message[] }).messages;
}

function seqsOf(received: Message[]) {
	return received.map((m) => m.seq);
}
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * Node's `ws`, recording each socket the client opens (its URL, subprotocols,
 * the frames it sends, how it closed), and able to end one the way the
 * server ends a socket with a close code: the client's close handler hears
 * that code, and the connection goes.
 */
function recordingSockets() {
	class Recorded extends WebSocket {
		static all: Recorded[] = [];
		readonly openedAt = Date.now();
		readonly sent: { type: string; seq?: number; seqs?: unknown[] }[] = [];
		readonly closes: number[] = [];
		constructor(
			readonly requestedUrl: string,
			readonly protocols: string[],
		) {
			super(requestedUrl, protocols);
			Recorded.all.push(this);
			this.addEventListener("close", (e) => this.closes.push(e.code));
		}
		override send(data: string) {
			if (data !== "ping") this.sent.push(JSON.parse(data));
			super.send(data);
		}
		/** As if the server closed this socket with `code`. */
		serverClose(code: number) {
			const onclose = this.onclose as ((e: { code: number; reason: string }) => void) | null;
			this.terminate();
			onclose?.({ code, reason: "closed by the test" });
		}
	}
	return Recorded;
}

describe("publish and subscribe", () => {
	it("publishes with a key, resolves with id and seq, and delivers to a subscriber", async () => {
		const c = client();
		const got: Message<{ n: number }>[] = [];
		const sub = c.subscribe<{ n: number }>("client.basic", (m) => {
			got.push(m);
		});
		await eventually(() => sub.state === "open", "open", 10_000);
		await eventually(() => sub.lastSeq !== undefined, "ready", 10_000);
		const r = await c.publish("client.basic", { n: 1 }, { attributes: { kind: "a" } });
		expect("seq" in r && r.seq).toBe(1);
		expect(r.key).toMatch(/^[0-9a-f-]{36}$/);
		await eventually(() => got.length === 1, "delivery", 10_000);
		expect(got[0]?.data).toEqual({ n: 1 });
		expect(got[0]?.attributes).toEqual({ kind: "a" });
		expect(got[0]?.key).toBe(r.key);
		expect(await c.outbox.size()).toBe(0);
		expect(c.state).toBe("connected");
	});

	it("asks for packed messages, and reads a burst that arrives packed", async () => {
		/** Node's `ws`, recording the subprotocol the server chose and every WebSocket message. */
		class Recording extends WebSocket {
			static last: Recording | undefined;
			readonly texts: string[] = [];
			constructor(url: string, protocols: string[]) {
				super(url, protocols);
				Recording.last = this;
				this.on("message", (data) => this.texts.push(String(data)));
			}
		}
		const c = client({ WebSocket: Recording as unknown as SocketClass });
		const got: Message[] = [];
		const sub = c.subscribe("client.packed", (m) => {
			got.push(m);
		});
		await eventually(() => sub.lastSeq !== undefined, "ready", 10_000);
		await publishDirect("client.packed", range(1, 20));
		await eventually(() => got.length === 20, "20 messages", 10_000);
		expect(seqsOf(got)).toEqual(range(1, 20));
		const ws = Recording.last as Recording;
		expect(ws.protocol).toBe("tidings.pack");
		// ready, then the batch in one message.
		expect(ws.texts).toHaveLength(2);
	});

	it("drops a socket whose stream is corrupt and resumes on a new one, losing and repeating nothing", async () => {
		/** Node's `ws`, with the first socket's second message (after `ready`) garbled, as a broken proxy would. */
		class Garbling extends WebSocket {
			static opened = 0;
			readonly #first: boolean;
			#messages = 0;
			constructor(url: string, protocols: string[]) {
				super(url, protocols);
				this.#first = ++Garbling.opened === 1;
			}
			override emit(event: string | symbol, ...args: unknown[]): boolean {
				if (event === "message" && this.#first && ++this.#messages === 2) args[0] = Buffer.from('{"type":"mess');
				return super.emit(event, ...args);
			}
		}
		await publishDirect("client.garbled", range(1, 5));
		const c = client({ WebSocket: Garbling as unknown as SocketClass });
		const got: Message[] = [];
		const sub = c.subscribe("client.garbled", (m) => void got.push(m), { from: "earliest" });
		await eventually(() => sub.lastSeq !== undefined, "ready", 10_000);
		await publishDirect("client.garbled", range(6, 10));
		await eventually(() => got.length >= 10, "10 messages", 10_000);
		await new Promise((r) => setTimeout(r, 200));
		expect(seqsOf(got)).toEqual(range(1, 10));
		expect(Garbling.opened).toBeGreaterThanOrEqual(2);
	});

	it("rejects a refused publish with a typed error and removes it from the outbox", async () => {
		const c = client();
		const rejected: string[] = [];
		c.on("rejected", ({ error }) => rejected.push(error.code));
		const err = await c.publish("bad topic!", 1).catch((e) => e);
		expect(err).toBeInstanceOf(TidingsError);
		expect(err.code).toBe("invalid_request");
		expect(err.status).toBe(400);
		expect(err.retryable).toBe(false);
		expect(rejected).toEqual(["invalid_request"]);
		expect(await c.outbox.size()).toBe(0);
	});

	it("sends a batch in which one message is refused: the others are stored, in order, the bad one rejected", async () => {
		const c = client({ outbox: new MemoryOutbox() });
		const big = "x".repeat(130 * 1024); // over the 128 KiB data limit
		const results = await Promise.allSettled([
			c.publish("client.mixed", 1),
			c.publish("client.mixed", big),
			c.publish("client.mixed", 3),
		]);
		expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
		expect(((results[1] as PromiseRejectedResult).reason as TidingsError).code).toBe("payload_too_large");
		expect((await history("client.mixed")).map((m) => m.data)).toEqual([1, 3]);
	});

	it("a typed topic handle: publishes and subscribes typed; what the topic's schema refuses rejects with schema_mismatch", async () => {
		type Order = { id: string; qty: number };
		const put = await fetch(`${server.url}/v1/topics/client.orders`, {
			method: "PUT",
			headers: { "Content-Type": "application/json" },
			body: JSON.stringify({
				schema: { type: "object", required: ["id", "qty"], properties: { qty: { type: "integer", minimum: 1 } } },
			}),
		});
		expect(put.status).toBe(200);
		const c = client({ outbox: new MemoryOutbox() });
		const orders = c.topic<Order>("client.orders");
		const seen: Message<Order>[] = [];
		orders.subscribe((m) => seen.push(m), { from: "earliest" });
		const results = await Promise.allSettled([
			orders.publish({ id: "a", qty: 1 }),
			orders.publish({ id: "b", qty: 0 }),
			orders.publish({ id: "c", qty: 3 }),
		]);
		expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
		const refused = (results[1] as PromiseRejectedResult).reason as TidingsError;
		expect(refused.code).toBe("schema_mismatch");
		expect(refused.message).toMatch(/at \/qty/);
		await eventually(() => seen.length === 2, "two orders delivered");
		expect(seen.map((m) => [m.data.id, m.schema_revision])).toEqual([
			["a", 1],
			["c", 1],
		]);
	});
});

describe("sockets the server refuses", () => {
	it("stops, with the server's reason as an error event, instead of retrying what cannot succeed", async () => {
		const c = client();
		const errors: TidingsError[] = [];
		c.on("error", (e) => errors.push(e));
		const sub = c.subscribe("bad topic!", () => {});
		const worker = c.consume("client.nogroup", () => {}, { group: "missing" });
		await eventually(() => sub.state === "closed" && worker.state === "closed", "both to give up", 10_000);
		expect(errors.map((e) => e.code).sort()).toEqual(["invalid_request", "not_found"]);
		expect(errors.find((e) => e.code === "not_found")?.message).toMatch(/no group missing/);
		const attempts = proxy.connections;
		await new Promise((r) => setTimeout(r, 800)); // several backoffs' worth
		expect(proxy.connections).toBe(attempts);
		await worker.stop(); // resolves at once: nothing runs
	});
});

describe("reconnect and resume", () => {
	it("reconnects after the server side drops the socket and resumes with no gap and no duplicate", async () => {
		const c = client();
		const states: ConnectionState[] = [];
		c.on("state", (s) => states.push(s));
		const got: Message[] = [];
		const sub = c.subscribe(
			"client.drop",
			(m) => {
				got.push(m);
			},
			{ from: "earliest" },
		);
		await publishDirect("client.drop", range(1, 20));
		await eventually(() => got.length === 20, "first 20", 10_000);
		proxy.cut();
		await publishDirect("client.drop", range(21, 40)); // published while the socket is down
		await eventually(() => got.length === 40, "resume", 10_000);
		expect(seqsOf(got)).toEqual(range(1, 40));
		expect(states).toContain("connecting");
		await eventually(() => sub.state === "open", "the subscription open again", 15_000);
		expect(c.state).toBe("connected");
	});

	it("resumes across a publish storm with repeated drops: every seq once, in order", async () => {
		const c = client();
		const got: Message[] = [];
		c.subscribe(
			"client.storm",
			(m) => {
				got.push(m);
			},
			{ from: "earliest" },
		);
		let publishing = true;
		let published = 0;
		const storm = (async () => {
			while (publishing) {
				await publishDirect("client.storm", range(1, 25));
				published += 25;
			}
		})();
		for (let i = 0; i < 8; i++) {
			await new Promise((r) => setTimeout(r, 150));
			proxy.cut();
		}
		publishing = false;
		await storm;
		await eventually(() => got.length >= published, `all ${published} messages`, 20_000);
		expect(published).toBeGreaterThan(100);
		expect(seqsOf(got)).toEqual(range(1, published));
	});

	it("detects a dead connection by heartbeat within two heartbeats and reconnects", async () => {
		const c = client();
		const got: Message[] = [];
		const sub = c.subscribe(
			"client.dead",
			(m) => {
				got.push(m);
			},
			{ from: "earliest" },
		);
		await eventually(() => sub.state === "open", "the subscription open", 15_000);
		proxy.fault = "blackhole";
		const t0 = Date.now();
		await eventually(() => sub.state === "connecting", "the dead socket to be noticed", 5000);
		const detectedMs = Date.now() - t0;
		expect(detectedMs).toBeLessThanOrEqual(2 * 300 + 200);
		await publishDirect("client.dead", ["while dead"]);
		proxy.fault = "none";
		await eventually(() => got.length === 1, "the message after reconnect", 10_000);
		expect(got[0]?.data).toBe("while dead");
	});
});

describe("the outbox", () => {
	it("queues publishes while the server is unreachable, resolving {queued: true}, and flushes them in order when it returns", async () => {
		proxy.fault = "refuse";
		proxy.cut(); // pooled keep-alive connections too
		const c = client();
		const published: unknown[] = [];
		c.on("published", ({ entry }) => published.push(entry.message.data));
		const results = [];
		for (let i = 1; i <= 10; i++) results.push(await c.publish("client.outbox", i));
		expect(results.every((r) => "queued" in r && r.queued)).toBe(true);
		expect(await c.outbox.size()).toBe(10);
		expect((await c.outbox.entries()).map((e) => e.message.data)).toEqual(range(1, 10));
		await eventually(() => c.state === "offline", "offline state", 5000);
		proxy.fault = "none";
		await eventually(async () => (await c.outbox.size()) === 0, "the flush", 15_000);
		expect((await history("client.outbox")).map((m) => m.data)).toEqual(range(1, 10));
		expect(published).toEqual(range(1, 10));
		await eventually(() => c.state === "connected", "connected state", 5000);
	});

	it("with wait: true, resolves only when the message is stored", async () => {
		proxy.fault = "refuse";
		proxy.cut(); // pooled keep-alive connections too
		const c = client();
		let settled = false;
		const p = c.publish("client.wait", "w", { wait: true }).then((r) => {
			settled = true;
			return r;
		});
		await new Promise((r) => setTimeout(r, 500));
		expect(settled).toBe(false);
		proxy.fault = "none";
		const r = await p;
		expect("seq" in r && r.seq).toBe(1);
	});

	it("retries a publish whose answer was lost with the same key: stored once", async () => {
		const c = client();
		proxy.fault = "lose-replies";
		const p = c.publish("client.idem", { once: true }, { wait: true });
		await eventually(async () => (await history("client.idem")).length === 1, "the server to store it", 10_000);
		expect(await c.outbox.size()).toBe(1); // no answer, so still in the outbox
		proxy.fault = "none";
		const r = await p;
		expect("duplicate" in r && r.duplicate).toBe(true);
		const stored = await history("client.idem");
		expect(stored).toHaveLength(1);
		expect(stored[0]?.key).toBe(r.key);
		expect(await c.outbox.size()).toBe(0);
	});

	it("flushes what an earlier client left in a shared outbox as soon as a new client starts", async () => {
		proxy.fault = "refuse";
		proxy.cut(); // pooled keep-alive connections too
		const outbox = new MemoryOutbox();
		const first = client({ outbox });
		for (const n of [1, 2, 3]) await first.publish("client.left", n);
		await first.close();
		expect(await outbox.size()).toBe(3);
		proxy.fault = "none";
		client({ outbox, name: "second" });
		await eventually(async () => (await outbox.size()) === 0, "the new client's flush", 10_000);
		expect((await history("client.left")).map((m) => m.data)).toEqual([1, 2, 3]);
	});
});

describe("clients sharing one outbox", () => {
	it("flush one at a time and settle each other's publishes: each stored once, each client's order kept", async () => {
		proxy.fault = "refuse";
		proxy.cut();
		const outbox = new MemoryOutbox();
		const [a, b] = [client({ outbox }), client({ outbox })];
		const heard: unknown[] = [];
		a.on("published", ({ entry }) => heard.push(entry.message.data));
		const pending = [1, 2, 3].flatMap((n) => [
			a.publish("client.shared", `a${n}`, { wait: true }),
			b.publish("client.shared", `b${n}`, { wait: true }),
		]);
		await eventually(async () => (await outbox.size()) === 6, "six queued publishes", 15_000);
		proxy.fault = "none";
		const results = await Promise.all(pending);
		expect(results.every((r) => "seq" in r && !("duplicate" in r))).toBe(true);
		const stored = (await history("client.shared")).map((m) => m.data);
		expect(stored).toHaveLength(6);
		expect(stored.filter((d) => String(d).startsWith("a"))).toEqual(["a1", "a2", "a3"]);
		expect(stored.filter((d) => String(d).startsWith("b"))).toEqual(["b1", "b2", "b3"]);
		expect([...heard].sort()).toEqual([...stored].sort());
	});
});

describe("closing and clearing", () => {
	it("takes no new socket once close() has begun, and a handler that closes its subscription hears nothing more", async () => {
		const c = client();
		const got: number[] = [];
		const sub = c.subscribe(
			"client.selfclose",
			(m) => {
				got.push(m.seq);
				if (m.seq === 2) void sub.close();
			},
			{ from: "earliest" },
		);
		await publishDirect("client.selfclose", range(1, 5)); // one batch: packed into one WebSocket message
		await eventually(() => got.length >= 2, "two messages", 10_000);
		await new Promise((r) => setTimeout(r, 300));
		expect(got).toEqual([1, 2]);
		const closing = c.close();
		expect(() => c.subscribe("client.selfclose", () => {})).toThrow(/closed/);
		await closing;
		expect(c.state).toBe("closed");
	});

	it("close() rejects a wait: true publish with `closed` and keeps it in the outbox; others resolve queued", async () => {
		proxy.fault = "refuse";
		proxy.cut();
		const outbox = new MemoryOutbox();
		const c = client({ outbox });
		const waiting = c.publish("client.closing", 1, { wait: true }).catch((e: unknown) => e);
		const queued = await c.publish("client.closing", 2);
		expect(queued).toMatchObject({ queued: true });
		await c.close();
		const err = (await waiting) as TidingsError;
		expect(err).toBeInstanceOf(TidingsError);
		expect(err.code).toBe("closed");
		expect(await outbox.size()).toBe(2);
		await expect(c.publish("client.closing", 3)).rejects.toMatchObject({ code: "closed" });
	});

	it("outbox.clear() drops unsent publishes and rejects their promises with `cancelled`", async () => {
		proxy.fault = "refuse";
		proxy.cut();
		const c = client();
		const waiting = c.publish("client.cleared", 1, { wait: true }).catch((e: unknown) => e);
		// Once the send failed: a request already in flight cannot be recalled.
		await eventually(() => c.state === "offline", "the failed send", 5000);
		await c.outbox.clear();
		expect(await waiting).toMatchObject({ code: "cancelled" });
		expect(await c.outbox.size()).toBe(0);
		proxy.fault = "none";
		await new Promise((r) => setTimeout(r, 600));
		expect(await history("client.cleared")).toHaveLength(0);
	});
});

describe("consume", () => {
	async function createGroup(topic: string, group: string, settings: object = {}) {
		const res = await fetch(`${server.url}/v1/topics/${topic}/groups/${group}`, {
			method: "PUT",
			headers: { "content-type": "application/json" },
			body: JSON.stringify({ start: "earliest", retry_delay_ms: 50, ...settings }),
		});
		expect(res.status).toBeLessThan(300);
		await res.arrayBuffer();
	}
	async function groupCounts(topic: string, group: string) {
		const res = await fetch(`${server.url}/v1/topics/${topic}/groups/${group}`);
		return ((await res.json()) as { counts: { acked: number; in_flight: number; pending: number; retried: number } })
			.counts;
	}

	it("runs at most `concurrency` handlers at once, acks on resolve, nacks on throw and gets the retry", async () => {
		await createGroup("client.jobs", "workers");
		const c = client();
		let running = 0;
		let peak = 0;
		const done = new Set<number>();
		const attempts = new Map<number, number>();
		const worker = c.consume<{ n: number }>(
			"client.jobs",
			async (m: GroupDelivery<{ n: number }>) => {
				running++;
				peak = Math.max(peak, running);
				attempts.set(m.data.n, m.attempt);
				await new Promise((r) => setTimeout(r, 20));
				running--;
				if (m.data.n % 10 === 0 && m.attempt === 1) throw new Error("first attempt fails");
				done.add(m.data.n);
			},
			{ group: "workers", concurrency: 4 },
		);
		await publishDirect(
			"client.jobs",
			range(1, 40).map((n) => ({ n })),
		);
		await eventually(() => done.size === 40, "40 jobs", 20_000);
		expect(peak).toBe(4);
		for (const n of [10, 20, 30, 40]) expect(attempts.get(n)).toBe(2);
		await eventually(async () => (await groupCounts("client.jobs", "workers")).acked === 40, "40 acks", 5000);
		await worker.stop();
	});

	it("sends the acks of handlers that finish together as one frame of ranges, and a lone ack at once", async () => {
		await createGroup("client.batched", "workers");
		/** Node's `ws`, recording every frame the client sends. */
		class Sent extends WebSocket {
			static frames: { type: string; seq?: number; seqs?: unknown[] }[] = [];
			override send(data: string) {
				Sent.frames.push(JSON.parse(data));
				super.send(data);
			}
		}
		const c = client({ WebSocket: Sent as unknown as SocketClass });
		const release: (() => void)[] = [];
		let handled = 0;
		const worker = c.consume(
			"client.batched",
			async () => {
				await new Promise<void>((r) => release.push(r));
				handled++;
			},
			{ group: "workers", concurrency: 20 },
		);
		await publishDirect("client.batched", range(1, 20));
		await eventually(() => release.length === 20, "20 handlers running", 10_000);
		for (const r of release.splice(0)) r();
		await eventually(async () => (await groupCounts("client.batched", "workers")).acked === 20, "20 acks", 5000);
		const acks = Sent.frames.filter((f) => f.type === "ack");
		expect(acks).toEqual([{ type: "ack", seqs: [[1, 20]] }]);
		// One handler finishing alone: its ack goes at once, as a single seq.
		await publishDirect("client.batched", [21]);
		await eventually(() => release.length === 1, "one more", 10_000);
		release.splice(0)[0]?.();
		await eventually(() => Sent.frames.filter((f) => f.type === "ack").length === 2, "second ack", 5000);
		expect(Sent.frames.filter((f) => f.type === "ack")[1]).toEqual({ type: "ack", seq: 21 });
		expect(handled).toBe(21);
		await worker.stop();
	});

	it("stop() lets running handlers finish and ack, then leaves the group", async () => {
		await createGroup("client.drain", "workers");
		const c = client();
		let started = 0;
		let finished = 0;
		const worker = c.consume(
			"client.drain",
			async () => {
				started++;
				await new Promise((r) => setTimeout(r, 300));
				finished++;
			},
			{ group: "workers", concurrency: 2 },
		);
		await publishDirect("client.drain", range(1, 6));
		await eventually(() => started === 2, "two handlers", 10_000);
		await worker.stop();
		expect(finished).toBe(2);
		expect(started).toBe(2);
		expect(worker.state).toBe("closed");
		const counts = await groupCounts("client.drain", "workers");
		expect(counts.acked).toBe(2);
		expect(counts.in_flight).toBe(0);
		// The member drained before acking: nothing was leased to it after stop(), so no attempt was spent.
		expect(counts.retried).toBe(0);
		expect(counts.pending).toBe(4);
	});

	it("re-joins the group after a drop; what the dropped socket held is delivered again", async () => {
		await createGroup("client.rejoin", "workers");
		const c = client();
		const seen: number[] = [];
		c.consume(
			"client.rejoin",
			async (m) => {
				seen.push(m.seq);
			},
			{ group: "workers", concurrency: 2 },
		);
		await publishDirect("client.rejoin", range(1, 10));
		await eventually(() => seen.length >= 10, "first pass", 10_000);
		proxy.cut();
		await publishDirect("client.rejoin", range(11, 20));
		await eventually(async () => (await groupCounts("client.rejoin", "workers")).acked === 20, "20 acks", 15_000);
		expect(new Set(seen)).toEqual(new Set(range(1, 20)));
	});

	it("a handler still running when its socket drops gets the message again with attempt 2; its own ack is never sent, nor does it void the new socket's acks", async () => {
		await createGroup("client.atleast", "workers", { retry_delay_ms: 0, ack_timeout_ms: 60_000 });
		const Recorded = recordingSockets();
		const c = client({ WebSocket: Recorded as unknown as SocketClass });
		const running = new Map<string, () => void>();
		const deliveries: [number, number][] = [];
		const worker = c.consume(
			"client.atleast",
			async (m) => {
				deliveries.push([m.seq, m.attempt]);
				await new Promise<void>((r) => running.set(`${m.seq}/${m.attempt}`, r));
			},
			{ group: "workers", concurrency: 3 },
		);
		await publishDirect("client.atleast", ["one"]);
		await eventually(() => running.has("1/1"), "seq 1, attempt 1", 10_000);
		const first = Recorded.all.at(-1) as InstanceType<typeof Recorded>;
		proxy.cut();
		// The server gave seq 1 back when the socket dropped: the new socket gets it again.
		await eventually(() => running.has("1/2"), "seq 1, attempt 2", 10_000);
		await publishDirect("client.atleast", ["two"]);
		await eventually(() => running.has("2/1"), "seq 2", 10_000);
		// The new socket's handlers finish, and the old one right behind them.
		running.get("1/2")?.();
		running.get("2/1")?.();
		running.get("1/1")?.();
		await eventually(async () => (await groupCounts("client.atleast", "workers")).acked === 2, "2 acks", 5000);
		expect(deliveries).toEqual([
			[1, 1],
			[1, 2],
			[2, 1],
		]);
		expect(await groupCounts("client.atleast", "workers")).toMatchObject({ acked: 2, retried: 1, in_flight: 0 });
		// The dropped socket carried no ack; the acks that went, went once.
		expect(first.sent.filter((f) => f.type === "ack" || f.type === "nack")).toEqual([]);
		const acks = Recorded.all.flatMap((ws) => ws.sent.filter((f) => f.type === "ack"));
		expect(acks).toEqual([{ type: "ack", seqs: [[1, 2]] }]);
		await worker.stop();
	});
});

describe("recovery paths", () => {
	it("re-sends the filter, and resumes from its last seq, on every reconnect", async () => {
		const Recorded = recordingSockets();
		const c = client({ WebSocket: Recorded as unknown as SocketClass });
		const got: Message[] = [];
		const filter = { kind: ["keep"] };
		const sub = c.subscribe("client.filtered", (m) => void got.push(m), { from: "earliest", filter });
		await eventually(() => sub.state === "open", "open", 10_000);
		const publishKinds = async (kinds: string[]) => {
			const res = await fetch(`${server.url}/v1/topics/client.filtered/messages`, {
				method: "POST",
				headers: { "content-type": "application/json" },
				body: JSON.stringify({ messages: kinds.map((kind, i) => ({ data: i, attributes: { kind } })) }),
			});
			expect(res.status).toBe(201);
		};
		await publishKinds(["keep", "drop", "keep"]);
		await eventually(() => got.length === 2, "2 kept", 10_000);
		proxy.cut();
		await publishKinds(["drop", "keep", "drop", "keep"]);
		await eventually(() => got.length === 4, "4 kept", 10_000);
		expect(seqsOf(got)).toEqual([1, 3, 5, 7]);
		expect(got.every((m) => m.attributes.kind === "keep")).toBe(true);
		expect(Recorded.all.length).toBeGreaterThanOrEqual(2);
		const urls = Recorded.all.map((ws) => new URL(ws.requestedUrl));
		for (const url of urls) expect(JSON.parse(url.searchParams.get("filter") ?? "null")).toEqual(filter);
		// The reconnect resumes after the last seq it read (3), not from `earliest` again.
		expect(urls.at(-1)?.searchParams.get("from")).toBe("3");
	});

	it("asks getToken again when the server closes the socket with 4401, and opens the next socket with the new token", async () => {
		const Recorded = recordingSockets();
		let minted = 0;
		const c = client({ WebSocket: Recorded as unknown as SocketClass, getToken: () => `token-${++minted}` });
		const got: Message[] = [];
		const sub = c.subscribe("client.expired", (m) => void got.push(m), { from: "earliest" });
		await eventually(() => sub.state === "open", "open", 10_000);
		expect(Recorded.all[0]?.protocols).toContain("bearer.token-1");
		await publishDirect("client.expired", [1]);
		await eventually(() => got.length === 1, "1 message", 10_000);
		(Recorded.all[0] as InstanceType<typeof Recorded>).serverClose(4401);
		await publishDirect("client.expired", [2]);
		await eventually(() => got.length === 2, "resumed", 10_000);
		expect(minted).toBe(2);
		expect(Recorded.all.at(-1)?.protocols).toContain("bearer.token-2");
		expect(seqsOf(got)).toEqual([1, 2]);
		// A close for another reason keeps the token it has.
		(Recorded.all.at(-1) as InstanceType<typeof Recorded>).serverClose(1011);
		await eventually(() => Recorded.all.length === 3 && sub.state === "open", "reopened", 10_000);
		expect(minted).toBe(2);
	});

	it("asks getToken again when a request is answered 401, and sends it once more with the new token", async () => {
		let minted = 0;
		const seen: string[] = [];
		const c = client({
			getToken: () => `token-${++minted}`,
			// The server of these tests takes anonymous requests: a stale token is refused here, as a server with a secret would.
			fetch: async (input, init) => {
				const auth = new Headers(init?.headers).get("authorization") ?? "";
				seen.push(auth);
				if (auth === "Bearer token-1")
					return new Response(JSON.stringify({ error: { code: "unauthorized", message: "the token has expired" } }), {
						status: 401,
					});
				return fetch(input, init);
			},
		});
		const result = await c.publish("client.refresh", { n: 1 }, { wait: true });
		expect(result).toMatchObject({ seq: 1 });
		expect(seen).toEqual(["Bearer token-1", "Bearer token-2"]);
		expect(minted).toBe(2);
		expect((await history("client.refresh")).map((m) => m.data)).toEqual([{ n: 1 }]);
	});

	it("backs off longer after the server closes a socket for its rate (4429) than after a drop", async () => {
		const Recorded = recordingSockets();
		// Backoff from 50 ms doubling to 400 ms: a drop waits 25–50 ms, a rate limit three steps more (200–400 ms).
		const c = client({ WebSocket: Recorded as unknown as SocketClass });
		const sub = c.subscribe("client.limited", () => {}, { from: "earliest" });
		const reopenedAfter = async (code: number) => {
			await eventually(() => sub.state === "open", "open", 10_000);
			const before = Recorded.all.length;
			const closedAt = Date.now();
			(Recorded.all.at(-1) as InstanceType<typeof Recorded>).serverClose(code);
			await eventually(() => Recorded.all.length > before, "a new socket", 10_000);
			return (Recorded.all.at(-1) as InstanceType<typeof Recorded>).openedAt - closedAt;
		};
		const afterDrop = await reopenedAfter(1006);
		const afterLimit = await reopenedAfter(4429);
		expect(afterDrop).toBeLessThan(150);
		expect(afterLimit).toBeGreaterThanOrEqual(195);
		expect(afterLimit).toBeLessThan(400 + 1000);
	});

	it("backs off between publishes the server refuses with 429, and stores the message once when it takes it", async () => {
		let refusals = 2;
		const attempts: number[] = [];
		const c = client({
			backoff: { minMs: 200, maxMs: 1000 },
			fetch: async (input, init) => {
				if (String(input).includes("/messages")) {
					attempts.push(Date.now());
					if (refusals-- > 0)
						return new Response(JSON.stringify({ error: { code: "rate_limited", message: "slow down" } }), {
							status: 429,
						});
				}
				return fetch(input, init);
			},
		});
		const result = await c.publish("client.throttled", { n: 1 }, { wait: true });
		expect(result).toMatchObject({ seq: 1 });
		expect(attempts).toHaveLength(3);
		// Waits drawn from [d/2, d]: d = 200 ms, then 400 ms.
		expect((attempts[1] as number) - (attempts[0] as number)).toBeGreaterThanOrEqual(95);
		expect((attempts[2] as number) - (attempts[1] as number)).toBeGreaterThanOrEqual(195);
		expect((await history("client.throttled")).map((m) => m.data)).toEqual([{ n: 1 }]);
	});

	it("after the server closes a subscriber that fell megabytes behind (4408), resumes and loses nothing", async () => {
		const Recorded = recordingSockets();
		// No heartbeat verdict while the test holds the connection back.
		const c = client({ WebSocket: Recorded as unknown as SocketClass, heartbeatMs: 60_000 });
		const got: number[] = [];
		const sub = c.subscribe("client.behind", (m) => void got.push(m.seq), { from: "earliest" });
		await eventually(() => sub.state === "open", "open", 10_000);
		await new Promise((r) => setTimeout(r, 200)); // its first `received` frame is in
		// The connection holds everything back while over 8 MiB is published: the server closes the socket (4408).
		proxy.fault = "blackhole";
		const chunk = "x".repeat(120 * 1024);
		let total = 0;
		for (let i = 0; i < 10; i++) {
			const res = await fetch(`${server.url}/v1/topics/client.behind/messages`, {
				method: "POST",
				headers: { "content-type": "application/json" },
				body: JSON.stringify({ messages: Array.from({ length: 8 }, () => ({ data: chunk })) }),
			});
			expect(res.status).toBe(201);
			await res.arrayBuffer();
			total += 8;
		}
		await new Promise((r) => setTimeout(r, 300));
		proxy.fault = "none";
		await publishDirect("client.behind", ["after"]);
		total += 1;
		await eventually(() => got.length >= total, `all ${total} messages`, 30_000);
		expect(got).toEqual(range(1, total));
		expect(Recorded.all[0]?.closes).toEqual([4408]);
	});
});

describe("gaps and restarts", () => {
	it("surfaces messages retention removed while the socket was down as a gap, then goes on", async () => {
		const put = await fetch(`${server.url}/v1/topics/client.gap`, {
			method: "PUT",
			headers: { "content-type": "application/json" },
			body: JSON.stringify({ max_messages: 5 }),
		});
		expect(put.status).toBe(200);
		await put.arrayBuffer();
		const c = client();
		const got: number[] = [];
		const gaps: { from: number; to: number }[] = [];
		const sub = c.subscribe("client.gap", (m) => got.push(m.seq), { from: "earliest", onGap: (g) => gaps.push(g) });
		await publishDirect("client.gap", [1, 2]);
		await eventually(() => got.length === 2, "the first two", 10_000);
		proxy.fault = "refuse";
		proxy.cut();
		await publishDirect("client.gap", range(3, 20)); // retention keeps 16..20, trimming in the background
		await eventually(async () => (await history("client.gap"))[0]?.seq === 16, "the trim", 15_000);
		proxy.fault = "none";
		await eventually(() => got.length === 7, "the retained five", 10_000);
		expect(gaps).toEqual([{ from: 3, to: 15 }]);
		expect(got).toEqual([1, 2, 16, 17, 18, 19, 20]);
		expect(sub.lastSeq).toBe(20);
	});

	it("after a kill -9 and restart of the server: the outbox flushes and the subscription resumes, each message once", async () => {
		const c = client();
		const got: unknown[] = [];
		c.subscribe("client.restart", (m) => got.push(m.data), { from: "earliest" });
		await c.publish("client.restart", 0, { wait: true });
		await eventually(() => got.length === 1, "the first message", 10_000);
		await server.kill9();
		const queued = [];
		for (let i = 1; i <= 5; i++) queued.push(await c.publish("client.restart", i));
		expect(queued.every((r) => "queued" in r)).toBe(true);
		server = await startDev(state, await freePort()); // same state on disk
		proxy.upstreamPort = Number(new URL(server.url).port);
		await eventually(() => got.length >= 6, "all six after the restart", 30_000);
		await new Promise((r) => setTimeout(r, 500));
		expect(got).toEqual(range(0, 5));
		expect((await history("client.restart")).map((m) => m.data)).toEqual(range(0, 5));
		expect(await c.outbox.size()).toBe(0);
	});
});
