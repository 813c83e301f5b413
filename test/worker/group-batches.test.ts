/**
 * Consumer groups at speed: work goes out in batches that stay fair, acks
 * and nacks settle many seqs (and ranges) at once, and leases held in
 * batches stay correct across restarts and the schema step that introduced
 * them.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
	call,
	createGroup,
	eventually,
	groupPath,
	type Json,
	publish,
	pulledEventually,
	restartObject,
	TestSocket,
	topicStub,
	uniqueTopic,
} from "./helpers.js";

async function member(topic: string, group: string, prefetch: number) {
	const m = await TestSocket.open(topic, `group=${group}&prefetch=${prefetch}`);
	await m.waitForFrame((f) => f.type === "ready", "ready");
	return m;
}

async function publishN(topic: string, n: number) {
	const res = await publish(topic, { messages: Array.from({ length: n }, (_, i) => ({ data: i })) });
	expect(res.status).toBe(201);
}

async function counts(topic: string, group: string): Promise<Json> {
	return (await call("GET", groupPath(topic, group))).body.counts as Json;
}

const quiet = (ms = 150) => new Promise((r) => setTimeout(r, ms));

describe("batched dispatch", () => {
	it("hands a burst out in even shares: 3 members at prefetch 10 get 9 messages 3/3/3, each a run of seqs", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g");
		const members = [await member(topic, "g", 10), await member(topic, "g", 10), await member(topic, "g", 10)];
		await publishN(topic, 9);
		await eventually(() => members.every((m) => m.messages().length >= 3), "3 each");
		await quiet();
		const got = members.map((m) => m.messages().map((x) => x.seq as number));
		expect(got.map((seqs) => seqs.length)).toEqual([3, 3, 3]);
		// Written out: which member got which run depends on where the round-robin stood.
		expect(got.map((seqs) => seqs.join(",")).sort()).toEqual(["1,2,3", "4,5,6", "7,8,9"]);
		for (const m of members) m.close();
	});

	it("sends a member's batch packed in one WebSocket message only when it asked for packing", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g");
		const plain = await member(topic, "g", 10);
		const packed = await TestSocket.open(topic, "group=g&prefetch=10&pack=1");
		await packed.waitForFrame((f) => f.type === "ready", "ready");
		await publishN(topic, 10);
		await eventually(() => plain.messages().length + packed.messages().length === 10, "10 delivered");
		const deliveries = (m: TestSocket) => m.raw.filter((t) => t.includes('"type":"message"'));
		// Every plain message is one frame a reader can JSON.parse whole.
		for (const text of deliveries(plain)) expect(JSON.parse(text)).toMatchObject({ type: "message" });
		expect(deliveries(plain)).toHaveLength(plain.messages().length);
		expect(plain.messages().length).toBeGreaterThan(1);
		expect(deliveries(packed)).toHaveLength(1);
		expect(packed.messages().length).toBeGreaterThan(1);
		plain.close();
		packed.close();
	});

	it("gives each member of a group a fair part of a long run of publishes", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g");
		const members = await Promise.all([1, 2, 3, 4].map(() => member(topic, "g", 8)));
		const acked = members.map(() => 0);
		let stop = false;
		const loops = members.map(async (m, i) => {
			let seen = 0;
			while (!stop) {
				const got = m.messages();
				if (got.length > seen) {
					const seqs = got.slice(seen).map((x) => x.seq as number);
					seen = got.length;
					m.send({ type: "ack", seqs });
					acked[i] = (acked[i] as number) + seqs.length;
				}
				await new Promise((r) => setTimeout(r, 1));
			}
		});
		for (let i = 0; i < 20; i++) await publishN(topic, 20);
		await eventually(async () => (await counts(topic, "g")).acked === 400, "400 acked");
		stop = true;
		await Promise.all(loops);
		// Even shares would be 100 each; the bench's fairness bound is 0.67×–1.5× of the mean.
		for (const n of acked) {
			expect(n).toBeGreaterThanOrEqual(67);
			expect(n).toBeLessThanOrEqual(150);
		}
		for (const m of members) m.close();
	});
});

describe("settling many at once", () => {
	it("an ack frame settles seqs and [first, last] ranges; what is not leased is named in one error", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g", { retry_delay_ms: 0 });
		const m = await member(topic, "g", 10);
		await publishN(topic, 10);
		await m.waitForMessages(10);
		m.send({ type: "ack", seqs: [[1, 4], 6, [8, 9]] });
		await eventually(async () => (await counts(topic, "g")).acked === 7, "7 acked");
		expect(await counts(topic, "g")).toMatchObject({ in_flight: 3, acked: 7 });
		m.send({ type: "ack", seqs: [5, 6, 42], ref: "a1" });
		const error = await m.waitForFrame((f) => f.type === "error", "not_found");
		expect(error).toEqual({
			type: "error",
			code: "not_found",
			message: "seqs 6, 42 are not leased to this member (settled already, or its ack timeout ran out)",
			ref: "a1",
		});
		expect(await counts(topic, "g")).toMatchObject({ in_flight: 2, acked: 8 });
		m.send({ type: "nack", seqs: [[7, 7], 10], error: "later", delay_ms: 0 });
		const again = await m.waitForMessages(12);
		expect(again.slice(10).map((x) => [x.seq, x.attempt])).toEqual([
			[7, 2],
			[10, 2],
		]);
		m.close();
	});

	it("refuses an ack or nack frame with both seq and seqs, neither, a backwards range, or over 1,000 seqs", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g");
		const m = await member(topic, "g", 1);
		const cases: [unknown, string, string][] = [
			[{ type: "ack", seq: 1, seqs: [1], ref: "r1" }, "invalid_request", "give seq or seqs, not both"],
			[{ type: "ack", ref: "r2" }, "invalid_request", "give seq or seqs, not both"],
			[{ type: "nack", seqs: [[3, 1]], ref: "r3" }, "invalid_request", "[first, last]"],
			[{ type: "ack", seqs: [[1, 1001]], ref: "r4" }, "limit_exceeded", "at most 1000 seqs"],
			// A range is counted, never expanded, before it is checked.
			[{ type: "ack", seqs: [[1, 2 ** 52]], ref: "r5" }, "limit_exceeded", "at most 1000 seqs"],
			[{ type: "ack", seqs: [], ref: "r6" }, "invalid_request", "seqs must not be empty"],
		];
		for (const [frame, code, text] of cases) {
			m.send(frame);
			const ref = (frame as { ref: string }).ref;
			const error = await m.waitForFrame((f) => f.type === "error" && f.ref === ref, ref);
			expect(error.code, ref).toBe(code);
			expect(error.message, ref).toContain(text);
		}
		expect(m.closed).toBeUndefined();
		m.close();
	});

	it("the HTTP ack and nack take ranges too", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "p", { retry_delay_ms: 0 });
		await publishN(topic, 6);
		const pulled = (await call("POST", groupPath(topic, "p", "/pull"), { max: 6 })).body;
		expect((pulled.messages as Json[]).map((x) => x.seq)).toEqual([1, 2, 3, 4, 5, 6]);
		expect((await call("POST", groupPath(topic, "p", "/ack"), { seqs: [[1, 3], 5] })).body).toEqual({
			acked: [1, 2, 3, 5],
		});
		expect((await call("POST", groupPath(topic, "p", "/nack"), { seqs: [[4, 6]] })).body).toEqual({
			nacked: [4, 6],
			dead: [],
		});
		const over = await call("POST", groupPath(topic, "p", "/ack"), { seqs: [[1, 1000], 2000] });
		expect(over.status).toBe(400);
		expect(over.body).toMatchObject({ error: { code: "limit_exceeded" } });
	});
});

describe("leases across restarts", () => {
	it("a lease lost in a restart is a failed attempt: never lost, and never past max_retries + 1 attempts", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g", { retry_delay_ms: 0, max_retries: 1, ack_timeout_ms: 60_000 });
		const first = await member(topic, "g", 5);
		await publishN(topic, 5);
		expect((await first.waitForMessages(5)).map((x) => x.attempt)).toEqual([1, 1, 1, 1, 1]);
		await restartObject(topic);
		await first.waitFor(() => first.closed, "closed by the restart");
		const second = await member(topic, "g", 5);
		expect((await second.waitForMessages(5, 5000)).map((x) => [x.seq, x.attempt])).toEqual([
			[1, 2],
			[2, 2],
			[3, 2],
			[4, 2],
			[5, 2],
		]);
		await restartObject(topic);
		await second.waitFor(() => second.closed, "closed by the restart");
		// The second attempt was the last: all five are dead letters, none comes a third time.
		const third = await member(topic, "g", 5);
		await eventually(async () => (await counts(topic, "g")).dead === 5, "5 dead letters");
		await quiet(300);
		expect(third.messages()).toEqual([]);
		expect(await counts(topic, "g")).toMatchObject({ pending: 0, in_flight: 0, dead: 5, acked: 0 });
		third.close();
	});

	it("leases written by the schema before due_at carry over: a leased row still expires, a ready row is still due", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "p", { retry_delay_ms: 0 });
		await publishN(topic, 2);
		const now = Date.now();
		// Rebuild this object's group table as schema version 3 wrote it: one leased row, one ready row.
		await runInDurableObject(topicStub(topic), (_instance, state) => {
			const sql = state.storage.sql;
			sql.exec(`DROP TABLE group_messages;
				CREATE TABLE group_messages (grp TEXT NOT NULL, seq INTEGER NOT NULL, attempt INTEGER NOT NULL,
				  state TEXT NOT NULL, owner TEXT, lease_until INTEGER, available_at INTEGER NOT NULL,
				  last_error TEXT, payload TEXT, PRIMARY KEY (grp, seq));
				CREATE INDEX group_messages_ready ON group_messages (grp, state, available_at);
				CREATE INDEX group_messages_owner ON group_messages (grp, owner);
				CREATE INDEX group_messages_lease ON group_messages (grp, state, lease_until);
				ALTER TABLE dead_letters DROP COLUMN errors;`);
			sql.exec(
				"INSERT INTO group_messages VALUES ('p', 1, 1, 'leased', 'pull:00000000-0000-0000-0000-000000000000', ?, ?, NULL, NULL)",
				now + 1000,
				now,
			);
			sql.exec("INSERT INTO group_messages VALUES ('p', 2, 1, 'ready', NULL, NULL, ?, 'boom', NULL)", now);
			sql.exec("UPDATE groups SET cursor = 2 WHERE name = 'p'");
			// Its lease sweep timer, as version 3 armed it.
			sql.exec("INSERT INTO timers (kind, key, due_at) VALUES ('lease', 'p', ?)", now + 1000);
			sql.exec("UPDATE meta SET value = '3' WHERE key = 'schema_version'");
			state.storage.setAlarm(now + 1000);
		});
		await restartObject(topic);
		expect(await counts(topic, "p")).toMatchObject({ pending: 1, in_flight: 1 });
		const ready = (await call("POST", groupPath(topic, "p", "/pull"), { max: 5 })).body.messages as Json[];
		expect(ready.map((x) => [x.seq, x.attempt])).toEqual([[2, 2]]);
		const expired = await pulledEventually(topic, "p", { max: 5 }, "the old lease expires", 5000);
		expect(expired.map((x) => [x.seq, x.attempt])).toEqual([[1, 2]]);
		const version = await runInDurableObject(topicStub(topic), (_i, state) =>
			state.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").one(),
		);
		// Step 4 and every later one ran.
		expect(Number(version.value)).toBeGreaterThanOrEqual(4);
	});
});
