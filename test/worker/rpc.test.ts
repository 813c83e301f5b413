import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, eventually, history, uniqueTopic } from "./helpers.js";

// `exports.TidingsRpc` is the same loopback a service binding gives another Worker.
const rpc = exports.TidingsRpc;

/** The error an RPC call rejects with (handled at once, as RPC promises want). */
function rejection(p: Promise<unknown>): Promise<unknown> {
	return p.then(
		() => new Error("expected a rejection"),
		(e: unknown) => e,
	);
}

describe("RPC entrypoint for other Workers", () => {
	it("publishes one message or a batch, with keys, attributes and trace context", async () => {
		const topic = uniqueTopic();
		const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
		const first = await rpc.publish(topic, { hello: 1 }, { attributes: { kind: "greeting" }, key: "k1", traceparent });
		expect(first).toEqual({ id: expect.any(String), seq: 1 });
		expect(await rpc.publish(topic, { hello: 1 }, { key: "k1" })).toEqual({ ...first, duplicate: true });
		expect(await rpc.publish(topic, "later", { delayMs: 60_000 })).toEqual({
			id: expect.any(String),
			deliver_at: expect.any(Number),
		});
		const batch = await rpc.publishBatch(topic, [{ data: 2 }, { data: 3 }]);
		expect(batch.map((r) => ("seq" in r ? r.seq : 0))).toEqual([2, 3]);
		const page = await history(topic);
		expect(page.messages[0]).toMatchObject({
			data: { hello: 1 },
			attributes: { kind: "greeting" },
			key: "k1",
			traceparent,
		});
	});

	it("lists, reads and deletes topics", async () => {
		const topic = uniqueTopic();
		await expect(rejection(rpc.topicStats(topic))).resolves.toMatchObject({
			message: expect.stringMatching(/^not_found: /),
		});
		await rpc.publishBatch(topic, [{ data: 1 }, { data: 2 }]);
		expect(await rpc.topicStats(topic)).toMatchObject({ topic, head_seq: 2, retained: 2 });
		const listed = await eventually(
			async () => {
				const page = await rpc.listTopics({ prefix: topic });
				return page.topics.length === 1 ? page : undefined;
			},
			"listed",
			8000,
		);
		expect(listed).toEqual({ topics: [expect.objectContaining({ topic, head_seq: 2 })], next_after: null });
		expect(await rpc.deleteTopic(topic)).toEqual({ deleted: true, messages: 2 });
		await expect(rejection(rpc.deleteTopic(topic))).resolves.toMatchObject({
			message: expect.stringMatching(/^not_found: /),
		});
		await expect(rejection(rpc.listTopics({ limit: 0 }))).resolves.toMatchObject({
			message: expect.stringMatching(/^limit_exceeded: |^invalid_request: /),
		});
	});

	it("pulls, acks and nacks a group", async () => {
		const topic = uniqueTopic();
		const put = await call("PUT", `/v1/topics/${topic}/groups/jobs`, { retry_delay_ms: 0 });
		expect(put.status).toBe(201);
		await rpc.publishBatch(topic, [{ data: "a" }, { data: "b" }]);
		const { lease, messages: leased } = await rpc.pull(topic, "jobs", { max: 10 });
		expect(lease).toMatch(/^pull:/);
		expect(leased.map((m) => [m.seq, m.data, m.attempt, m.group])).toEqual([
			[1, "a", 1, "jobs"],
			[2, "b", 1, "jobs"],
		]);
		expect(await rpc.ack(topic, "jobs", [1], { lease })).toEqual([1]);
		expect(await rpc.nack(topic, "jobs", [2], { error: "retry me" })).toEqual({ nacked: [2], dead: [] });
		expect((await rpc.pull(topic, "jobs")).messages.map((m) => [m.seq, m.attempt])).toEqual([[2, 2]]);
	});

	// workerd also logs each of these as an uncaught exception of the callee, stack and all, as it does for
	// anything an RPC method throws; test/worker/workerd-logs.ts keeps exactly these out of the output.
	it("rejects bad input with the error code first, and stores nothing", async () => {
		const topic = uniqueTopic();
		expect(String(await rejection(rpc.publish("bad topic", 1)))).toMatch(/^Error: invalid_request: topic/);
		expect(String(await rejection(rpc.publish(topic, "x".repeat(200 * 1024))))).toMatch(/^Error: payload_too_large/);
		expect(String(await rejection(rpc.publish(topic, undefined)))).toMatch(
			/^Error: invalid_request: message: data is required/,
		);
		expect(String(await rejection(rpc.publishBatch(topic, [])))).toMatch(/^Error: invalid_request/);
		expect(String(await rejection(rpc.pull(topic, "nope")))).toMatch(/^Error: not_found/);
		expect((await history(topic)).head_seq).toBe(0);
	});
});
