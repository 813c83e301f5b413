import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { retryDelay } from "../../src/durable/groups/leases.js";
import { DEFAULT_GROUP_SETTINGS } from "../../src/protocol/limits.js";
import type { GroupSettings } from "../../src/protocol/message.js";
import {
	alarmOf,
	api,
	call,
	captureConsoleErrors,
	createGroup,
	eventually,
	groupPath,
	type Json,
	publish,
	pulledEventually,
	restartObject,
	stats,
	TestSocket,
	topicStub,
	uniqueTopic,
} from "./helpers.js";

function member(topic: string, group: string, prefetch = 1) {
	return TestSocket.open(topic, `group=${group}&prefetch=${prefetch}`);
}

async function publishN(topic: string, n: number, attributes?: (i: number) => Json) {
	const messages = Array.from({ length: n }, (_, i) => ({
		data: i,
		...(attributes ? { attributes: attributes(i) } : {}),
	}));
	for (let i = 0; i < n; i += 100)
		expect((await publish(topic, { messages: messages.slice(i, i + 100) })).status).toBe(201);
}

describe("group settings", () => {
	it("creates with defaults, changes, reads and deletes", async () => {
		const topic = uniqueTopic();
		const created = await createGroup(topic, "mailer", { max_retries: 5 });
		expect(created).toEqual({
			group: "mailer",
			// The documented defaults (docs/groups.md), written out: not read back from the code under test.
			settings: {
				max_retries: 5,
				retry_delay_ms: 1000,
				backoff: "fixed",
				max_retry_delay_ms: 300_000,
				jitter: true,
				ack_timeout_ms: 30_000,
				start: "latest",
			},
			cursor: 0,
			counts: { pending: 0, in_flight: 0, acked: 0, retried: 0, dead: 0, filtered: 0, expired: 0 },
			members: 0,
		});
		const changed = await call("PUT", groupPath(topic, "mailer"), { backoff: "exponential", filter: { kind: ["a"] } });
		expect(changed.status).toBe(200);
		expect(changed.body.settings).toMatchObject({ max_retries: 5, backoff: "exponential", filter: { kind: ["a"] } });
		const cleared = await call("PUT", groupPath(topic, "mailer"), { filter: null });
		expect((cleared.body.settings as Json).filter).toBeUndefined();
		expect((await call("GET", groupPath(topic, "mailer"))).status).toBe(200);
		expect((await stats(topic)) as unknown as { groups: Json[] }).toMatchObject({ groups: [{ group: "mailer" }] });
		expect((await call("DELETE", groupPath(topic, "mailer"))).body).toEqual({ deleted: true });
		expect((await call("GET", groupPath(topic, "mailer"))).status).toBe(404);
		expect((await call("DELETE", groupPath(topic, "mailer"))).status).toBe(404);
	});

	it("starts at the head (latest) or at the oldest retained message (earliest)", async () => {
		const topic = uniqueTopic();
		await publishN(topic, 5);
		expect((await createGroup(topic, "new")).cursor).toBe(5);
		expect((await createGroup(topic, "all", { start: "earliest" })).cursor).toBe(0);
		expect(((await call("GET", groupPath(topic, "all"))).body.counts as Json).pending).toBe(5);
	});

	it("validates settings with clear errors and stores nothing", async () => {
		const topic = uniqueTopic();
		const bad: Array<[Json, number, string]> = [
			[{ max_retries: 101 }, 400, "limit_exceeded"],
			[{ max_retries: -1 }, 400, "invalid_request"],
			[{ backoff: "linear" }, 400, "invalid_request"],
			[{ ack_timeout_ms: 10 }, 400, "invalid_request"],
			[{ retry_delay_ms: 13 * 3600 * 1000 }, 400, "limit_exceeded"],
			[{ filter: { a: [] } }, 400, "invalid_request"],
			[{ dead_letter_topic: "bad topic" }, 400, "invalid_request"],
			[{ unknown: 1 }, 400, "invalid_request"],
		];
		for (const [body, status, code] of bad) {
			const res = await call("PUT", groupPath(topic, "g"), body);
			expect(res.status, JSON.stringify(body)).toBe(status);
			expect((res.body.error as Json).code).toBe(code);
		}
		expect((await call("PUT", groupPath(topic, "bad name!"), {})).status).toBe(400);
		expect((await call("GET", groupPath(topic, "g"))).status).toBe(404);
	});
});

