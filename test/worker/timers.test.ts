import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
	alarmOf,
	call,
	captureConsoleErrors,
	eventually,
	expectConsecutive,
	history,
	publish,
	restartObject,
	stats,
	TestSocket,
	topicStub,
	uniqueTopic,
} from "./helpers.js";

function configure(topic: string, settings: unknown) {
	return call("PUT", `/v1/topics/${topic}`, settings);
}

describe("delayed messages", () => {
	it("answer {id, deliver_at}, stay out of the log until due, then join it with the next seq", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic);
		const before = Date.now();
		const res = await publish(topic, { data: "later", delay_ms: 400, key: "d1" });
		expect(res.status).toBe(202);
		expect(res.body).toEqual({ id: expect.any(String), deliver_at: expect.any(Number) });
		expect(res.body.deliver_at as number).toBeGreaterThanOrEqual(before + 400);
		await publish(topic, { data: "now" });
		expect((await history(topic)).messages.map((m) => m.data)).toEqual(["now"]);
		expect((await stats(topic)).delayed).toBe(1);
		// A duplicate while waiting answers the schedule.
		expect((await publish(topic, { data: "later", delay_ms: 400, key: "d1" })).body).toEqual({
			id: res.body.id,
			deliver_at: res.body.deliver_at,
			duplicate: true,
		});
		// The object's own alarm brings it in, in real time.
		const msgs = await sock.waitForMessages(2, 5000);
		expect(msgs.map((m) => [m.seq, m.data, m.id])).toEqual([
			[1, "now", expect.any(String)],
			[2, "later", res.body.id],
		]);
		expect(msgs[1]?.ts).toBeGreaterThanOrEqual(res.body.deliver_at as number);
		expect((await stats(topic)).delayed).toBe(0);
		// A duplicate after it joined answers its seq.
		expect((await publish(topic, { data: "later", key: "d1" })).body).toEqual({
			id: res.body.id,
			seq: 2,
			duplicate: true,
		});
		sock.close();
	});

	it("one alarm serves many timers: it is armed at the earliest, and each joins in due order", async () => {
		const topic = uniqueTopic();
		const delays = [900, 300, 600, 300, 1200];
		const answers = [];
		for (const [i, delay_ms] of delays.entries()) {
			answers.push((await publish(topic, { data: i, delay_ms })).body);
		}
		const earliest = Math.min(...answers.map((a) => a.deliver_at as number));
		expect(await alarmOf(topic)).toBe(earliest);
		expect((await stats(topic)).delayed).toBe(5);
		await eventually(async () => (await stats(topic)).head_seq === 5, "all delayed messages joined", 8000);
		const page = await history(topic);
		// Ordered by due time; equal due times keep publish order.
		expect(page.messages.map((m) => m.data)).toEqual([1, 3, 2, 0, 4]);
		expectConsecutive(
			page.messages.map((m) => m.seq),
			1,
		);
	});

	it("survive an object restart and are not delivered twice when the alarm runs again", async () => {
		const topic = uniqueTopic();
		await publish(topic, { data: "persisted", delay_ms: 300 });
		await restartObject(topic);
		expect((await stats(topic)).delayed).toBe(1);
		await eventually(async () => (await stats(topic)).head_seq === 1, "delayed message joined after restart");
		// Alarms are at-least-once: running it again must not append anything.
		await runDurableObjectAlarm(topicStub(topic));
		await runDurableObjectAlarm(topicStub(topic));
		expect((await history(topic)).messages.map((m) => m.data)).toEqual(["persisted"]);
	});

	it("a timer whose handler throws is retried later without blocking the others", async () => {
		const topic = uniqueTopic();
		const stub = topicStub(topic);
		const failures = captureConsoleErrors(/^tidings: timer delayed\/broken failed \(attempt \d+\)$/);
		try {
			await publish(topic, { data: "good", delay_ms: 200 });
			const now = Date.now();
			await runInDurableObject(stub, (_i, state) => {
				state.storage.sql.exec(
					"INSERT INTO timers (kind, key, due_at, payload) VALUES ('delayed', 'broken', ?, 'not json')",
					now,
				);
			});
			await eventually(async () => (await stats(topic)).head_seq === 1, "good message joined");
			const broken = await runInDurableObject(stub, (_i, state) =>
				state.storage.sql
					.exec<{ attempts: number; due_at: number }>("SELECT attempts, due_at FROM timers WHERE key = 'broken'")
					.one(),
			);
			expect(broken.attempts).toBeGreaterThanOrEqual(1);
			expect(broken.due_at).toBeGreaterThan(now);
			// The failure is logged, with the error.
			expect(failures.caught[0]).toEqual(["tidings: timer delayed/broken failed (attempt 1)", expect.any(SyntaxError)]);
		} finally {
			// Left in place, the broken timer would fail again on this file's later alarms.
			await runInDurableObject(stub, (_i, state) => {
				state.storage.sql.exec("DELETE FROM timers WHERE key = 'broken'");
			});
			failures.restore();
		}
	});
});

