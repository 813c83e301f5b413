import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { Topic } from "../../src/durable/topic.js";
import {
	expectConsecutive,
	history,
	publish,
	restartObject,
	stats,
	TestSocket,
	topicStub,
	uniqueTopic,
} from "./helpers.js";

describe("publish over HTTP", () => {
	it("stores one message and answers 201 {id, seq}", async () => {
		const topic = uniqueTopic();
		const res = await publish(topic, { data: { hello: "world" }, attributes: { kind: "greeting", n: 1, ok: true } });
		expect(res.status).toBe(201);
		expect(res.body).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), seq: 1 });
		const page = await history(topic);
		expect(page.messages).toEqual([
			{
				id: res.body.id,
				seq: 1,
				topic,
				data: { hello: "world" },
				attributes: { kind: "greeting", n: 1, ok: true },
				ts: expect.any(Number),
			},
		]);
	});

	it("accepts any JSON value as data, null included", async () => {
		const topic = uniqueTopic();
		const values = [null, 0, "", [], {}, [1, "two", { three: 3 }], "ünïcødé ✓ 🎉", 1.5e300];
		for (const data of values) expect((await publish(topic, { data })).status).toBe(201);
		const page = await history(topic);
		expect(page.messages.map((m) => m.data)).toEqual(values);
	});

	it("publishes a batch atomically with consecutive seqs", async () => {
		const topic = uniqueTopic();
		await publish(topic, { data: "before" });
		const res = await publish(topic, { messages: Array.from({ length: 100 }, (_, i) => ({ data: i })) });
		expect(res.status).toBe(201);
		const results = res.body.messages as Array<{ id: string; seq: number }>;
		expect(results).toHaveLength(100);
		expectConsecutive(
			results.map((r) => r.seq),
			2,
		);
		expect(new Set(results.map((r) => r.id)).size).toBe(100);
	});

	it("stores nothing of a batch when one message is invalid", async () => {
		const topic = uniqueTopic();
		const messages = [{ data: 1 }, { data: 2 }, { data: 3, attributes: { bad: { nested: true } } }];
		const res = await publish(topic, { messages });
		expect(res.status).toBe(400);
		expect(res.body.error?.code).toBe("invalid_request");
		expect((await stats(topic)).head_seq).toBe(0);
	});

	it("stores nothing of a batch when the transaction fails midway", async () => {
		const topic = uniqueTopic();
		await publish(topic, { data: "first" });
		const stub = topicStub(topic);
		// Make the 3rd insert of the next batch fail inside the object's transaction.
		await runInDurableObject(stub, (_instance, state) => {
			state.storage.sql.exec(
				"CREATE TRIGGER fail_third BEFORE INSERT ON messages WHEN NEW.seq = 4 BEGIN SELECT RAISE(ABORT, 'boom'); END",
			);
		});
		// Called inside the object rather than over RPC, where workerd would also log the error, stack and all.
		const failed = await runInDurableObject(stub, (instance: Topic) =>
			instance.publish([{ data_json: "1" }, { data_json: "2" }, { data_json: "3" }, { data_json: "4" }]),
		).then(
			() => undefined,
			(err: unknown) => err,
		);
		expect(String(failed)).toMatch(/boom/);
		await runInDurableObject(stub, (_instance, state) => {
			state.storage.sql.exec("DROP TRIGGER fail_third");
		});
		expect((await history(topic)).messages.map((m) => m.data)).toEqual(["first"]);
		// The in-memory head was rolled back too: the next publish takes seq 2.
		expect((await publish(topic, { data: "next" })).body.seq).toBe(2);
	});

	it("keeps seqs strictly increasing and unique under concurrent publishers", async () => {
		const topic = uniqueTopic();
		const publishers = 10;
		const perPublisher = 20;
		const answers = await Promise.all(
			Array.from({ length: publishers }, async (_, p) => {
				const seqs: number[] = [];
				for (let i = 0; i < perPublisher; i++) {
					const res = await publish(topic, { data: { p, i } });
					expect(res.status).toBe(201);
					seqs.push(res.body.seq as number);
				}
				return seqs;
			}),
		);
		const all = answers.flat().sort((a, b) => a - b);
		expectConsecutive(all, 1);
		// Each publisher's own messages are stored in the order it sent them.
		for (const seqs of answers) expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
		const page = await history(topic, "limit=1000");
		expect(page.messages.map((m) => m.seq)).toEqual(all);
		for (const m of page.messages) {
			const { p, i } = m.data as { p: number; i: number };
			expect(answers[p]?.[i]).toBe(m.seq);
		}
	});

	it("stores traceparent and baggage from headers and delivers them unchanged", async () => {
		const topic = uniqueTopic();
		const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
		const baggage = "userId=alice,serverNode=DF%2028,isProduction=false";
		expect((await publish(topic, { data: 1 }, { traceparent, baggage })).status).toBe(201);
		const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
		await publish(topic, { messages: [{ data: 2 }, { data: 3, traceparent: own }] }, { traceparent });
		const page = await history(topic);
		expect(page.messages.map((m) => [m.traceparent, m.baggage])).toEqual([
			[traceparent, baggage],
			[traceparent, undefined],
			[own, undefined],
		]);
	});

	it("rejects a malformed traceparent", async () => {
		const topic = uniqueTopic();
		const res = await publish(topic, { data: 1 }, { traceparent: "not-a-trace" });
		expect(res.status).toBe(400);
		expect((await stats(topic)).head_seq).toBe(0);
	});
});