describe("group delivery over WebSockets", () => {
	it("drain: a member that is stopping gets nothing more, settles what it holds, and leaves without a failed attempt", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "workers");
		const m = await member(topic, "workers", 2);
		await m.waitForFrame((f) => f.type === "ready", "ready");
		await publishN(topic, 5);
		const held = await m.waitForMessages(2);
		m.send({ type: "drain" });
		for (const msg of held) m.send({ type: "ack", seq: msg.seq });
		const counts = async () => (await call("GET", groupPath(topic, "workers"))).body.counts as Json;
		await eventually(async () => (await counts()).acked === 2, "two acks");
		await new Promise((r) => setTimeout(r, 200));
		expect(m.messages()).toHaveLength(2); // no more after the drain, though the acks made room
		m.close();
		await m.waitFor(() => m.closed, "closed");
		expect(await counts()).toMatchObject({ acked: 2, in_flight: 0, pending: 3, retried: 0 });
		const live = await TestSocket.open(topic);
		await live.waitForFrame((f) => f.type === "ready", "ready");
		live.send({ type: "drain" });
		expect((await live.waitForFrame((f) => f.type === "error", "error")).code).toBe("invalid_frame");
		live.close();
	});

	it("spreads work round-robin over members; nothing is processed twice when all ack", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "workers");
		const members = await Promise.all([0, 1, 2].map(() => member(topic, "workers", 1)));
		await Promise.all(members.map((m) => m.waitForFrame((f) => f.type === "ready", "ready")));
		const processed: number[][] = members.map(() => []);
		let stop = false;
		const loops = members.map(async (m, i) => {
			let seen = 0;
			while (!stop) {
				const got = m.messages();
				for (; seen < got.length; seen++) {
					const msg = got[seen] as Json;
					processed[i]?.push(msg.seq as number);
					m.send({ type: "ack", seq: msg.seq });
				}
				await new Promise((r) => setTimeout(r, 2));
			}
		});
		await publishN(topic, 60);
		await eventually(async () => processed.flat().length === 60, "60 processed");
		stop = true;
		await Promise.all(loops);
		const all = processed.flat().sort((a, b) => a - b);
		expect(all).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
		for (const p of processed) expect(p.length).toBeGreaterThanOrEqual(10);
		const info = (await call("GET", groupPath(topic, "workers"))).body;
		expect(info.counts).toMatchObject({ pending: 0, in_flight: 0, acked: 60, retried: 0, dead: 0 });
		for (const m of members) m.close();
	});

	it("hands 9 messages to 3 idle members at prefetch 10 as 3, 3 and 3, each a run of seqs", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "workers");
		const members: TestSocket[] = [];
		for (let i = 0; i < 3; i++) {
			const m = await member(topic, "workers", 10);
			await m.waitForFrame((f) => f.type === "ready", "ready");
			members.push(m);
		}
		await publishN(topic, 9);
		await eventually(() => members.every((m) => m.messages().length === 3), "3 each");
		await new Promise((r) => setTimeout(r, 100));
		const seqs = members.map((m) => m.messages().map((x) => x.seq as number));
		// Each a run of 3 consecutive seqs, together every seq once, nobody more than its share.
		for (const run of seqs) expect(run).toEqual([run[0], (run[0] as number) + 1, (run[0] as number) + 2]);
		expect(seqs.flat().sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
		for (const m of members) m.close();
	});

	it("acks that arrive together share one dispatch, and the least served member of them goes first", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "workers");
		const a = await member(topic, "workers", 1);
		await a.waitForFrame((f) => f.type === "ready", "ready");
		const b = await member(topic, "workers", 1);
		await b.waitForFrame((f) => f.type === "ready", "ready");
		await publishN(topic, 2);
		await a.waitForMessages(1);
		await b.waitForMessages(1);
		// One of them gets ahead: it acks and takes the next message on its own.
		const [ahead, behind] = a.messages()[0]?.seq === 2 ? [a, b] : [b, a];
		ahead.send({ type: "ack", seq: 2 });
		await eventually(
			async () => ((await call("GET", groupPath(topic, "workers"))).body.counts as Json).acked === 1,
			"ack",
		);
		await publishN(topic, 1);
		expect((await ahead.waitForMessages(2)).map((m) => m.seq)).toEqual([2, 3]);
		// Served so far: ahead 2, behind 1. Seq 4 waits for room.
		await publishN(topic, 1);
		// Both ack in the same turn of the object, the one ahead first: the ack of the first to answer
		// must not take seq 4 before the other's ack is read.
		await runInDurableObject(topicStub(topic), (instance, state) => {
			const ownerOf = (seq: number) =>
				state.storage.sql.exec<{ owner: string }>("SELECT owner FROM group_messages WHERE seq = ?", seq).one().owner;
			const socketOf = (owner: string) =>
				state.getWebSockets().find((ws) => (ws.deserializeAttachment() as { id?: string } | null)?.id === owner);
			const aheadWs = socketOf(ownerOf(3));
			const behindWs = socketOf(ownerOf(1));
			if (!aheadWs || !behindWs) throw new Error("member sockets not found");
			instance.webSocketMessage(aheadWs, JSON.stringify({ type: "ack", seq: 3 }));
			instance.webSocketMessage(behindWs, JSON.stringify({ type: "ack", seq: 1 }));
		});
		expect((await behind.waitForMessages(2)).map((m) => m.seq)).toEqual([1, 4]);
		await new Promise((r) => setTimeout(r, 200));
		expect(ahead.messages().map((m) => m.seq)).toEqual([2, 3]);
		a.close();
		b.close();
	});

	it("holds at most prefetch unacknowledged messages per member, in seq order", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g");
		const m = await member(topic, "g", 3);
		await publishN(topic, 10);
		const first = await m.waitForMessages(3);
		await new Promise((r) => setTimeout(r, 100));
		expect(m.messages()).toHaveLength(3);
		expect(first.map((x) => [x.seq, x.attempt, x.group])).toEqual([
			[1, 1, "g"],
			[2, 1, "g"],
			[3, 1, "g"],
		]);
		m.send({ type: "ack", seq: 2 });
		const next = await m.waitForMessages(4);
		expect(next[3]?.seq).toBe(4);
		expect(((await call("GET", groupPath(topic, "g"))).body.counts as Json).in_flight).toBe(3);
		m.close();
	});

	it("with one member and prefetch 1 is strictly FIFO", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "fifo");
		const m = await member(topic, "fifo", 1);
		await publishN(topic, 20);
		const order: number[] = [];
		for (let i = 0; i < 20; i++) {
			const got = await m.waitForMessages(i + 1);
			const msg = got[i] as Json;
			order.push(msg.seq as number);
			// A nack with no delay keeps its place: it comes back before later seqs.
			if (i === 5 && (msg.attempt as number) === 1) {
				m.send({ type: "nack", seq: msg.seq, delay_ms: 0 });
				const again = await m.waitForMessages(i + 2);
				expect(again[i + 1]).toMatchObject({ seq: msg.seq, attempt: 2 });
				m.frames.splice(m.frames.indexOf(m.frames.find((f) => f.message === msg) as Json), 1);
			}
			m.send({ type: "ack", seq: (m.messages()[i] as Json).seq });
		}
		expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
		m.close();
	});

	it("a nack with a delay lets later seqs pass, and the message comes back when its delay is over", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "fifo", { retry_delay_ms: 0 });
		const m = await member(topic, "fifo", 1);
		await m.waitForFrame((f) => f.type === "ready", "ready");
		await publishN(topic, 3);
		const [first] = await m.waitForMessages(1);
		expect(first).toMatchObject({ seq: 1, attempt: 1 });
		const nackedAt = Date.now();
		m.send({ type: "nack", seq: 1, delay_ms: 800 });
		// Seqs 2 and 3 pass while seq 1 waits its delay.
		for (const seq of [2, 3]) {
			const got = await m.waitFor(() => m.messages().find((x) => x.seq === seq), `seq ${seq}`, 5000);
			expect(Date.now() - nackedAt).toBeLessThan(700);
			m.send({ type: "ack", seq: got.seq });
		}
		const again = await m.waitFor(() => m.messages().find((x) => x.seq === 1 && x.attempt === 2), "seq 1 again", 5000);
		expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(750);
		expect(m.messages().map((x) => [x.seq, x.attempt])).toEqual([
			[1, 1],
			[2, 1],
			[3, 1],
			[1, 2],
		]);
		m.send({ type: "ack", seq: again.seq });
		m.close();
	});

	it("retries a poison message max_retries times with backoff, dead-letters it once, and redrives it", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "poison", { max_retries: 2, retry_delay_ms: 300 });
		const m = await member(topic, "poison", 1);
		await publish(topic, { data: "bad", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" });
		const times: number[] = [];
		for (let attempt = 1; attempt <= 3; attempt++) {
			const got = await m.waitForMessages(attempt, 5000);
			const msg = got[attempt - 1] as Json;
			expect(msg).toMatchObject({ seq: 1, attempt, data: "bad", traceparent: expect.any(String) });
			times.push(Date.now());
			m.send({ type: "nack", seq: 1, error: `failure ${attempt}` });
		}
		// retry_delay_ms apart: not sooner, and not much later (the slack is for a shared machine).
		for (const gap of [(times[1] as number) - (times[0] as number), (times[2] as number) - (times[1] as number)]) {
			expect(gap).toBeGreaterThanOrEqual(280);
			expect(gap).toBeLessThan(1300);
		}
		const dlq = await eventually(async () => {
			const r = (await call("GET", groupPath(topic, "poison", "/dlq"))).body;
			return r.count === 1 ? r : undefined;
		}, "dead letter");
		expect(dlq.messages).toEqual([
			{
				seq: 1,
				attempts: 3,
				last_error: "failure 3",
				errors: [1, 2, 3].map((attempt) => ({
					attempt,
					at: expect.any(Number),
					error: `failure ${attempt}`,
					by: expect.stringMatching(/^member:[0-9a-f-]{36}$/),
				})),
				dead_at: expect.any(Number),
				message: expect.objectContaining({ seq: 1, data: "bad" }),
			},
		]);
		// Each attempt's error is stamped when that attempt ended, by the one member that held it.
		const errors = (dlq.messages as { errors: { at: number; by: string }[] }[])[0]?.errors ?? [];
		expect(new Set(errors.map((e) => e.by)).size).toBe(1);
		for (let i = 0; i < 3; i++) {
			expect(errors[i]?.at).toBeGreaterThanOrEqual((times[i] as number) - 50);
			expect(errors[i]?.at).toBeLessThanOrEqual((times[i] as number) + 1000);
		}
		await new Promise((r) => setTimeout(r, 400));
		expect(m.messages()).toHaveLength(3);
		expect((await call("GET", groupPath(topic, "poison"))).body.counts as Json).toMatchObject({
			dead: 1,
			retried: 2,
			in_flight: 0,
		});
		expect((await call("POST", groupPath(topic, "poison", "/dlq/redrive"), {})).body).toEqual({ redriven: 1 });
		const back = await m.waitForMessages(4);
		expect(back[3]).toMatchObject({ seq: 1, attempt: 1, data: "bad" });
		m.send({ type: "ack", seq: 1 });
		await eventually(
			async () => ((await call("GET", groupPath(topic, "poison"))).body.counts as Json).acked === 1,
			"acked",
		);
		expect((await call("GET", groupPath(topic, "poison", "/dlq"))).body.count).toBe(0);
		m.close();
	});

	it("redelivers after the ack timeout", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "slow", { ack_timeout_ms: 1000, retry_delay_ms: 0 });
		const m = await member(topic, "slow", 1);
		await publish(topic, { data: "x" });
		await m.waitForMessages(1);
		const deliveredAt = Date.now();
		const again = await m.waitForMessages(2, 5000);
		const waited = Date.now() - deliveredAt;
		expect(again[1]).toMatchObject({ seq: 1, attempt: 2 });
		// Not before the ack timeout (a little slack for clocks), and not long after it.
		expect(waited).toBeGreaterThanOrEqual(950);
		expect(waited).toBeLessThan(1900);
		m.close();
	});

	it("releases a disconnected member's messages to the others", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g", { retry_delay_ms: 0 });
		const a = await member(topic, "g", 5);
		await a.waitForFrame((f) => f.type === "ready", "ready");
		await publishN(topic, 3);
		await a.waitForMessages(3);
		const b = await member(topic, "g", 5);
		await b.waitForFrame((f) => f.type === "ready", "ready");
		expect(b.messages()).toHaveLength(0);
		a.close();
		const got = await b.waitForMessages(3);
		expect(got.map((x) => [x.seq, x.attempt])).toEqual([
			[1, 2],
			[2, 2],
			[3, 2],
		]);
		b.close();
	});

	it("refuses sockets for unknown groups and acks on live sockets", async () => {
		const topic = uniqueTopic();
		const res = await api(`/v1/topics/${topic}/ws?group=nope`, { headers: { Upgrade: "websocket" } });
		expect(res.status).toBe(404);
		const both = await api(`/v1/topics/${topic}/ws?group=nope&from=0`, { headers: { Upgrade: "websocket" } });
		expect(both.status).toBe(400);
		const live = await TestSocket.open(topic);
		live.send({ type: "ack", seq: 1 });
		expect((await live.waitForFrame((f) => f.type === "error", "error")).code).toBe("invalid_frame");
		live.close();
	});
});

