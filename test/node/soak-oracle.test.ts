/**
 * The soak's oracle (test/soak/oracle.ts) on made-up histories: a consistent
 * one passes, and each way a guarantee can break is reported. This is how
 * the soak's checks are known to turn red; soak.test.ts runs them on a real
 * history.
 */
import { describe, expect, it } from "vitest";
import { closeCause, judge } from "../soak/oracle.js";
import { type GroupSettings, newRecords, type Records, type ServerView } from "../soak/records.js";

const settings: GroupSettings = { max_retries: 1, retry_delay_ms: 50, ack_timeout_ms: 3000 };
const T = 1_000_000;
const opts = { heartbeatMs: 1000 };

/**
 * Three messages: k1 and k2 handled by m1 on socket 1, k3 poison, failed
 * twice and dead-lettered; one subscriber saw all three.
 */
function history(): { rec: Records; server: ServerView } {
	const rec = newRecords();
	rec.startedAt = T;
	for (const [i, key] of ["k1", "k2", "k3"].entries())
		rec.sent.set(key, {
			key,
			via: "http-single",
			poison: key === "k3",
			attempts: 1,
			duplicateAnswers: 0,
			acked: { id: `id${i + 1}`, seq: i + 1, at: T },
		});
	rec.sockets.set(1, { id: 1, owner: "m1#1", role: "member", openedAt: T, closedAt: T + 5000, closedBy: "shutdown" });
	const deliver = (seq: number, attempt: number, at: number, outcome: "ok" | "failed", socket = 1, owner = "m1#1") => {
		rec.deliveries.push({ socket, owner, seq, attempt, id: `id${seq}`, at: T + at });
		rec.handlings.push({ owner, socket, seq, attempt, start: T + at, end: T + at + 5, outcome });
	};
	deliver(1, 1, 10, "ok");
	deliver(2, 1, 20, "ok");
	deliver(3, 1, 30, "failed");
	deliver(3, 2, 100, "failed");
	rec.subscribers.push({
		name: "s1",
		seen: [1, 2, 3].map((seq) => ({ seq, id: `id${seq}` })),
		gaps: [],
		restarts: 0,
	});
	const log = [1, 2, 3].map((seq) => ({
		id: `id${seq}`,
		seq,
		key: `k${seq}`,
		data: seq === 3 ? { k: "k3", poison: true } : { k: `k${seq}` },
	}));
	const server: ServerView = {
		log,
		headSeq: 3,
		firstSeq: 1,
		group: {
			cursor: 3,
			counts: { pending: 0, in_flight: 0, acked: 2, retried: 1, dead: 1, filtered: 0, expired: 0 },
		},
		dlq: [{ seq: 3, attempts: 2, last_error: "poison", message: { id: "id3", seq: 3 } }],
	};
	return { rec, server };
}

const violations = (h: { rec: Records; server: ServerView }) => judge(h.rec, h.server, settings, opts).violations;

it("finds nothing wrong with a consistent history", () => {
	const h = history();
	const { violations, counts } = judge(h.rec, h.server, settings, opts);
	expect(violations).toEqual([]);
	expect(counts.redeliveries.get("nack")).toBe(1);
	expect(counts.duplicates.size).toBe(0);
});

describe("publishes", () => {
	it("an acknowledged publish missing from the log", () => {
		const h = history();
		h.server.log[1] = { id: "idX", seq: 2, key: "kX", data: { k: "kX" } };
		expect(violations(h)).toEqual(
			expect.arrayContaining([
				expect.stringMatching(/^acknowledged but not in the log: k2/),
				expect.stringMatching(/^stored but never sent: key kX/),
			]),
		);
	});

	it("a key stored twice", () => {
		const h = history();
		h.server.log.push({ id: "id4", seq: 4, key: "k1", data: { k: "k1" } });
		h.server.headSeq = 4;
		expect(violations(h)).toContainEqual(expect.stringMatching(/^stored more than once: key k1 at seqs 1, 4/));
	});

	it("an acknowledgement naming another seq than the log's", () => {
		const h = history();
		(h.rec.sent.get("k2") as { acked: { seq: number } }).acked.seq = 1;
		expect(violations(h)).toContainEqual(expect.stringMatching(/^acknowledged as another message: k2/));
	});
});