describe("idempotency", () => {
	it("answers a repeated key with the original {id, seq} and stores nothing", async () => {
		const topic = uniqueTopic();
		const first = await publish(topic, { data: "once", key: "order-1" });
		expect(first.status).toBe(201);
		const again = await publish(topic, { data: "twice", key: "order-1" });
		expect(again.status).toBe(200);
		expect(again.body).toEqual({ id: first.body.id, seq: first.body.seq, duplicate: true });
		const page = await history(topic);
		expect(page.messages).toHaveLength(1);
		expect(page.messages[0]).toMatchObject({ data: "once", key: "order-1" });
	});

	it("takes the key from the Idempotency-Key header", async () => {
		const topic = uniqueTopic();
		const first = await publish(topic, { data: 1 }, { "Idempotency-Key": "hdr-1" });
		const again = await publish(topic, { data: 1 }, { "Idempotency-Key": "hdr-1" });
		expect(again.body).toEqual({ id: first.body.id, seq: first.body.seq, duplicate: true });
		expect((await stats(topic)).head_seq).toBe(1);
	});

	it("rejects an Idempotency-Key header on a batch", async () => {
		const topic = uniqueTopic();
		const res = await publish(topic, { messages: [{ data: 1 }] }, { "Idempotency-Key": "k" });
		expect(res.status).toBe(400);
		expect((await stats(topic)).head_seq).toBe(0);
	});

	it("dedupes inside a batch and against earlier publishes", async () => {
		const topic = uniqueTopic();
		const earlier = await publish(topic, { data: "a", key: "a" });
		const res = await publish(topic, {
			messages: [{ data: "b", key: "b" }, { data: "a again", key: "a" }, { data: "b again", key: "b" }, { data: "c" }],
		});
		const results = res.body.messages as Array<Record<string, unknown>>;
		expect(results[0]).toEqual({ id: expect.any(String), seq: 2 });
		expect(results[1]).toEqual({ id: earlier.body.id, seq: 1, duplicate: true });
		expect(results[2]).toEqual({ id: (results[0] as { id: string }).id, seq: 2, duplicate: true });
		expect(results[3]).toEqual({ id: expect.any(String), seq: 3 });
		expect((await history(topic)).messages.map((m) => m.data)).toEqual(["a", "b", "c"]);
	});

	// The 24 h window, by the clock: timers.test.ts ("remembers a publish key for 24 hours").

	it("stores one message for concurrent publishes with the same key, over HTTP and sockets alike", async () => {
		const topic = uniqueTopic();
		const sockets = await Promise.all([0, 1, 2].map(() => TestSocket.open(topic)));
		await Promise.all(sockets.map((s) => s.waitForFrame((f) => f.type === "ready", "ready")));
		const overHttp = Array.from({ length: 12 }, (_, i) =>
			i % 2 === 0
				? publish(topic, { data: i, key: "same" }).then((r) => r.body)
				: publish(topic, { data: i }, { "Idempotency-Key": "same" }).then((r) => r.body),
		);
		sockets.forEach((s, i) => {
			s.send({ type: "publish", ref: `a${i}`, data: `ws${i}`, key: "same" });
			s.send({ type: "publish", ref: `b${i}`, messages: [{ data: `wsb${i}`, key: "same" }] });
		});
		const http = await Promise.all(overHttp);
		const ws = await Promise.all(
			sockets.map(async (s) => {
				await s.waitFor(() => s.frames.filter((f) => f.type === "published").length === 2, "two answers");
				return s.frames.filter((f) => f.type === "published").flatMap((f) => f.messages ?? [f]);
			}),
		);
		const answers = [...http, ...ws.flat()] as Array<{ id: string; seq: number; duplicate?: boolean }>;
		expect(answers).toHaveLength(18);
		expect(answers.filter((a) => a.duplicate !== true)).toHaveLength(1);
		const [stored] = answers.filter((a) => a.duplicate !== true);
		for (const a of answers) expect({ id: a.id, seq: a.seq }).toEqual({ id: stored?.id, seq: stored?.seq });
		expect((await stats(topic)).head_seq).toBe(1);
		expect((await history(topic)).messages).toHaveLength(1);
		for (const s of sockets) s.close();
	});

	it("answers duplicates for keys that survive an object restart", async () => {
		const topic = uniqueTopic();
		const first = await publish(topic, { data: 1, key: "survivor" });
		await restartObject(topic);
		const again = await publish(topic, { data: 1, key: "survivor" });
		expect(again.body).toEqual({ id: first.body.id, seq: first.body.seq, duplicate: true });
	});
});