describe("pull consumers", () => {
	it("lease, ack and nack by seq", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "cron", { retry_delay_ms: 0 });
		await publishN(topic, 5);
		const first = await call("POST", groupPath(topic, "cron", "/pull"), { max: 3 });
		const msgs = first.body.messages as Json[];
		expect(msgs.map((m) => [m.seq, m.attempt, m.group])).toEqual([
			[1, 1, "cron"],
			[2, 1, "cron"],
			[3, 1, "cron"],
		]);
		const second = (await call("POST", groupPath(topic, "cron", "/pull"), { max: 10 })).body.messages as Json[];
		expect(second.map((m) => m.seq)).toEqual([4, 5]);
		expect((await call("POST", groupPath(topic, "cron", "/ack"), { seqs: [1, 2, 4, 99] })).body).toEqual({
			acked: [1, 2, 4],
		});
		expect((await call("POST", groupPath(topic, "cron", "/nack"), { seqs: [3], error: "later" })).body).toEqual({
			nacked: [3],
			dead: [],
		});
		const third = (await call("POST", groupPath(topic, "cron", "/pull"), { max: 10 })).body.messages as Json[];
		expect(third.map((m) => [m.seq, m.attempt])).toEqual([[3, 2]]);
		expect((await call("POST", groupPath(topic, "cron", "/pull"), {})).body).toEqual({
			lease: expect.stringMatching(/^pull:/),
			messages: [],
		});
		expect((await call("POST", groupPath(topic, "nope", "/pull"), {})).status).toBe(404);
	});

	it("expires a pull lease on the alarm, also across an object restart", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "p", { retry_delay_ms: 0 });
		await publishN(topic, 1);
		await call("POST", groupPath(topic, "p", "/pull"), { ack_timeout_ms: 1000 });
		await restartObject(topic);
		const again = await pulledEventually(topic, "p", {}, "redelivery after lease expiry", 5000);
		expect(again[0]).toMatchObject({ seq: 1, attempt: 2 });
		// Alarms are at-least-once: running the alarm again changes nothing.
		// The lease of attempt 2 keeps an alarm (its sweep); an alarm being stored is waited for, never skipped.
		await eventually(async () => (await alarmOf(topic)) !== null, "the lease sweep's alarm");
		expect(await runDurableObjectAlarm(topicStub(topic))).toBe(true);
		expect(((await call("GET", groupPath(topic, "p"))).body.counts as Json).in_flight).toBe(1);
	});
});

