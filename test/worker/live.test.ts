import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { Topic } from "../../src/durable/topic.js";
import { TUNING } from "../../src/protocol/limits.js";
import {
	api,
	call,
	eventually,
	expectConsecutive,
	history,
	publish,
	restartObject,
	stats,
	TestSocket,
	topicStub,
	uniqueTopic,
	whenClosed,
} from "./helpers.js";

async function publishMany(topic: string, n: number, tag = "m") {
	for (let i = 0; i < n; i += 100) {
		const size = Math.min(100, n - i);
		const res = await publish(topic, {
			messages: Array.from({ length: size }, (_, j) => ({ data: `${tag}${i + j}` })),
		});
		expect(res.status).toBe(201);
	}
}

describe("live streams", () => {
	it("sends ready first, then live messages from latest", async () => {
		const topic = uniqueTopic();
		await publish(topic, { data: "old" });
		const sock = await TestSocket.open(topic);
		const ready = await sock.waitForFrame((f) => f.type === "ready", "ready");
		expect(sock.frames[0]).toEqual({ type: "ready", topic, head_seq: 1, from: 1 });
		expect(ready).toBe(sock.frames[0]);
		await publish(topic, { data: "new" });
		const [m] = await sock.waitForMessages(1);
		expect(m).toMatchObject({ seq: 2, data: "new", topic });
		expect(sock.messages()).toHaveLength(1);
		sock.close();
	});

	it("replays from earliest, then continues live", async () => {
		const topic = uniqueTopic();
		await publishMany(topic, 5);
		const sock = await TestSocket.open(topic, "from=earliest");
		await sock.waitForMessages(5);
		await publish(topic, { data: "live" });
		const all = await sock.waitForMessages(6);
		expectConsecutive(
			all.map((m) => m.seq),
			1,
		);
		expect(sock.frames[0]).toMatchObject({ type: "ready", from: 0 });
		sock.close();
	});

	it("resumes after a seq with no gap and no duplicate during a publish storm", async () => {
		const topic = uniqueTopic();
		await publishMany(topic, 1200, "pre");
		// Publishers keep going while subscribers connect from many resume points.
		let storming = true;
		const storm = (async () => {
			let i = 0;
			while (storming) {
				await publish(topic, { messages: Array.from({ length: 20 }, () => ({ data: `storm${i++}` })) });
			}
		})();
		const resumePoints = [0, 1, 499, 500, 501, 1000, 1199, 1200];
		const sockets = await Promise.all(resumePoints.map((from) => TestSocket.open(topic, `from=${from}`)));
		await new Promise((r) => setTimeout(r, 300));
		storming = false;
		await storm;
		const head = (await stats(topic)).head_seq;
		expect(head).toBeGreaterThan(1200);
		for (const [i, sock] of sockets.entries()) {
			const from = resumePoints[i] as number;
			const got = await sock.waitForMessages(head - from, 20_000);
			expectConsecutive(
				got.map((m) => m.seq),
				from + 1,
			);
			expect(sock.frames.filter((f) => f.type === "gap")).toEqual([]);
			sock.close();
		}
	});

	it("starts sockets that join during a publish storm exactly after their ready frame", async () => {
		const topic = uniqueTopic();
		let storming = true;
		const storm = (async () => {
			let i = 0;
			while (storming) await publish(topic, { messages: Array.from({ length: 5 }, () => ({ data: i++ })) });
		})();
		const joined: TestSocket[] = [];
		for (let i = 0; i < 10; i++) {
			joined.push(
				await TestSocket.open(topic, i % 2 === 0 ? "" : `from=${Math.max(0, (await stats(topic)).head_seq - 3)}`),
			);
			await new Promise((r) => setTimeout(r, 10));
		}
		storming = false;
		await storm;
		const head = (await stats(topic)).head_seq;
		for (const sock of joined) {
			const ready = await sock.waitForFrame((f) => f.type === "ready", "ready");
			const got = await sock.waitForMessages(head - ready.from);
			expectConsecutive(
				got.map((m) => m.seq),
				ready.from + 1,
			);
			sock.close();
		}
	});

	it("never sends a socket pending messages from before its start", async () => {
		const topic = uniqueTopic();
		const lines = await runInDurableObject(topicStub(topic), async (instance: Topic, state) => {
			const open = async () => {
				// Packing sockets: only they make fan-out wait for company.
				const res = await instance.fetch(
					new Request("http://tidings.test/ws?pack=1", { headers: { Upgrade: "websocket" } }),
				);
				const ws = res.webSocket as WebSocket;
				ws.accept();
				return ws;
			};
			// Enough packing subscribers that fan-out coalesces.
			const others = await Promise.all(Array.from({ length: TUNING.coalesceMinSockets }, open));
			instance.publish([{ data_json: "1" }]);
			// Within the coalescing window: this one waits for the next flush.
			instance.publish([{ data_json: "2" }]);
			const ws = await open();
			const got: string[] = [];
			ws.addEventListener("message", (e) => {
				got.push(...String(e.data).split("\n"));
			});
			instance.publish([{ data_json: "3" }]);
			await new Promise((r) => setTimeout(r, 100));
			// Closed from the object's side, the close handshakes done before this request ends. (Closing
			// these in-process client ends first makes workerd log "WebSocket peer disconnected".)
			const closing = [ws, ...others].map(whenClosed);
			for (const w of state.getWebSockets()) w.close(1000, "done");
			await Promise.all(closing);
			return got.map((l) => JSON.parse(l) as { type: string; from?: number; message?: { seq: number } });
		});
		expect(lines[0]).toMatchObject({ type: "ready", head_seq: 2, from: 2 });
		expect(lines.slice(1).map((f) => f.message?.seq)).toEqual([3]);
	});

	it("packs a burst into few WebSocket messages, one frame per line, for a socket that asks", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic, "pack=1");
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		await publish(topic, { messages: Array.from({ length: 100 }, (_, i) => ({ data: i })) });
		const got = await sock.waitForMessages(100);
		expectConsecutive(
			got.map((m) => m.seq),
			1,
		);
		// ready, then the whole batch in one message.
		expect(sock.raw).toHaveLength(2);
		expect(sock.raw[1]?.split("\n")).toHaveLength(100);
		sock.close();
	});

	it("sends a gap frame when the resume point is older than the log", async () => {
		const topic = uniqueTopic();
		await call("PUT", `/v1/topics/${topic}`, { max_messages: 10 });
		await publishMany(topic, 30);
		// Retention trims in the background, on the alarm.
		await eventually(async () => (await stats(topic)).first_seq === 21, "retention trim");
		const sock = await TestSocket.open(topic, "from=5");
		const msgs = await sock.waitForMessages(10);
		expect(sock.frames.slice(0, 2)).toEqual([
			{ type: "ready", topic, head_seq: 30, from: 5 },
			{ type: "gap", from: 6, to: 20 },
		]);
		expectConsecutive(
			msgs.map((m) => m.seq),
			21,
		);
		sock.close();
	});

	it("treats a resume point beyond the head as the head", async () => {
		const topic = uniqueTopic();
		await publishMany(topic, 3);
		const sock = await TestSocket.open(topic, "from=999");
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		expect(sock.frames[0]).toMatchObject({ head_seq: 3, from: 3 });
		await publish(topic, { data: "x" });
		expect((await sock.waitForMessages(1))[0]).toMatchObject({ seq: 4 });
		sock.close();
	});

	it("fans out to every subscriber in seq order", async () => {
		const topic = uniqueTopic();
		// Created first, so its stats can count the subscribers before the first publish.
		expect((await call("PUT", `/v1/topics/${topic}`, { max_sockets: 10_000 })).status).toBe(200);
		const sockets = await Promise.all(Array.from({ length: 20 }, () => TestSocket.open(topic)));
		await Promise.all(sockets.map((s) => s.waitForFrame((f) => f.type === "ready", "ready")));
		expect((await stats(topic)).subscribers).toBe(20);
		await publishMany(topic, 50);
		for (const s of sockets) {
			expectConsecutive(
				(await s.waitForMessages(50)).map((m) => m.seq),
				1,
			);
			s.close();
		}
	});

	it("keeps streaming to a socket across an object restart by resuming", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic);
		await publishMany(topic, 3);
		await sock.waitForMessages(3);
		await restartObject(topic);
		await sock.waitFor(() => sock.closed, "close after restart");
		await publishMany(topic, 2, "after");
		const resumed = await TestSocket.open(topic, "from=3");
		const got = await resumed.waitForMessages(2);
		expect(got.map((m) => [m.seq, m.data])).toEqual([
			[4, "after0"],
			[5, "after1"],
		]);
		resumed.close();
	});

	it("delivers traceparent and baggage on message frames", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic);
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
		await publish(topic, { data: 1 }, { traceparent, baggage: "a=1" });
		const [m] = await sock.waitForMessages(1);
		expect(m).toMatchObject({ traceparent, baggage: "a=1" });
		sock.close();
	});
});

