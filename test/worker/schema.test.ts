import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Topic } from "../../src/durable/topic.js";
import {
	api,
	call,
	captureConsoleErrors,
	createGroup,
	eventually,
	groupPath,
	history,
	type Json,
	publish,
	stats,
	TestSocket,
	topicStub,
	uniqueTopic,
} from "./helpers.js";

/** A small order schema (2020-12): the kind of thing a typed topic holds. */
const ORDER = {
	$schema: "https://json-schema.org/draft/2020-12/schema",
	type: "object",
	required: ["id", "currency", "lines"],
	properties: {
		id: { type: "string", pattern: "^ord_[0-9a-z]+$" },
		currency: { enum: ["EUR", "USD"] },
		lines: {
			type: "array",
			minItems: 1,
			items: {
				type: "object",
				required: ["sku", "qty"],
				properties: { sku: { type: "string" }, qty: { type: "integer", minimum: 1 } },
				additionalProperties: false,
			},
		},
	},
};
const GOOD = { id: "ord_1", currency: "EUR", lines: [{ sku: "A-1", qty: 2 }] };

async function setSchema(topic: string, schema: unknown) {
	return call("PUT", `/v1/topics/${topic}`, { schema });
}

type MismatchBody = { error: { code: string; message: string; index: number; pointer: string; expected: string } };

describe("a topic's schema", () => {
	it("is set with PUT, shown by GET with its revision, and removed with null; each change is a new revision", async () => {
		const topic = uniqueTopic("orders");
		const set = await setSchema(topic, ORDER);
		expect(set.status).toBe(200);
		expect(set.body).toMatchObject({ topic, schema: { revision: 1, draft: "2020-12", schema: ORDER } });
		expect((await stats(topic)).schema).toEqual({
			revision: 1,
			draft: "2020-12",
			schema: ORDER,
			updated_at: expect.any(Number),
		});
		const draft7 = { $schema: "http://json-schema.org/draft-07/schema#", type: "object" };
		expect((await setSchema(topic, draft7)).body).toMatchObject({ schema: { revision: 2, draft: "7" } });
		const removed = await setSchema(topic, null);
		expect(removed.body).toMatchObject({ schema: null });
		expect((await stats(topic)).schema).toBeNull();
		expect((await setSchema(topic, ORDER)).body).toMatchObject({ schema: { revision: 4 } });
		// Retention settings and the schema are independent: changing one keeps the other.
		await call("PUT", `/v1/topics/${topic}`, { max_messages: 50 });
		expect((await stats(topic)).schema).toMatchObject({ revision: 4 });
	});

	it.each([
		[{ type: "strin" }, /\/type must be one of/],
		[{ properties: { a: { pattern: "(" } } }, /\/properties\/a\/pattern "\(" is not a valid regular expression/],
		[{ pattern: "(a)\\1" }, /linear-time subset/],
		[{ pattern: "^(?=a)" }, /linear-time subset/],
		[{ $ref: "#/$defs/missing" }, /resolves to no schema/],
		[{ $ref: "https://example.com/other.json" }, /remote schemas are not fetched/],
		[{ $schema: "http://json-schema.org/draft-04/schema#" }, /is not supported/],
		[{ items: [{ type: "string" }] }, /tuples use prefixItems/],
		[{ format: "url" }, /not linear-time/],
		[{ minLength: -1 }, /minLength must be a whole number/],
		[{ allOf: [] }, /allOf must be a non-empty array/],
	])("refuses %j with the reason, and keeps the schema it had", async (schema, reason) => {
		const topic = uniqueTopic();
		await setSchema(topic, { type: "object" });
		const res = await setSchema(topic, schema);
		expect(res.status).toBe(400);
		expect(res.body).toMatchObject({ error: { code: "invalid_schema" } });
		expect((res.body as MismatchBody).error.message).toMatch(reason);
		expect((await stats(topic)).schema).toMatchObject({ revision: 1, schema: { type: "object" } });
	});

	it("refuses schemas over the size and depth limits", async () => {
		const topic = uniqueTopic();
		const big = { enum: Array.from({ length: 20_000 }, (_, i) => `value-${i}`) };
		expect((await setSchema(topic, big)).body).toMatchObject({ error: { code: "payload_too_large" } });
		let deep: Json = { type: "string" };
		for (let i = 0; i < 40; i++) deep = { properties: { a: deep } };
		expect((await setSchema(topic, deep)).body).toMatchObject({ error: { code: "limit_exceeded" } });
		expect((await setSchema(topic, [1])).body).toMatchObject({ error: { code: "invalid_request" } });
	});
});