describe("group filters", () => {
	it("delivers only matching messages and counts the rest", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "invoices", { filter: { kind: ["invoice"], amount: [{ numeric: [">", 10] }] } });
		await publishN(topic, 10, (i) => ({ kind: i % 2 === 0 ? "invoice" : "order", amount: i * 3 }));
		const got = (await call("POST", groupPath(topic, "invoices", "/pull"), { max: 100 })).body.messages as Json[];
		expect(got.map((m) => m.data)).toEqual([4, 6, 8]);
		expect(((await call("GET", groupPath(topic, "invoices"))).body.counts as Json).filtered).toBe(7);
	});
});

describe("backoff", () => {
	it("spaces the attempts of an exponential backoff 200, 400 and 800 ms apart, not sooner and not much later", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "exp", { max_retries: 3, retry_delay_ms: 200, backoff: "exponential", jitter: false });
		const m = await member(topic, "exp", 1);
		await m.waitForFrame((f) => f.type === "ready", "ready");
		await publish(topic, { data: "x" });
		const times: number[] = [];
		for (let attempt = 1; attempt <= 4; attempt++) {
			await m.waitFor(() => m.messages().find((x) => x.attempt === attempt), `attempt ${attempt}`, 5000);
			times.push(Date.now());
			m.send({ type: "nack", seq: 1 });
		}
		const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
		for (const [i, expected] of [200, 400, 800].entries()) {
			expect(gaps[i], `gap ${i + 1}`).toBeGreaterThanOrEqual(expected - 20);
			expect(gaps[i], `gap ${i + 1}`).toBeLessThan(expected + 600);
		}
		m.close();
	});

	const base: GroupSettings = { ...DEFAULT_GROUP_SETTINGS, retry_delay_ms: 100, max_retry_delay_ms: 1000 };
	it("is fixed, or exponential with a cap and jitter", () => {
		expect([1, 2, 3].map((a) => retryDelay(base, a))).toEqual([100, 100, 100]);
		const exp = { ...base, backoff: "exponential" as const, jitter: false };
		expect([1, 2, 3, 4, 5, 6].map((a) => retryDelay(exp, a))).toEqual([100, 200, 400, 800, 1000, 1000]);
		const jittered = { ...exp, jitter: true };
		expect(retryDelay(jittered, 3, () => 0)).toBe(200);
		expect(retryDelay(jittered, 3, () => 1)).toBe(400);
	});
});