describe("publish over the socket", () => {
	it("answers published with the client's ref", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic);
		sock.send({ type: "publish", ref: "r1", data: { x: 1 }, attributes: { a: "b" } });
		const answer = await sock.waitForFrame((f) => f.type === "published", "published");
		expect(answer).toEqual({ type: "published", ref: "r1", id: expect.any(String), seq: 1 });
		// The publisher is also a subscriber and sees its own message.
		expect((await sock.waitForMessages(1))[0]).toMatchObject({ seq: 1, data: { x: 1 }, attributes: { a: "b" } });
		sock.send({ type: "publish", ref: "r2", messages: [{ data: 1 }, { data: 2, key: "k" }] });
		const batch = await sock.waitForFrame((f) => f.ref === "r2", "batch published");
		expect(batch).toEqual({
			type: "published",
			ref: "r2",
			messages: [
				{ id: expect.any(String), seq: 2 },
				{ id: expect.any(String), seq: 3 },
			],
		});
		sock.send({ type: "publish", ref: "r3", data: 2, key: "k" });
		expect(await sock.waitForFrame((f) => f.ref === "r3", "dup")).toMatchObject({ seq: 3, duplicate: true });
		sock.send({ type: "publish", ref: "r4", data: 9, delay_ms: 60_000 });
		expect(await sock.waitForFrame((f) => f.ref === "r4", "delayed")).toEqual({
			type: "published",
			ref: "r4",
			id: expect.any(String),
			deliver_at: expect.any(Number),
		});
		sock.close();
	});

	it("answers pong to ping by the runtime's auto-response, without waking the object", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic);
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		sock.send("ping");
		await sock.waitFor(() => sock.raw.includes("pong"), "pong");
		// The runtime stamps a socket when it answered for the object.
		const stamped = await runInDurableObject(topicStub(topic), (_i, state) =>
			state.getWebSockets().map((ws) => state.getWebSocketAutoResponseTimestamp(ws)),
		);
		expect(stamped).toHaveLength(1);
		expect(stamped[0]).toBeInstanceOf(Date);
		sock.close();
	});

	it("answers malformed and unknown frames with an error and stays usable", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic);
		const bad: Array<[unknown, string]> = [
			["{not json", "invalid_frame"],
			["[1,2]", "invalid_frame"],
			["null", "invalid_frame"],
			[{ type: "subscribe" }, "unknown_frame"],
			[{ type: "publish", ref: "r" }, "invalid_request"],
			[{ type: "publish", ref: "r", data: 1, extra: true }, "invalid_request"],
			[{ type: "publish", data: 1 }, "invalid_request"],
			[{ type: "publish", ref: "big", data: "x".repeat(140 * 1024) }, "payload_too_large"],
			[{ type: "publish", ref: "many", messages: Array.from({ length: 101 }, () => ({ data: 1 })) }, "limit_exceeded"],
			[
				{ type: "publish", ref: "huge", messages: Array.from({ length: 9 }, () => ({ data: "z".repeat(120 * 1024) })) },
				"payload_too_large",
			],
		];
		for (const [frame, code] of bad) {
			const before = sock.frames.length;
			sock.send(frame);
			const err = await sock.waitFor(() => sock.frames.slice(before).find((f) => f.type === "error"), `error ${code}`);
			expect(err.code).toBe(code);
			expect(err.message).toEqual(expect.any(String));
		}
		expect(sock.frames.find((f) => f.ref === "big" && f.type === "error")).toBeDefined();
		sock.ws.send(new Uint8Array([1, 2, 3]));
		await sock.waitFor(
			() => sock.frames.filter((f) => f.type === "error").length === bad.length + 1,
			"binary frame error",
		);
		// Still usable, and nothing was stored by the rejected frames.
		expect((await stats(topic)).head_seq).toBe(0);
		sock.send({ type: "publish", ref: "ok", data: "fine" });
		expect(await sock.waitForFrame((f) => f.ref === "ok" && f.type === "published", "ok")).toMatchObject({ seq: 1 });
		sock.close();
	});
});

