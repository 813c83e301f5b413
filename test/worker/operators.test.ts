/**
 * What operators need to see and fix topics: the topic list, which topics
 * exist, deleting one, a topic's groups, empty-bodied POSTs, and every
 * attempt's error kept on a dead letter.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { CLOSE_CODES } from "../../src/protocol/errors.js";
import type { TopicSummary } from "../../src/protocol/message.js";
import { mintToken } from "../../src/tokens/index.js";
import {
	api,
	call,
	createGroup,
	eventually,
	groupPath,
	history,
	type Json,
	publish,
	TestSocket,
	uniqueTopic,
	whenClosed,
} from "./helpers.js";

const ADMIN_KEY = "admin-key-for-tests-0123456789";
const SECRET = "token-secret-for-tests-0123456789";
const prod = { ...env, TIDINGS_ALLOW_ANONYMOUS: undefined, TIDINGS_ADMIN_KEY: ADMIN_KEY, TIDINGS_TOKEN_SECRET: SECRET };

type Listed = TopicSummary;

async function list(query: string, token?: string): Promise<{ topics: Listed[]; next_after: string | null }> {
	const res = await call("GET", `/v1/topics?${query}`, undefined, token ? { token, env: prod } : {});
	expect(res.status, res.text).toBe(200);
	return res.body as { topics: Listed[]; next_after: string | null };
}

/** Every topic whose name starts with `prefix`, page by page. */
async function listAll(prefix: string, limit: number, token?: string): Promise<Listed[]> {
	const out: Listed[] = [];
	let after = "";
	for (let page = 0; page < 50; page++) {
		const r = await list(`prefix=${prefix}&after=${after}&limit=${limit}`, token);
		expect(r.topics.length).toBeLessThanOrEqual(limit);
		out.push(...r.topics);
		if (r.next_after === null) return out;
		after = r.next_after;
	}
	throw new Error("the listing never ended");
}

describe("topics that exist", () => {
	it("a topic never written is a 404, yet its history and live reads work; its first write creates it", async () => {
		const topic = uniqueTopic();
		const missing = await call("GET", `/v1/topics/${topic}`);
		expect(missing.status).toBe(404);
		expect(missing.body).toMatchObject({ error: { code: "not_found", message: expect.stringContaining(topic) } });
		expect((await call("GET", `/v1/topics/${topic}/groups`)).status).toBe(404);
		expect((await call("DELETE", `/v1/topics/${topic}`)).status).toBe(404);
		expect((await history(topic)).messages).toEqual([]);
		const sock = await TestSocket.open(topic);
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		// A subscriber does not create the topic.
		expect((await call("GET", `/v1/topics/${topic}`)).status).toBe(404);
		await publish(topic, { data: 1 });
		expect((await call("GET", `/v1/topics/${topic}`)).body).toMatchObject({ topic, head_seq: 1, subscribers: 1 });
		sock.close();
		// Settings and groups create a topic too.
		const bySettings = uniqueTopic();
		await call("PUT", `/v1/topics/${bySettings}`, { max_messages: 5 });
		expect((await call("GET", `/v1/topics/${bySettings}`)).status).toBe(200);
		const byGroup = uniqueTopic();
		await createGroup(byGroup, "g");
		expect((await call("GET", `/v1/topics/${byGroup}`)).status).toBe(200);
	});

	it("lists a topic's groups with their counts", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "a");
		await createGroup(topic, "b", { max_retries: 0 });
		await publish(topic, { data: 1 });
		await call("POST", groupPath(topic, "b", "/pull"), {});
		await call("POST", groupPath(topic, "b", "/nack"), { seqs: [1] });
		const { groups } = (await call("GET", `/v1/topics/${topic}/groups`)).body as { groups: Json[] };
		expect(groups.map((g) => g.group)).toEqual(["a", "b"]);
		expect(groups[0]).toMatchObject({ counts: { pending: 1, in_flight: 0, dead: 0 } });
		expect(groups[1]).toMatchObject({ counts: { dead: 1, in_flight: 0 } });
	});
});