describe("every publish path enforces it", () => {
	it("HTTP: a single message is refused 400 schema_mismatch naming the pointer and the expectation", async () => {
		const topic = uniqueTopic();
		await setSchema(topic, ORDER);
		const bad = await publish(topic, { data: { ...GOOD, lines: [{ sku: "A-1", qty: "2" }] } });
		expect(bad.status).toBe(400);
		expect(bad.body).toEqual({
			error: {
				code: "schema_mismatch",
				message: expect.stringMatching(/^message 0: data at \/lines\/0\/qty does not match/),
				index: 0,
				pointer: "/lines/0/qty",
				schema_pointer: "/properties/lines/items/properties/qty/type",
				expected: expect.stringMatching(/Expected "integer"/),
			},
		});
		const pattern = await publish(topic, { data: { ...GOOD, id: "x" } });
		expect((pattern.body as MismatchBody).error).toMatchObject({
			pointer: "/id",
			expected: 'String does not match pattern "^ord_[0-9a-z]+$".',
		});
		expect((await publish(topic, { data: GOOD })).status).toBe(201);
		expect((await stats(topic)).head_seq).toBe(1);
	});

	it("HTTP: a batch with one bad message is refused whole, naming its index; nothing is stored", async () => {
		const topic = uniqueTopic();
		await setSchema(topic, ORDER);
		const messages = [{ data: GOOD }, { data: GOOD }, { data: { ...GOOD, currency: "GBP" } }, { data: GOOD }];
		const res = await publish(topic, { messages });
		expect(res.status).toBe(400);
		expect((res.body as MismatchBody).error).toMatchObject({ code: "schema_mismatch", index: 2, pointer: "/currency" });
		expect((await stats(topic)).head_seq).toBe(0);
	});

	it("WebSocket: a publish frame is answered with an error frame carrying its ref", async () => {
		const topic = uniqueTopic();
		await setSchema(topic, ORDER);
		const ws = await TestSocket.open(topic);
		ws.send({ type: "publish", ref: "r1", data: { id: "ord_1" } });
		ws.send({ type: "publish", ref: "r2", messages: [{ data: GOOD }, { data: 5 }] });
		ws.send({ type: "publish", ref: "r3", data: GOOD });
		const e1 = await ws.waitForFrame((f) => f.ref === "r1", "r1");
		expect(e1).toMatchObject({ type: "error", code: "schema_mismatch", index: 0, pointer: "" });
		expect(e1.expected).toMatch(/required property/);
		expect(await ws.waitForFrame((f) => f.ref === "r2", "r2")).toMatchObject({
			type: "error",
			code: "schema_mismatch",
			index: 1,
		});
		expect(await ws.waitForFrame((f) => f.ref === "r3", "r3")).toMatchObject({ type: "published", seq: 1 });
		ws.close();
	});

	it("RPC: publish and publishBatch throw schema_mismatch", async () => {
		const topic = uniqueTopic();
		await setSchema(topic, ORDER);
		const rpc = exports.TidingsRpc;
		const single = await rpc.publish(topic, { id: 1 }).then(
			() => undefined,
			(e: Error) => e,
		);
		expect(single?.message).toMatch(/^schema_mismatch: message 0: data at \/id/);
		const batch = await rpc.publishBatch(topic, [{ data: GOOD }, { data: null }]).then(
			() => undefined,
			(e: Error) => e,
		);
		expect(batch?.message).toMatch(/^schema_mismatch: message 1/);
		expect(await rpc.publish(topic, GOOD)).toMatchObject({ seq: 1 });
	});

	it("delayed messages are checked at publish time and keep that revision when they join", async () => {
		const topic = uniqueTopic();
		await setSchema(topic, ORDER);
		expect((await publish(topic, { data: { nope: 1 }, delay_ms: 10 })).status).toBe(400);
		expect((await publish(topic, { data: GOOD, delay_ms: 10 })).status).toBe(202);
		// The schema changes before it joins: it was checked against revision 1, and says so.
		await setSchema(topic, { type: "string" });
		await new Promise((r) => setTimeout(r, 20));
		await runDurableObjectAlarm(topicStub(topic));
		const page = await history(topic);
		expect(page.messages).toHaveLength(1);
		expect(page.messages[0]).toMatchObject({ data: GOOD, schema_revision: 1 });
	});
});