describe("filters on live subscriptions", () => {
	it("delivers only matching messages", async () => {
		const topic = uniqueTopic();
		const filter = encodeURIComponent(
			JSON.stringify({ kind: ["invoice", { prefix: "refund." }], amount: [{ numeric: [">=", 100] }] }),
		);
		const sock = await TestSocket.open(topic, `filter=${filter}`);
		const all = await TestSocket.open(topic);
		await publish(topic, {
			messages: [
				{ data: 1, attributes: { kind: "invoice", amount: 150 } },
				{ data: 2, attributes: { kind: "invoice", amount: 50 } },
				{ data: 3, attributes: { kind: "refund.partial", amount: 100 } },
				{ data: 4, attributes: { kind: "order", amount: 1000 } },
				{ data: 5 },
			],
		});
		await all.waitForMessages(5);
		await new Promise((r) => setTimeout(r, 50));
		expect(sock.messages().map((m) => m.data)).toEqual([1, 3]);
		// Replay applies the filter too.
		const replay = await TestSocket.open(topic, `from=0&filter=${filter}`);
		await replay.waitForMessages(2);
		await new Promise((r) => setTimeout(r, 50));
		expect(replay.messages().map((m) => m.data)).toEqual([1, 3]);
		for (const s of [sock, all, replay]) s.close();
	});

	it("rejects an invalid filter before upgrading", async () => {
		const topic = uniqueTopic();
		for (const f of ["{", "[]", '{"a":[]}', '{"a":{"numeric":["~",1]}}', "{}"]) {
			const res = await api(`/v1/topics/${topic}/ws?filter=${encodeURIComponent(f)}`, {
				headers: { Upgrade: "websocket" },
			});
			expect(res.status, f).toBe(400);
			expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_request");
		}
	});
});

describe("history", () => {
	it("pages with after and limit", async () => {
		const topic = uniqueTopic();
		await publishMany(topic, 250);
		let after = 0;
		const seen: number[] = [];
		for (;;) {
			const page = await history(topic, `after=${after}&limit=100`);
			if (page.messages.length === 0) break;
			seen.push(...page.messages.map((m) => m.seq));
			after = page.next_after;
		}
		expectConsecutive(seen, 1);
		expect(seen).toHaveLength(250);
		const last = await history(topic, "after=250");
		expect(last).toMatchObject({ messages: [], next_after: 250, head_seq: 250, first_seq: 1 });
	});
});