describe("the group", () => {
	it("a message nobody handled and nobody dead-lettered", () => {
		const h = history();
		h.rec.handlings = h.rec.handlings.filter((r) => r.seq !== 2);
		expect(violations(h)).toContainEqual(expect.stringMatching(/^lost: neither handled nor dead-lettered: seq 2/));
	});

	it("a poison message that is not in the DLQ, and counts that do not add up", () => {
		const h = history();
		h.server.dlq = [];
		expect(violations(h)).toEqual(
			expect.arrayContaining([
				expect.stringMatching(/^poison message not dead-lettered: seq 3/),
				expect.stringMatching(/^dead count disagrees with the DLQ/),
			]),
		);
	});

	it("a healthy message dead-lettered before its attempts were spent", () => {
		const h = history();
		h.rec.handlings = h.rec.handlings.filter((r) => r.seq !== 2);
		h.server.dlq.push({ seq: 2, attempts: 1, last_error: "consumer disconnected", message: { id: "id2", seq: 2 } });
		expect(violations(h)).toContainEqual(expect.stringMatching(/^dead-lettered without cause: seq 2/));
	});

	it("a delivery past max_retries + 1", () => {
		const h = history();
		h.rec.deliveries.push({ socket: 1, owner: "m1#1", seq: 3, attempt: 3, id: "id3", at: T + 200 });
		expect(violations(h)).toContainEqual(expect.stringMatching(/^too many attempts: seq 3 delivered as attempt 3/));
	});

	it("a group that still holds work, or settled a message twice", () => {
		const h = history();
		h.server.group.counts.in_flight = 1;
		h.server.group.counts.acked = 3;
		expect(violations(h)).toEqual(
			expect.arrayContaining([
				expect.stringMatching(/^group not drained/),
				expect.stringMatching(/^group settled a message other than once/),
			]),
		);
	});
});