describe("deleting a topic", () => {
	it("removes its messages, groups, keys and timers, closes its sockets with 4410, and the name starts again at seq 1", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g", { start: "earliest" });
		for (let i = 1; i <= 3; i++) await publish(topic, { data: i, key: `k${i}` });
		// A delayed message that would join the log in 1.5 s: its timer must go with the topic.
		expect((await publish(topic, { data: "later", delay_ms: 1500 })).status).toBe(202);
		const live = await TestSocket.open(topic, "from=0");
		await live.waitForMessages(3);
		const member = await TestSocket.open(topic, "group=g&prefetch=10");
		await member.waitForMessages(3);

		const res = await call("DELETE", `/v1/topics/${topic}`);
		expect(res.status).toBe(200);
		expect(res.body).toEqual({ deleted: true, messages: 3 });
		await Promise.all([whenClosed(live.ws), whenClosed(member.ws)]);
		expect(live.closed?.code).toBe(CLOSE_CODES.topicDeleted);
		expect(member.closed?.code).toBe(CLOSE_CODES.topicDeleted);

		expect((await call("GET", `/v1/topics/${topic}`)).status).toBe(404);
		expect((await history(topic)).messages).toEqual([]);
		expect((await call("GET", groupPath(topic, "g"))).status).toBe(404);
		// Past the delayed message's time: it never joins the new topic.
		await new Promise((r) => setTimeout(r, 1800));
		expect((await call("GET", `/v1/topics/${topic}`)).status).toBe(404);
		// The same key is new again, and the log starts at 1.
		const again = await publish(topic, { data: "new", key: "k1" });
		expect(again.status).toBe(201);
		expect(again.body).toMatchObject({ seq: 1 });
		expect(again.body.duplicate).toBeUndefined();
		expect((await history(topic)).messages.map((m) => m.data)).toEqual(["new"]);
	});
});

describe("the topic list", () => {
	it("lists the topics that exist within seconds, by prefix, page by page, and drops a deleted one", async () => {
		const prefix = `cat${Date.now().toString(36)}`;
		const names = Array.from({ length: 7 }, (_, i) => `${prefix}.t${i}`);
		for (const [i, name] of names.entries()) {
			if (i % 2 === 0) await publish(name, { data: i });
			else await createGroup(name, "g");
		}
		// A topic only read is not listed.
		await history(`${prefix}.only-read`);
		const listed = await eventually(
			async () => {
				const all = await listAll(prefix, 3);
				return all.length === names.length ? all : undefined;
			},
			"every topic listed",
			TUNING_WAIT_MS,
		);
		expect(listed.map((t) => t.topic)).toEqual(names);
		const t0 = listed[0] as Listed;
		expect(t0).toMatchObject({ head_seq: 1, retained: 1, groups: 0, dead_letters: 0, sockets: 0 });
		expect(t0.last_publish_at).toBeGreaterThan(0);
		expect(listed[1]).toMatchObject({ head_seq: 0, groups: 1, last_publish_at: null });
		// Another prefix sees none of them; a longer one only its own.
		expect((await list(`prefix=${prefix}x`)).topics).toEqual([]);
		expect((await list(`prefix=${prefix}.t3`)).topics.map((t) => t.topic)).toEqual([`${prefix}.t3`]);

		// Changes reach the list within a report period.
		for (let i = 0; i < 4; i++) await publish(names[0] as string, { data: i });
		await eventually(
			async () => (await list(`prefix=${names[0]}`)).topics[0]?.head_seq === 5,
			"the new head listed",
			TUNING_WAIT_MS,
		);
		expect((await call("DELETE", `/v1/topics/${names[3]}`)).status).toBe(200);
		const after = await listAll(prefix, 100);
		expect(after.map((t) => t.topic)).toEqual(names.filter((_, i) => i !== 3));
	});

	it("shows a token only the topics it may read or administer", async () => {
		const prefix = `vis${Date.now().toString(36)}`;
		for (const name of [`${prefix}.a.1`, `${prefix}.a.2`, `${prefix}.b.1`]) await publish(name, { data: 1 });
		await eventually(async () => (await listAll(prefix, 10)).length === 3, "all listed", TUNING_WAIT_MS);
		const token = async (topics: Record<string, ("publish" | "subscribe" | "consume" | "admin")[]>) =>
			(await mintToken(SECRET, { topics, ttl_s: 60 })).token;
		const reader = await token({ [`${prefix}.a.*`]: ["subscribe"], [`${prefix}.b.*`]: ["publish"] });
		expect((await listAll(prefix, 1, reader)).map((t) => t.topic)).toEqual([`${prefix}.a.1`, `${prefix}.a.2`]);
		const admin = await token({ [`${prefix}.b.>`]: ["admin"] });
		expect((await listAll(prefix, 10, admin)).map((t) => t.topic)).toEqual([`${prefix}.b.1`]);
		const none = await token({ "other.>": ["subscribe"] });
		expect(await listAll(prefix, 10, none)).toEqual([]);
		expect((await call("GET", "/v1/topics", undefined, { env: prod })).status).toBe(401);
	});

	it("refuses a bad query with what is wrong", async () => {
		for (const [query, pattern] of [
			["limit=0", /limit is at least 1/],
			["limit=1001", /limit is at most 1000/],
			["prefix=a%20b", /prefix/],
			["after=%2F", /after/],
		] as const) {
			const res = await call("GET", `/v1/topics?${query}`);
			expect(res.status, query).toBe(400);
			expect((res.body as { error: { message: string } }).error.message).toMatch(pattern);
		}
	});
});

