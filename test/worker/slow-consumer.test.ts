/**
 * Flow control of live sockets: a socket that confirms what it read
 * (`received` frames) and falls more than LIMITS.liveUnreadMaxChars behind is
 * closed with 4408 and can resume from its last seq; one that keeps
 * confirming gets everything; a replay waits for the reader instead.
 */
import { describe, expect, it } from "vitest";
import { TopicLog } from "../../src/durable/log/topic-log.js";
import { CLOSE_CODES } from "../../src/protocol/errors.js";
import { LIMITS, TUNING } from "../../src/protocol/limits.js";
import { captureConsoleErrors, expectConsecutive, publish, TestSocket, uniqueTopic, withLimits } from "./helpers.js";

const CHUNK = "x".repeat(120 * 1024);
/** Batches of 8 messages of 120 KiB (under the 1 MiB request limit) until `chars` are published. */
async function publishChars(topic: string, chars: number) {
	let seq = 0;
	for (let done = 0; done < chars; done += 8 * CHUNK.length) {
		const res = await publish(topic, { messages: Array.from({ length: 8 }, () => ({ data: CHUNK })) });
		expect(res.status).toBe(201);
		seq += 8;
	}
	return seq;
}
const lastSeqOf = (sock: TestSocket) => (sock.messages().at(-1)?.seq as number | undefined) ?? 0;