describe("redeliveries", () => {
	/** Seq 1 delivered again to m2 at +1000 ms. */
	function redelivered() {
		const h = history();
		h.rec.sockets.set(2, { id: 2, owner: "m2#1", role: "member", openedAt: T });
		h.rec.deliveries.push({ socket: 2, owner: "m2#1", seq: 1, attempt: 2, id: "id1", at: T + 1000 });
		h.rec.handlings.push({
			owner: "m2#1",
			socket: 2,
			seq: 1,
			attempt: 2,
			start: T + 1000,
			end: T + 1005,
			outcome: "ok",
		});
		return h;
	}

	it("while the socket that had it is open, before the ack timeout: unexplained", () => {
		expect(violations(redelivered())).toContainEqual(expect.stringMatching(/^unexplained redelivery: seq 1/));
	});

	it("after that socket closed with no fault near: unexplained", () => {
		const h = redelivered();
		Object.assign(h.rec.sockets.get(1) as object, { closedAt: T + 500, closedBy: "remote", code: 1006 });
		expect(violations(h)).toContainEqual(expect.stringMatching(/^redelivered after an unexplained disconnect: seq 1/));
	});

	it("after a cut closed that socket: a duplicate, counted with its cause", () => {
		const h = redelivered();
		Object.assign(h.rec.sockets.get(1) as object, { closedAt: T + 500, closedBy: "remote", code: 1006 });
		h.rec.faults.push({ kind: "cut", at: T + 490, until: T + 490 });
		const { violations, counts } = judge(h.rec, h.server, settings, opts);
		expect(violations).toEqual([]);
		expect(counts.duplicates.get("cut")).toBe(1);
	});

	it("after the ack timeout, the socket still open: explained", () => {
		const h = redelivered();
		const d = h.rec.deliveries.at(-1) as { at: number };
		d.at = T + 10 + settings.ack_timeout_ms;
		const { violations, counts } = judge(h.rec, h.server, settings, opts);
		expect(violations).toEqual([]);
		expect(counts.duplicates.get("ack timeout")).toBe(1);
	});

	it("after the ack timeout counted from a blackhole that held the first delivery back: explained", () => {
		const h = redelivered();
		h.rec.faults.push({ kind: "blackhole", at: T - 2500, until: T });
		const d = h.rec.deliveries.at(-1) as { at: number };
		d.at = T + 600; // 600 ms after the first arrived, 3,100 ms after the blackhole began
		expect(violations(h)).toEqual([]);
		h.rec.faults[0] = { kind: "blackhole", at: T - 1000, until: T };
		expect(violations(h)).toContainEqual(expect.stringMatching(/^unexplained redelivery: seq 1/));
	});

	it("held back by one blackhole, the first attempt arriving just after the second: explained", () => {
		const h = redelivered();
		// Socket 1 gave up during the blackhole; both deliveries arrive as it lifts, attempt 2 first.
		h.rec.faults.push({ kind: "blackhole", at: T + 2000, until: T + 4000 });
		Object.assign(h.rec.sockets.get(1) as object, { closedAt: T + 3500, closedBy: "heartbeat", code: 1006 });
		const [first, second] = [h.rec.deliveries[0], h.rec.deliveries.at(-1)] as { at: number }[];
		(second as { at: number }).at = T + 4001;
		(first as { at: number }).at = T + 4002;
		(h.rec.handlings[0] as { start: number; end: number }).start = T + 4002;
		(h.rec.handlings[0] as { start: number; end: number }).end = T + 4007;
		expect(violations(h)).toEqual([]);
		// The same arrivals with no blackhole to hold them: the attempt count went down.
		h.rec.faults = [{ kind: "cut", at: T + 3490, until: T + 3490 }];
		expect(violations(h)).toContainEqual(expect.stringMatching(/^attempt not counted: seq 1/));
	});

	it("with an attempt number that did not go up", () => {
		const h = redelivered();
		(h.rec.deliveries.at(-1) as { attempt: number }).attempt = 1;
		h.rec.faults.push({ kind: "kill", at: T + 400, until: T + 2000 });
		Object.assign(h.rec.sockets.get(1) as object, { closedAt: T + 500, closedBy: "remote", code: 1006 });
		expect(violations(h)).toContainEqual(expect.stringMatching(/^attempt not counted: seq 1/));
	});

	it("a close is put down to the latest fault whose window holds it", () => {
		const socket = {
			id: 9,
			owner: "m1#1",
			role: "member" as const,
			openedAt: T,
			closedAt: T + 3000,
			closedBy: "remote" as const,
		};
		const faults = [
			{ kind: "blackhole" as const, at: T, until: T + 1000 },
			{ kind: "kill" as const, at: T + 2900, until: T + 5000 },
		];
		expect(closeCause(socket, faults, 1000)).toBe("kill");
		expect(closeCause({ ...socket, closedBy: "local" }, [], 1000)).toBe("heartbeat timeout");
		expect(closeCause(socket, [], 1000)).toBeUndefined();
	});
});

describe("live subscribers", () => {
	it("a missed seq, a repeated seq, another message at a seq, and a subscriber short of the head", () => {
		const h = history();
		h.rec.subscribers.push(
			{ name: "s2", seen: [1, 3].map((seq) => ({ seq, id: `id${seq}` })), gaps: [], restarts: 0 },
			{ name: "s3", seen: [1, 2, 2, 3].map((seq) => ({ seq, id: `id${seq}` })), gaps: [], restarts: 0 },
			{ name: "s4", seen: [{ seq: 1, id: "id2" }], gaps: [], restarts: 0 },
		);
		expect(violations(h)).toEqual([
			"live: missed messages: s2: seqs 2…2 (saw 3 after 1)",
			"live: repeated or out of order: s3: seq 2 after 2",
			"live: another message: s4: seq 1 id id2, log id id1",
			"live: did not reach the head: s4: last seq 1, head_seq 3",
		]);
	});

	it("a gap over messages the log still holds", () => {
		const h = history();
		h.rec.subscribers.push({ name: "s2", seen: [{ seq: 3, id: "id3" }], gaps: [{ from: 1, to: 2 }], restarts: 0 });
		expect(violations(h)).toEqual(["gap over retained messages: s2: gap 1…2, first_seq 1"]);
	});
});