describe("dead-letter topic", () => {
	it("publishes each dead letter once to the dead-letter topic, with its origin in attributes", async () => {
		const topic = uniqueTopic("orders");
		const dlt = `${topic}.failed`;
		await createGroup(topic, "billing", { max_retries: 0, dead_letter_topic: dlt });
		const watcher = await TestSocket.open(dlt);
		await watcher.waitForFrame((f) => f.type === "ready", "ready");
		const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
		await publish(topic, { data: { order: 7 }, attributes: { region: "eu" }, traceparent });
		const [leased] = (await call("POST", groupPath(topic, "billing", "/pull"), {})).body.messages as Json[];
		expect(
			(await call("POST", groupPath(topic, "billing", "/nack"), { seqs: [leased?.seq], error: "card declined" })).body,
		).toEqual({ nacked: [1], dead: [1] });
		const [dead] = await watcher.waitForMessages(1, 5000);
		expect(dead).toMatchObject({
			topic: dlt,
			data: { order: 7 },
			traceparent,
			attributes: {
				region: "eu",
				source_topic: topic,
				source_group: "billing",
				source_seq: 1,
				attempts: 1,
				last_error: "card declined",
			},
		});
		// The forward timer is gone once the publish succeeded: nothing is sent twice.
		await eventually(async () => (await alarmTimers(topic)).length === 0, "forward timer settled");
		expect(await runDurableObjectAlarm(topicStub(topic))).toBe(true);
		await new Promise((r) => setTimeout(r, 200));
		expect(watcher.messages()).toHaveLength(1);
		expect((await stats(dlt)).head_seq).toBe(1);
		watcher.close();
	});

	it("forwards a dead letter once when the first forward fails, and again never, however often its timer replays", async () => {
		const topic = uniqueTopic("orders");
		const dlt = `${topic}.failed`;
		await createGroup(topic, "billing", { max_retries: 0, dead_letter_topic: dlt });
		await publish(topic, { data: "x" });
		// The dead-letter topic's object refuses the first forward, as an overloaded object would.
		const target = await runInDurableObject(topicStub(dlt), (instance) => instance);
		const proto = Object.getPrototypeOf(target) as { publish: (...a: unknown[]) => unknown };
		const original = proto.publish;
		let refused = 0;
		proto.publish = function (this: unknown, ...args: unknown[]) {
			if (this === target && refused === 0) {
				refused++;
				return { ok: false, error: { code: "rate_limited", message: "refused by the test" } };
			}
			return original.apply(this, args);
		};
		const failures = captureConsoleErrors(/^tidings: forwarding dead letter/);
		try {
			await call("POST", groupPath(topic, "billing", "/pull"), {});
			expect((await call("POST", groupPath(topic, "billing", "/nack"), { seqs: [1] })).body).toEqual({
				nacked: [1],
				dead: [1],
			});
			await eventually(() => failures.caught.length === 1, "the refused forward");
			expect(refused).toBe(1);
			expect((await stats(dlt)).head_seq).toBe(0);
			// The forward stays scheduled: its retry (brought forward here) publishes it.
			const [timer] = await deadLetterTimers(topic);
			expect(timer).toBeDefined();
			await runInDurableObject(topicStub(topic), (_i, state) => {
				state.storage.sql.exec("UPDATE timers SET due_at = ? WHERE kind = 'dead-letter'", Date.now() - 1);
			});
			expect(await runDurableObjectAlarm(topicStub(topic))).toBe(true);
			await eventually(async () => (await stats(dlt)).head_seq === 1, "forwarded after the failure");
			await eventually(async () => (await deadLetterTimers(topic)).length === 0, "forward timer settled");
			// The alarm is at-least-once: the same timer run again (as after a crash before its cancel) adds nothing.
			await runInDurableObject(topicStub(topic), (_i, state) => {
				state.storage.sql.exec(
					"INSERT INTO timers (kind, key, due_at, payload) VALUES ('dead-letter', ?, ?, ?)",
					timer?.key,
					Date.now() - 1,
					timer?.payload,
				);
			});
			expect(await runDurableObjectAlarm(topicStub(topic))).toBe(true);
			await eventually(async () => (await deadLetterTimers(topic)).length === 0, "replayed timer settled");
			expect((await stats(dlt)).head_seq).toBe(1);
			expect(failures.caught).toHaveLength(1);
		} finally {
			proto.publish = original;
			failures.restore();
		}
	});

	it("refuses the topic itself as its dead-letter topic", async () => {
		const topic = uniqueTopic();
		const res = await call("PUT", groupPath(topic, "g"), { dead_letter_topic: topic });
		expect(res.status).toBe(400);
	});
});

