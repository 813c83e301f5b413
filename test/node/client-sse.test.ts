/**
 * The client's SSE fallback in Node: through a proxy that refuses WebSocket
 * upgrades, a subscription reads the same frames over SSE, resumes from its
 * last seq each time a response ends, and goes back to a WebSocket once the
 * proxy lets upgrades through. SSE responses last 1.5 s here (60 s by
 * default) so that resumes happen within the test.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Tidings } from "../../src/client/node.js";
import { eventually } from "../shared/eventually.js";
import { type FaultProxy, startFaultProxy } from "./fault-proxy.js";
import { type DevServer, freePort, startDev } from "./wrangler-dev.js";

const state = mkdtempSync(path.join(os.tmpdir(), "tidings-client-sse-"));
let server: DevServer;
let proxy: FaultProxy;

beforeAll(async () => {
	server = await startDev(state, await freePort(), { vars: { TIDINGS_STREAM_SSE_MS: "1500" } });
	proxy = await startFaultProxy(Number(new URL(server.url).port));
}, 90_000);

afterAll(async () => {
	await proxy?.close();
	await server?.kill9().catch(() => {});
	rmSync(state, { recursive: true, force: true });
});

async function publish(topic: string, data: unknown) {
	const res = await fetch(`${server.url}/v1/topics/${topic}/messages`, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ data }),
	});
	expect(res.status).toBe(201);
}

async function liveSockets(topic: string): Promise<number> {
	const res = await fetch(`${server.url}/v1/topics/${topic}`);
	return ((await res.json()) as { subscribers: number }).subscribers;
}

it("reads over SSE when upgrades are refused, resumes without gaps or duplicates, and returns to WebSocket", async () => {
	const topic = `sse.fallback-${Date.now()}`;
	proxy.fault = "no-upgrade";
	const client = new Tidings({ url: proxy.url, heartbeatMs: 300, backoff: { minMs: 50, maxMs: 200 } });
	const got: Array<[number, unknown]> = [];
	const sub = client.subscribe(topic, (m) => got.push([m.seq, m.data]), { from: "earliest" });
	for (const n of [1, 2, 3]) await publish(topic, n);
	await eventually(
		() => got.length >= 3 || undefined,
		() => `3 messages, got ${JSON.stringify(got)}`,
		10_000,
	);
	expect(sub.state).toBe("open");
	// No WebSocket reached the object: the subscription reads over SSE.
	expect(await liveSockets(topic)).toBe(0);
	// Across several SSE responses (each ends after 1.5 s), publishes keep arriving once each.
	for (const n of [4, 5, 6]) {
		await new Promise((r) => setTimeout(r, 700));
		await publish(topic, n);
	}
	await eventually(
		() => got.length >= 6 || undefined,
		() => `6 messages, got ${JSON.stringify(got)}`,
		10_000,
	);
	proxy.fault = "none";
	await eventually(async () => (await liveSockets(topic)) === 1 || undefined, "back on a WebSocket", 10_000);
	await publish(topic, 7);
	await eventually(
		() => got.length >= 7 || undefined,
		() => `7 messages, got ${JSON.stringify(got)}`,
		10_000,
	);
	expect(got).toEqual([1, 2, 3, 4, 5, 6, 7].map((n) => [n, n]));
	await client.close();
});
