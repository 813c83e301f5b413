/**
 * Guarantee 1 of the design: a publish answered 2xx survives a kill -9 of the
 * runtime and a restart. Runs the real `wrangler dev` (workerd, SQLite on
 * disk), kills the whole process group in the middle of a publish storm,
 * restarts it on the same state and checks every acknowledged message.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import WebSocket from "ws";
import { type DevServer, freePort, startDev } from "./wrangler-dev.js";

const state = mkdtempSync(path.join(os.tmpdir(), "tidings-durability-"));
let server: DevServer | undefined;

afterAll(async () => {
	await server?.kill9().catch(() => {});
	rmSync(state, { recursive: true, force: true });
});

interface Acked {
	key: string;
	id: string;
	seq: number;
}

async function publish(url: string, key: string): Promise<Acked | undefined> {
	try {
		const res = await fetch(`${url}/v1/topics/durable/messages`, {
			method: "POST",
			headers: { "Content-Type": "application/json" },
			body: JSON.stringify({ data: { key }, key }),
		});
		if (res.status !== 201 && res.status !== 200) return undefined;
		const body = (await res.json()) as { id: string; seq: number };
		return { key, id: body.id, seq: body.seq };
	} catch {
		return undefined; // the runtime died under this request: not acknowledged
	}
}

/**
 * A socket writer: publishes `keys` one after another on a WebSocket to
 * `durable-ws`, each waiting for its `published` answer, until the socket
 * dies; answers what was answered.
 */
function socketWriter(url: string, keys: string[], acked: Acked[]): Promise<void> {
	return new Promise((resolve) => {
		const ws = new WebSocket(`${url.replace(/^http/, "ws")}/v1/topics/durable-ws/ws`);
		let next = 0;
		const send = () => {
			const key = keys[next];
			if (key === undefined) return ws.close();
			ws.send(JSON.stringify({ type: "publish", ref: key, data: { key }, key }));
		};
		ws.on("message", (raw) => {
			const frame = JSON.parse(String(raw)) as { type: string; ref?: string; id?: string; seq?: number };
			if (frame.type === "ready") return send();
			if (frame.type !== "published" || frame.ref !== keys[next]) return;
			acked.push({ key: frame.ref as string, id: frame.id as string, seq: frame.seq as number });
			next++;
			send();
		});
		ws.on("error", () => {});
		ws.on("close", () => resolve());
	});
}

async function storedOf(url: string, topic: string) {
	const res = await fetch(`${url}/v1/topics/${topic}/messages?limit=1000`);
	const page = (await res.json()) as {
		messages: Array<{ id: string; seq: number; key: string; data: { key: string } }>;
	};
	return page.messages;
}

it("keeps every acknowledged publish, over HTTP and over sockets, across kill -9 and restart, and continues the seqs", async () => {
	const port = await freePort();
	server = await startDev(state, port);
	const dev = server;
	const acked: Acked[] = [];
	const keys = Array.from({ length: 20 }, (_, w) => Array.from({ length: 50 }, (_, i) => `w${w}-${i}`));
	let killed = false;
	const writers = keys.map(async (mine) => {
		for (const key of mine) {
			if (killed) return;
			const a = await publish(dev.url, key);
			if (a) acked.push(a);
		}
	});
	// Guarantee 1 over sockets too: a `published` answer is as good as a 201.
	const ackedWs: Acked[] = [];
	const socketWriters = Array.from({ length: 4 }, (_, w) =>
		socketWriter(
			dev.url,
			Array.from({ length: 200 }, (_, i) => `s${w}-${i}`),
			ackedWs,
		),
	);
	// Kill in the middle of the storm, with requests in flight.
	while (acked.length < 150 || ackedWs.length < 50) await new Promise((r) => setTimeout(r, 5));
	killed = true;
	await dev.kill9();
	await Promise.all([...writers, ...socketWriters]);
	const ackedBeforeKill = acked.length;
	expect(ackedBeforeKill).toBeGreaterThanOrEqual(150);

	server = await startDev(state, port);
	const page = { messages: await storedOf(server.url, "durable") };
	const stored = new Map(page.messages.map((m) => [m.key, m]));
	const storedWs = new Map((await storedOf(server.url, "durable-ws")).map((m) => [m.key, m]));
	expect(ackedWs.length).toBeGreaterThanOrEqual(50);
	for (const a of ackedWs) {
		const m = storedWs.get(a.key);
		expect(m, `${a.key} answered published (seq ${a.seq}) is missing after restart`).toBeDefined();
		expect([m?.id, m?.seq, m?.data.key]).toEqual([a.id, a.seq, a.key]);
	}
	for (const a of acked) {
		const m = stored.get(a.key);
		expect(m, `acknowledged ${a.key} (seq ${a.seq}) is missing after restart`).toBeDefined();
		expect([m?.id, m?.seq, m?.data.key]).toEqual([a.id, a.seq, a.key]);
	}
	// The log has no holes, and new publishes continue after it.
	const seqs = page.messages.map((m) => m.seq);
	console.log(
		`durability: ${ackedBeforeKill} publishes acknowledged before kill -9; ${seqs.length} stored after restart` +
			` (${seqs.length - ackedBeforeKill} stored but never answered, which keyed retries dedupe)`,
	);
	expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
	const next = await publish(server.url, "after-restart");
	expect(next?.seq).toBe(seqs.length + 1);
	// Retrying every key (as a client outbox would) stores each exactly once.
	for (const key of keys.flat()) await publish(server.url, key);
	const all: string[] = [];
	for (let after = 0; ; ) {
		const page = (await (await fetch(`${server.url}/v1/topics/durable/messages?after=${after}&limit=1000`)).json()) as {
			messages: Array<{ key: string }>;
			next_after: number;
		};
		if (page.messages.length === 0) break;
		all.push(...page.messages.map((m) => m.key));
		after = page.next_after;
	}
	expect(all).toHaveLength(1001);
	expect(new Set(all).size).toBe(1001);
}, 180_000);