describe("retention", () => {
	it("trims by count in the background, never on the publish path", async () => {
		const topic = uniqueTopic();
		expect((await configure(topic, { max_messages: 5 })).status).toBe(200);
		for (let i = 0; i < 12; i++) await publish(topic, { data: i });
		// Right after publishing, everything is still there.
		expect((await stats(topic)).retained).toBe(12);
		await eventually(async () => (await stats(topic)).retained === 5, "trim to 5");
		const s = await stats(topic);
		expect(s).toMatchObject({ head_seq: 12, first_seq: 8, retained: 5 });
		expect((await history(topic)).messages.map((m) => m.data)).toEqual([7, 8, 9, 10, 11]);
	});

	it("trims by age", async () => {
		const topic = uniqueTopic();
		await configure(topic, { max_age_ms: 1000 });
		await publish(topic, { data: "old" });
		await new Promise((r) => setTimeout(r, 500));
		await publish(topic, { data: "newer" });
		await eventually(async () => (await stats(topic)).first_seq === 2, "old message aged out", 5000);
		expect((await history(topic)).messages.map((m) => m.data)).toEqual(["newer"]);
		await eventually(async () => (await stats(topic)).retained === 0, "everything aged out", 5000);
	});

	it("never reuses a seq, even after trimming everything and restarting", async () => {
		const topic = uniqueTopic();
		await configure(topic, { max_age_ms: 1000 });
		for (let i = 0; i < 3; i++) await publish(topic, { data: i });
		await eventually(async () => (await stats(topic)).retained === 0, "log trimmed empty", 5000);
		await restartObject(topic);
		const s = await stats(topic);
		expect(s).toMatchObject({ head_seq: 3, first_seq: 4, retained: 0 });
		expect((await publish(topic, { data: "next" })).body.seq).toBe(4);
	});

	it("keeps settings and defaults", async () => {
		const topic = uniqueTopic();
		await publish(topic, { data: "creates the topic" });
		expect((await stats(topic)).settings).toEqual({
			max_messages: 10_000,
			max_age_ms: 7 * 24 * 3600 * 1000,
			max_sockets: 10_000,
		});
		const res = await configure(topic, { max_messages: 50 });
		expect(res.body).toEqual({
			topic,
			settings: { max_messages: 50, max_age_ms: 604_800_000, max_sockets: 10_000 },
		});
		await restartObject(topic);
		expect((await stats(topic)).settings.max_messages).toBe(50);
	});

	it("forgets idempotency keys after their window on the same timer", async () => {
		const topic = uniqueTopic();
		await publish(topic, { data: 1, key: "k1" });
		const stub = topicStub(topic);
		await runInDurableObject(stub, (_i, state) => {
			state.storage.sql.exec("UPDATE dedupe SET expires_at = ?", Date.now() - 1);
			state.storage.sql.exec("UPDATE timers SET due_at = ? WHERE kind = 'retention'", Date.now());
		});
		await runDurableObjectAlarm(stub);
		const left = await runInDurableObject(stub, (_i, state) =>
			state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM dedupe").one(),
		);
		expect(left.n).toBe(0);
	});
});

describe("restart", () => {
	it("continues seqs after the object restarts", async () => {
		const topic = uniqueTopic();
		for (let i = 0; i < 5; i++) await publish(topic, { data: i });
		await restartObject(topic);
		const res = await publish(topic, { messages: [{ data: "a" }, { data: "b" }] });
		expect((res.body.messages as Array<{ seq: number }>).map((m) => m.seq)).toEqual([6, 7]);
		expectConsecutive(
			(await history(topic)).messages.map((m) => m.seq),
			1,
		);
	});
});