/** A report period (2 s) and the alarm's and the round trip's slack. */
const TUNING_WAIT_MS = 8000;

describe("operator calls", () => {
	it("pull and redrive accept an empty body, as curl -X POST sends", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g", { max_retries: 0 });
		await publish(topic, { data: 1 });
		for (const headers of [{}, { "Content-Type": "application/json" }] as Record<string, string>[]) {
			const res = await api(groupPath(topic, "g", "/pull"), { method: "POST", headers });
			expect(res.status, JSON.stringify(headers)).toBe(200);
		}
		// The first pull leased seq 1; the second got nothing. Fail it into the dead letters, then redrive with no body.
		const pulled = await call("POST", groupPath(topic, "g", "/nack"), { seqs: [1] });
		expect(pulled.body).toMatchObject({ dead: [1] });
		const redrive = await api(groupPath(topic, "g", "/dlq/redrive"), { method: "POST" });
		expect(redrive.status).toBe(200);
		expect(await redrive.json()).toEqual({ redriven: 1 });
		// A body that is there must still be JSON.
		const form = await api(groupPath(topic, "g", "/pull"), {
			method: "POST",
			headers: { "Content-Type": "application/x-www-form-urlencoded" },
			body: "max=1",
		});
		expect(form.status).toBe(415);
		const bad = await api(groupPath(topic, "g", "/pull"), {
			method: "POST",
			headers: { "Content-Type": "application/json" },
			body: "{",
		});
		expect(bad.status).toBe(400);
	});

	it("a dead letter keeps every attempt's error, when it ended and who held it", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g", { max_retries: 2, retry_delay_ms: 0, ack_timeout_ms: 1000 });
		await publish(topic, { data: "job" });
		// Attempt 1: a pull whose lease runs out.
		const first = (await call("POST", groupPath(topic, "g", "/pull"), { ack_timeout_ms: 1000 })).body as {
			lease: string;
		};
		// Attempt 2: a pull that nacks with an error.
		const second = await pullWhenDue(topic, 2);
		await call("POST", groupPath(topic, "g", "/nack"), { seqs: [1], lease: second.lease, error: "boom" });
		// Attempt 3: a pull that nacks without one.
		const third = await pullWhenDue(topic, 3);
		await call("POST", groupPath(topic, "g", "/nack"), { seqs: [1], lease: third.lease });
		const dlq = (await call("GET", groupPath(topic, "g", "/dlq"))).body as { messages: Json[] };
		expect(dlq.messages[0]).toMatchObject({
			attempts: 3,
			last_error: null,
			errors: [
				{ attempt: 1, error: "ack timeout", by: first.lease },
				{ attempt: 2, error: "boom", by: second.lease },
				{ attempt: 3, error: null, by: third.lease },
			],
		});
		const at = ((dlq.messages[0] as Json).errors as { at: number }[]).map((e) => e.at);
		expect(at).toEqual([...at].sort((a, b) => a - b));
	});
});

describe("attempt errors", () => {
	it("keep the newest 20 attempts, in order", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g", { max_retries: 24, retry_delay_ms: 0 });
		await publish(topic, { data: "job" });
		for (let attempt = 1; attempt <= 25; attempt++) {
			const page = await pullWhenDue(topic, attempt);
			await call("POST", groupPath(topic, "g", "/nack"), { seqs: [1], lease: page.lease, error: `e${attempt}` });
		}
		const dlq = (await call("GET", groupPath(topic, "g", "/dlq"))).body as { messages: Json[] };
		const errors = dlq.messages[0]?.errors as { attempt: number; error: string }[];
		expect(errors.map((e) => e.attempt)).toEqual(Array.from({ length: 20 }, (_, i) => i + 6));
		expect(errors.map((e) => e.error)).toEqual(Array.from({ length: 20 }, (_, i) => `e${i + 6}`));
	});
});

/** Pulls until attempt `attempt` of seq 1 is handed out (a retry is due once its delay or lease has passed). */
async function pullWhenDue(topic: string, attempt: number): Promise<{ lease: string }> {
	const deadline = Date.now() + 5000;
	while (Date.now() < deadline) {
		const page = (await call("POST", groupPath(topic, "g", "/pull"), {})).body as {
			lease: string;
			messages: Json[];
		};
		if (page.messages.length > 0) {
			expect(page.messages[0]).toMatchObject({ seq: 1, attempt });
			return page;
		}
		await new Promise((r) => setTimeout(r, 50));
	}
	throw new Error(`attempt ${attempt} was never pulled`);
}
