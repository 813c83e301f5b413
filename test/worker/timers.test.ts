import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
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
		expect(await runDurableObjectAlarm(topicStub(topic))).toBe(true);
		expect(await runDurableObjectAlarm(topicStub(topic))).toBe(true);
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
			schema: null,
		});
		await restartObject(topic);
		expect((await stats(topic)).settings.max_messages).toBe(50);
	});

	it("remembers a publish key for 24 hours by the clock, not one minute more, and the retention timer forgets it", async () => {
		const topic = uniqueTopic();
		const stub = topicStub(topic);
		const t0 = Date.now();
		const MINUTE = 60_000;
		const HOUR = 60 * MINUTE;
		// Only Date is faked: the object runs in this isolate and reads the same clock; timers stay real.
		vi.useFakeTimers({ toFake: ["Date"], now: t0 });
		try {
			const first = await publish(topic, { data: 1, key: "k1" });
			expect(first.status).toBe(201);
			vi.setSystemTime(t0 + 23 * HOUR + 59 * MINUTE);
			const within = await publish(topic, { data: 2, key: "k1" });
			expect(within.body).toEqual({ id: first.body.id, seq: 1, duplicate: true });
			vi.setSystemTime(t0 + 24 * HOUR + MINUTE);
			const after = await publish(topic, { data: 3, key: "k1" });
			expect(after.status).toBe(201);
			expect(after.body).toEqual({ id: expect.any(String), seq: 2 });
			expect(after.body.id).not.toBe(first.body.id);
			// A second key, 30 h in: it outlives the first.
			vi.setSystemTime(t0 + 30 * HOUR);
			expect((await publish(topic, { data: 4, key: "k2" })).status).toBe(201);
			// The retention timer forgets keys past their window, and comes back for the one left.
			vi.setSystemTime(t0 + 48 * HOUR + 2 * MINUTE);
			await runInDurableObject(stub, (_i, state) => {
				// The timer is due by now by the faked clock; the real alarm would come in 48 h.
				expect(
					state.storage.sql.exec<{ due_at: number }>("SELECT due_at FROM timers WHERE kind = 'retention'").one().due_at,
				).toBeLessThanOrEqual(Date.now());
			});
			expect(await runDurableObjectAlarm(stub)).toBe(true);
			const left = await runInDurableObject(stub, (_i, state) => ({
				keys: state.storage.sql.exec<{ key: string }>("SELECT key FROM dedupe").toArray(),
				due: state.storage.sql.exec<{ due_at: number }>("SELECT due_at FROM timers WHERE kind = 'retention'").one()
					.due_at,
			}));
			expect(left.keys.map((k) => k.key)).toEqual(["k2"]);
			expect(left.due).toBe(t0 + 30 * HOUR + 24 * HOUR);
		} finally {
			vi.useRealTimers();
		}
	});
});

describe("per-run caps of the alarm", () => {
	it("runs at most 1,000 timers in one alarm, and the rest on the next alarm it arms at once", async () => {
		const topic = uniqueTopic();
		const stub = topicStub(topic);
		await publish(topic, { data: "wake" });
		const now = Date.now();
		const afterOne = await runInDurableObject(stub, async (instance, state) => {
			// A kind without a handler: running one only deletes its row.
			for (let i = 0; i < 1500; i++) {
				state.storage.sql.exec(
					"INSERT INTO timers (kind, key, due_at, payload) VALUES ('test-noop', ?, ?, NULL)",
					String(i),
					now - 1,
				);
			}
			await instance.alarm();
			return {
				left: state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM timers WHERE kind = 'test-noop'").one()
					.n,
				alarm: await state.storage.getAlarm(),
			};
		});
		expect(afterOne.left).toBe(500);
		expect(afterOne.alarm).not.toBeNull();
		expect(afterOne.alarm as number).toBeLessThanOrEqual(Date.now() + 1000);
		// The next alarm (armed by the first, not by the test) runs the rest.
		await eventually(
			async () =>
				(
					await runInDurableObject(stub, (_i, state) =>
						state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM timers WHERE kind = 'test-noop'").one(),
					)
				).n === 0,
			"the other 500 ran on the next alarm",
			5000,
		);
	});

	it("trims at most 5,000 rows in one run, and the rest on the next alarm", async () => {
		const topic = uniqueTopic();
		const stub = topicStub(topic);
		for (let i = 0; i < 60; i++) {
			const res = await publish(topic, { messages: Array.from({ length: 100 }, (_, j) => ({ data: i * 100 + j })) });
			expect(res.status).toBe(201);
		}
		expect((await configure(topic, { max_messages: 10 })).status).toBe(200);
		const afterOne = await runInDurableObject(stub, async (instance, state) => {
			// The trim is due in a second: run it now, from inside, so no other alarm runs in between.
			state.storage.sql.exec("UPDATE timers SET due_at = ? WHERE kind = 'retention'", Date.now() - 1);
			await instance.alarm();
			return {
				rows: state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM messages").one().n,
				due: state.storage.sql.exec<{ due_at: number }>("SELECT due_at FROM timers WHERE kind = 'retention'").one()
					.due_at,
			};
		});
		expect(afterOne.rows).toBe(6000 - 5000);
		expect(afterOne.due).toBeLessThanOrEqual(Date.now() + 1000);
		await eventually(async () => (await stats(topic)).retained === 10, "the rest trimmed on the next alarm", 5000);
		expect((await stats(topic)).first_seq).toBe(5991);
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