async function deadLetterTimers(topic: string) {
	return runInDurableObject(topicStub(topic), (_i, state) =>
		state.storage.sql
			.exec<{ key: string; payload: string }>("SELECT key, payload FROM timers WHERE kind = 'dead-letter'")
			.toArray(),
	);
}

async function alarmTimers(topic: string) {
	return runInDurableObject(topicStub(topic), (_i, state) =>
		state.storage.sql.exec<{ kind: string }>("SELECT kind FROM timers WHERE kind = 'dead-letter'").toArray(),
	);
}

describe("object restart", () => {
	it("gives what members held back to the group at once, and keeps pending retries", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g", { retry_delay_ms: 0, ack_timeout_ms: 60_000, max_retries: 1 });
		await createGroup(topic, "p", { retry_delay_ms: 200, max_retries: 3, start: "earliest" });
		const before = await member(topic, "g", 2);
		await publishN(topic, 3);
		await before.waitForMessages(2);
		const pulled = (await call("POST", groupPath(topic, "p", "/pull"), { max: 1 })).body.messages as Json[];
		await call("POST", groupPath(topic, "p", "/nack"), { seqs: [pulled[0]?.seq], error: "later" });
		await restartObject(topic);
		await before.waitFor(() => before.closed, "socket closed by the restart");
		// A new member gets the two held messages now, not after the 60 s ack timeout.
		const after = await member(topic, "g", 5);
		const got = await after.waitForMessages(3, 5000);
		expect(got.map((m) => [m.seq, m.attempt])).toEqual([
			[1, 2],
			[2, 2],
			[3, 1],
		]);
		for (const m of got) after.send({ type: "ack", seq: m.seq });
		await eventually(async () => ((await call("GET", groupPath(topic, "g"))).body.counts as Json).acked === 3, "acked");
		// The nacked pull message comes back after its retry delay, with its attempt count
		// (meanwhile a pull takes the next messages from the log).
		const retried = await eventually(async () => {
			const r = (await call("POST", groupPath(topic, "p", "/pull"), { max: 10 })).body.messages as Json[];
			return r.find((m) => m.seq === 1);
		}, "retry after restart");
		expect(retried).toMatchObject({ seq: 1, attempt: 2 });
		after.close();
	});
});

