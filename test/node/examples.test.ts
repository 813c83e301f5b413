/**
 * The examples, run for real: tidings under `wrangler dev` (workerd), and
 * the example code against it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { type JobUpdate, startConsumer } from "../../examples/job-finished/consumer.js";
import { startJob } from "../../examples/job-finished/page.js";
import { run as runTypedTopic } from "../../examples/typed-topic/orders.js";
import { Tidings } from "../../src/client/node.js";
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

it("job-finished: jobs published before the worker's first run are processed, and the page sees progress then completion", async () => {
	const server = await dev(["wrangler.toml"]);
	// A job queued before any worker ran: the group the worker creates starts at `earliest`.
	const early = await fetch(`${server.url}/v1/topics/jobs/messages`, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ data: { jobId: "early", steps: 2 } }),
	});
	expect(early.status).toBe(201);
	const consumer = await startConsumer(server.url);
	cleanups.push(() => consumer.stop());
	await consumer.ready;
	const group = (await (await fetch(`${server.url}/v1/topics/jobs/groups/runners`)).json()) as {
		settings: { start: string };
	};
	expect(group.settings.start).toBe("earliest");

	// The page side (page.ts): subscribe to the job's topic first, then publish the job.
	const page = new Tidings({ url: server.url });
	cleanups.push(() => page.close());
	const seen: JobUpdate[] = [];
	const job = startJob(page, { jobId: "42", steps: 3, stepMs: 20 }, (u) => seen.push(u));
	expect(await job.done).toBe("job 42 finished");
	expect(seen).toEqual([
		{ status: "progress", step: 1, steps: 3, percent: 33 },
		{ status: "progress", step: 2, steps: 3, percent: 67 },
		{ status: "progress", step: 3, steps: 3, percent: 100 },
		{ status: "done", result: "job 42 finished" },
	]);
	await expect
		.poll(async () => {
			const res = await fetch(`${server.url}/v1/topics/jobs.early/messages?after=0`);
			return ((await res.json()) as { messages: { data: JobUpdate }[] }).messages.map((m) => m.data.status);
		})
		.toEqual(["progress", "progress", "done"]);
	// Both jobs were acked: nothing left in flight or pending.
	await expect
		.poll(
			async () =>
				((await (await fetch(`${server.url}/v1/topics/jobs/groups/runners`)).json()) as { counts: object }).counts,
		)
		.toMatchObject({ acked: 2, in_flight: 0, pending: 0 });
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
