/**
 * The examples, run for real: tidings under `wrangler dev` (workerd), and
 * the example code against it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import WebSocket from "ws";
import { startConsumer } from "../../examples/job-finished/consumer.js";
import { run as runTypedTopic } from "../../examples/typed-topic/orders.js";
import { type DevServer, freePort, startDev } from "./wrangler-dev.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
	for (const c of cleanups.splice(0)) await c();
});

async function dev(configs: string[], health?: string): Promise<DevServer> {
	const state = mkdtempSync(path.join(os.tmpdir(), "tidings-examples-"));
	const server = await startDev(state, await freePort(), { configs, ...(health ? { health } : {}) });
	cleanups.push(
		() => server.kill9(),
		() => rmSync(state, { recursive: true, force: true }),
	);
	return server;
}

it("job-finished: a group consumer reports progress and completion to the job's live topic", async () => {
	const server = await dev(["wrangler.toml"]);
	const put = await fetch(`${server.url}/v1/topics/jobs/groups/runners`, {
		method: "PUT",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ max_retries: 2 }),
	});
	expect(put.status).toBe(201);
	const consumer = startConsumer(server.url);
	cleanups.push(() => consumer.stop());
	await consumer.ready;

	// The page that starts the job subscribes to its topic first.
	const seen: Array<{ status: string; percent?: number }> = [];
	const page = new WebSocket(`${server.url.replace("http", "ws")}/v1/topics/jobs.42/ws?from=earliest`);
	cleanups.push(() => page.close());
	const done = new Promise<void>((resolve) => {
		page.on("message", (raw) => {
			for (const line of raw.toString().split("\n")) {
				const f = JSON.parse(line) as { type: string; message?: { data: { status: string; percent?: number } } };
				if (f.type !== "message" || !f.message) continue;
				seen.push(f.message.data);
				if (f.message.data.status === "done") resolve();
			}
		});
	});
	await new Promise((r) => page.once("open", r));
	const job = await fetch(`${server.url}/v1/topics/jobs/messages`, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ data: { jobId: "42", steps: 3 } }),
	});
	expect(job.status).toBe(201);
	await done;
	expect(seen).toEqual([
		{ status: "progress", percent: 33 },
		{ status: "progress", percent: 67 },
		{ status: "progress", percent: 100 },
		{ status: "done", result: "job 42 finished" },
	]);
	// The job was acked: nothing left in flight or pending.
	await expect
		.poll(
			async () =>
				((await (await fetch(`${server.url}/v1/topics/jobs/groups/runners`)).json()) as { counts: object }).counts,
		)
		.toMatchObject({ acked: 1, in_flight: 0, pending: 0 });
});

it("rpc-publisher: another Worker publishes through the service binding", async () => {
	const server = await dev(["examples/rpc-publisher/wrangler.toml", "wrangler.toml"], "/");
	const signup = () =>
		fetch(`${server.url}/signup`, {
			method: "POST",
			headers: { "Content-Type": "application/json" },
			body: JSON.stringify({ email: "ada@example.com" }),
		});
	const first = await signup();
	expect(first.status).toBe(201);
	const stored = (await first.json()) as { id: string; seq: number };
	expect(stored).toEqual({ id: expect.any(String), seq: 1 });
	// A retried request publishes once: the key is the email.
	expect(await (await signup()).json()).toEqual({ ...stored, duplicate: true });
});

it("typed-topic: the schema is set, an Order is published and received typed", async () => {
	const server = await dev(["wrangler.toml"]);
	const { published, received } = await runTypedTopic(server.url);
	expect(received).toEqual(published);
	// The server enforces the same schema the type came from.
	const bad = await fetch(`${server.url}/v1/topics/shop.orders/messages`, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ data: { ...published, currency: "JPY" } }),
	});
	expect(bad.status).toBe(400);
	expect(await bad.json()).toMatchObject({ error: { code: "schema_mismatch", pointer: "/currency" } });
});