describe("delayed messages and groups", () => {
	it("hands a delayed message to an idle member when it joins the log", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g");
		const m = await member(topic, "g", 1);
		await m.waitForFrame((f) => f.type === "ready", "ready");
		await publish(topic, { data: "later", delay_ms: 300 });
		const [got] = await m.waitForMessages(1, 5000);
		expect(got).toMatchObject({ seq: 1, data: "later", attempt: 1 });
		m.close();
	});
});

describe("pull leases", () => {
	it("settle only the pull that holds them when acked with its lease id, never a socket member's", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g", { retry_delay_ms: 0 });
		await publishN(topic, 1);
		const first = (await call("POST", groupPath(topic, "g", "/pull"), { max: 1, ack_timeout_ms: 1000 })).body;
		// The lease runs out; a second pull takes the same message.
		const second = await eventually(
			async () => {
				const r = (await call("POST", groupPath(topic, "g", "/pull"), { max: 1 })).body;
				return (r.messages as Json[]).some((m) => m.seq === 1) ? r : undefined;
			},
			"re-lease after timeout",
			5000,
		);
		// The first puller's late ack, with its lease id, settles nothing.
		expect((await call("POST", groupPath(topic, "g", "/ack"), { seqs: [1], lease: first.lease })).body).toEqual({
			acked: [],
		});
		expect((await call("POST", groupPath(topic, "g", "/ack"), { seqs: [1], lease: second.lease })).body).toEqual({
			acked: [1],
		});
		// A socket member's lease cannot be settled over HTTP.
		await publishN(topic, 1);
		const m = await member(topic, "g", 1);
		const [held] = await m.waitForMessages(1);
		expect((await call("POST", groupPath(topic, "g", "/ack"), { seqs: [held?.seq] })).body).toEqual({ acked: [] });
		expect((await call("POST", groupPath(topic, "g", "/ack"), { seqs: [1], lease: "nope" })).status).toBe(400);
		m.close();
	});
});

describe("lease sweep", () => {
	it("expires leases with different deadlines each at its own time, with one timer per group", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g", { retry_delay_ms: 0 });
		await publishN(topic, 2);
		await call("POST", groupPath(topic, "g", "/pull"), { max: 1, ack_timeout_ms: 2500 });
		await call("POST", groupPath(topic, "g", "/pull"), { max: 1, ack_timeout_ms: 1000 });
		const timers = await runInDurableObject(topicStub(topic), (_i, state) =>
			state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM timers WHERE kind = 'lease'").one(),
		);
		expect(timers.n).toBe(1);
		const first = await pulledEventually(topic, "g", { max: 10 }, "the 1 s lease expired", 5000);
		expect(first.map((m) => [m.seq, m.attempt])).toEqual([[2, 2]]);
		const second = await pulledEventually(topic, "g", { max: 10 }, "the 2.5 s lease expired", 6000);
		expect(second.map((m) => [m.seq, m.attempt])).toEqual([[1, 2]]);
	});
});