describe("slow consumers", () => {
	it("closes a live socket that stopped confirming once it is over the bound, with 4408; it resumes from its last seq", async () => {
		const topic = uniqueTopic();
		const slow = await TestSocket.open(topic);
		await slow.waitForFrame((f) => f.type === "ready", "ready");
		slow.send({ type: "received", seq: 0 }); // confirms once, then never again
		await new Promise((r) => setTimeout(r, 50));
		const total = await publishChars(topic, LIMITS.liveUnreadMaxChars + 2 * 8 * CHUNK.length);
		await slow.waitFor(() => slow.closed, "the close");
		expect(slow.closed?.code).toBe(CLOSE_CODES.slowConsumer);
		const had = lastSeqOf(slow);
		expect(had).toBeGreaterThan(0);
		expect(had).toBeLessThan(total);
		const resumed = await TestSocket.open(topic, `from=${had}`);
		const rest = await resumed.waitForMessages(total - had);
		expectConsecutive(
			rest.map((m) => m.seq),
			had + 1,
		);
		resumed.close();
	});

	it("keeps a socket that confirms as it reads, whatever the volume, and leaves sockets that never confirm alone", async () => {
		const topic = uniqueTopic();
		const reader = await TestSocket.open(topic);
		const plain = await TestSocket.open(topic);
		await reader.waitForFrame((f) => f.type === "ready", "ready");
		await plain.waitForFrame((f) => f.type === "ready", "ready");
		reader.send({ type: "received", seq: 0 });
		const timer = setInterval(() => reader.send({ type: "received", seq: lastSeqOf(reader) }), 10);
		try {
			const total = await publishChars(topic, 2 * LIMITS.liveUnreadMaxChars);
			await reader.waitForMessages(total, 30_000);
			await plain.waitForMessages(total, 30_000);
			expect(reader.closed).toBeUndefined();
			expect(plain.closed).toBeUndefined();
		} finally {
			clearInterval(timer);
			reader.close();
			plain.close();
		}
	});

	it("a replay waits for a reader that confirms, instead of flooding it, and goes on as it confirms", async () => {
		const topic = uniqueTopic();
		const total = await publishChars(topic, LIMITS.liveUnreadMaxChars);
		// Pages of one message: the replay starts before the reader's first `received` frame is in, and on a
		// loaded machine 1 MiB pages could send everything before it came (nothing to wait for then).
		const sock = await withLimits(TUNING, { replayPageMaxBytes: 130 * 1024 }, async () => {
			const s = await TestSocket.open(topic, "from=earliest");
			s.send({ type: "received", seq: 0 });
			await new Promise((r) => setTimeout(r, 500));
			return s;
		});
		const first = sock.messages().length;
		expect(first).toBeLessThan(total); // paused at half the bound
		expect(sock.closed).toBeUndefined();
		const timer = setInterval(() => sock.send({ type: "received", seq: lastSeqOf(sock) }), 10);
		try {
			const all = await sock.waitForMessages(total, 30_000);
			expectConsecutive(
				all.map((m) => m.seq),
				1,
			);
			expect(sock.closed).toBeUndefined();
		} finally {
			clearInterval(timer);
			sock.close();
		}
	});

	it("a replay with no confirmation for its stall window closes with 4408, not sooner, and resumes from its last seq", async () => {
		const topic = uniqueTopic();
		for (let i = 0; i < 3; i++) {
			const res = await publish(topic, {
				messages: Array.from({ length: 100 }, (_, j) => ({ data: `${i * 100 + j}`.padEnd(500, ".") })),
			});
			expect(res.status).toBe(201);
		}
		// A small bound (a message is ~560 characters), small pages and a 400 ms stall window (30 s in production).
		await withLimits(LIMITS, { liveUnreadMaxChars: 20_000, liveUnreadStallMs: 400 }, () =>
			// Pages of one message: the replay starts before the reader's `received` frame is in, and must not end first.
			withLimits(TUNING, { replayPageSize: 1 }, async () => {
				const sock = await TestSocket.open(topic, "from=0");
				sock.send({ type: "received", seq: 0 }); // confirms once, then never again
				const confirmedAt = Date.now();
				await sock.waitFor(() => sock.closed, "the close", 5000);
				const waited = Date.now() - confirmedAt;
				expect(sock.closed?.code).toBe(CLOSE_CODES.slowConsumer);
				expect(waited).toBeGreaterThanOrEqual(380);
				expect(waited).toBeLessThan(2500);
				const had = lastSeqOf(sock);
				expect(had).toBeGreaterThan(0);
				expect(had).toBeLessThan(300);
				expectConsecutive(
					sock.messages().map((m) => m.seq),
					1,
				);
			}),
		);
		const resumed = await TestSocket.open(topic, `from=${0}`);
		const all = await resumed.waitForMessages(300);
		expectConsecutive(
			all.map((m) => m.seq),
			1,
		);
		resumed.close();
	});

	it("a replay page that fails to read closes with 1011 after what it sent, and the stream resumes from there", async () => {
		const topic = uniqueTopic();
		for (let i = 0; i < 3; i++) {
			const res = await publish(topic, { messages: Array.from({ length: 10 }, (_, j) => ({ data: i * 10 + j })) });
			expect(res.status).toBe(201);
		}
		const original = TopicLog.prototype.readBounded;
		let pages = 0;
		const failures = captureConsoleErrors(/^tidings: replay failed$/);
		try {
			await withLimits(TUNING, { replayPageSize: 10 }, async () => {
				// The object's log is this module's class (one isolate): its second replay page fails to read.
				TopicLog.prototype.readBounded = function (this: TopicLog, ...args: Parameters<TopicLog["readBounded"]>) {
					if (args[1] === 10 && ++pages === 2) throw new Error("disk read failed (test)");
					return original.apply(this, args);
				};
				const sock = await TestSocket.open(topic, "from=0");
				await sock.waitFor(() => sock.closed, "the close", 5000);
				expect(sock.closed?.code).toBe(1011);
				expect(sock.messages().map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
			});
		} finally {
			TopicLog.prototype.readBounded = original;
			failures.restore();
		}
		expect(failures.caught).toHaveLength(1);
		const resumed = await TestSocket.open(topic, "from=10");
		const rest = await resumed.waitForMessages(20);
		expectConsecutive(
			rest.map((m) => m.seq),
			11,
		);
		resumed.close();
	});

	it("refuses `received` on a member socket", async () => {
		const topic = uniqueTopic();
		await (await fetchGroup(topic)).arrayBuffer();
		const member = await TestSocket.open(topic, "group=g");
		await member.waitForFrame((f) => f.type === "ready", "ready");
		member.send({ type: "received", seq: 1 });
		const err = await member.waitForFrame((f) => f.type === "error", "error");
		expect(err.code).toBe("invalid_frame");
		member.close();
	});
});

function fetchGroup(topic: string) {
	return import("./helpers.js").then(({ api }) =>
		api(`/v1/topics/${topic}/groups/g`, {
			method: "PUT",
			headers: { "content-type": "application/json" },
			body: "{}",
		}),
	);
}