describe("stored messages record the revision", () => {
	it("a change applies to later publishes; history, live frames and pulls show each message's revision", async () => {
		const topic = uniqueTopic();
		await publish(topic, { data: "untyped" });
		await createGroup(topic, "g", { start: "earliest" });
		await setSchema(topic, ORDER);
		const live = await TestSocket.open(topic, "from=earliest");
		expect((await publish(topic, { data: GOOD })).status).toBe(201);
		await setSchema(topic, { type: "string" });
		expect((await publish(topic, { data: GOOD })).status).toBe(400);
		expect((await publish(topic, { data: "now a string" })).status).toBe(201);

		const revisions = (ms: Json[]) => ms.map((m) => m.schema_revision);
		expect(revisions((await history(topic)).messages as unknown as Json[])).toEqual([undefined, 1, 2]);
		expect(revisions(await live.waitForMessages(3))).toEqual([undefined, 1, 2]);
		const pulled = (await call("POST", groupPath(topic, "g", "/pull"), { max: 10 })).body.messages as Json[];
		expect(revisions(pulled)).toEqual([undefined, 1, 2]);
		live.close();
	});
});

describe("dead letters forwarded into a typed topic", () => {
	async function deadLetter(topic: string, data: unknown) {
		await publish(topic, { data });
		const [leased] = (await call("POST", groupPath(topic, "g", "/pull"), {})).body.messages as Json[];
		await call("POST", groupPath(topic, "g", "/nack"), { seqs: [leased?.seq], error: "boom" });
	}

	it("a dead letter the dead-letter topic's schema refuses stays in the group's DLQ with the reason, and is not retried", async () => {
		const topic = uniqueTopic();
		const dlt = `${topic}.dead`;
		await setSchema(dlt, ORDER);
		await createGroup(topic, "g", { max_retries: 0, dead_letter_topic: dlt });
		const errors = captureConsoleErrors(/not forwarded/);
		try {
			await deadLetter(topic, { not: "an order" });
			await deadLetter(topic, GOOD);
			const dlq = async () => (await call("GET", groupPath(topic, "g", "/dlq"))).body.messages as Json[];
			await eventually(async () => (await dlq()).some((d) => d.forward_error), "forward refused");
			const letters = await dlq();
			expect(letters).toHaveLength(2);
			expect(letters[0]?.forward_error).toMatch(
				new RegExp(`^${dlt.replace(/\./g, "\\.")} refused it: message 0: data does not match`),
			);
			expect(letters[1]?.forward_error).toBeUndefined();
			// The good one reached the typed topic, checked against its schema.
			await eventually(async () => (await stats(dlt)).head_seq === 1, "good one forwarded");
			expect((await history(dlt)).messages[0]).toMatchObject({ data: GOOD, schema_revision: 1 });
			// No forward timer is left to retry the refused one.
			const timers = await runInDurableObject(topicStub(topic), (_o: Topic, state) =>
				state.storage.sql.exec("SELECT key FROM timers WHERE kind = 'dead-letter'").toArray(),
			);
			expect(timers).toEqual([]);
			// Both stay dead letters of the group (forwarding is "also"); redrive puts them back.
			expect((await call("POST", groupPath(topic, "g", "/dlq/redrive"), {})).body).toEqual({ redriven: 2 });
		} finally {
			errors.restore();
		}
	});
});

describe("a typed topic's stream door", () => {
	it("refuses a stream append the schema refuses, whole, with the same error, and stores nothing", async () => {
		const topic = uniqueTopic("orders");
		expect((await setSchema(topic, ORDER)).status).toBe(200);
		const created = await api(`/v1/stream/${topic}`, {
			method: "PUT",
			headers: { "Content-Type": "application/json" },
		});
		expect(created.status).toBeLessThan(300);
		const append = (body: unknown) =>
			api(`/v1/stream/${topic}`, {
				method: "POST",
				headers: { "Content-Type": "application/json" },
				body: JSON.stringify(body),
			});
		const refused = await append([GOOD, { ...GOOD, currency: "GBP" }]);
		expect(refused.status).toBe(400);
		expect(((await refused.json()) as MismatchBody).error).toMatchObject({
			code: "schema_mismatch",
			index: 1,
			pointer: "/currency",
		});
		expect((await history(topic)).messages).toEqual([]);
		expect((await append([GOOD])).status).toBeLessThan(300);
		expect((await history(topic)).messages.map((m) => m.data)).toEqual([GOOD]);
	});
});
