/**
 * One JSON frame per WebSocket message unless the socket asked for packing
 * (`?pack=1` or the `tidings.pack` subprotocol): a reader that does
 * `JSON.parse(event.data)` on every message never breaks.
 */
import { runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { SocketAttachment } from "../../src/durable/sockets/attachments.js";
import type { Topic } from "../../src/durable/topic.js";
import { LIVE_TAG } from "../../src/protocol/internal.js";
import { TUNING } from "../../src/protocol/limits.js";
import {
	call,
	expectConsecutive,
	type Frame,
	publish,
	TestSocket,
	topicStub,
	uniqueTopic,
	upgrade,
	whenClosed,
} from "./helpers.js";

/** Every WebSocket message after `ready`, each parsed as one JSON value: throws on one that is not. */
function parsedEach(sock: TestSocket): Frame[] {
	return sock.raw.slice(1).map((text) => JSON.parse(text) as Frame);
}

async function publishBatch(topic: string, n: number, tag = "m") {
	const res = await publish(topic, { messages: Array.from({ length: n }, (_, i) => ({ data: `${tag}${i}` })) });
	expect(res.status).toBe(201);
}

function offering(protocols: string) {
	return { headers: { "Sec-WebSocket-Protocol": protocols } };
}

describe("plain frames by default", () => {
	it("sends a batch of 20 publishes as 20 WebSocket messages, each one JSON frame", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic);
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		await publishBatch(topic, 20);
		await sock.waitForMessages(20);
		const each = parsedEach(sock);
		expect(each).toHaveLength(20);
		expect(each.every((f) => f.type === "message")).toBe(true);
		expectConsecutive(
			each.map((f) => f.message.seq),
			1,
		);
		sock.close();
	});

	it("replays a resume of many messages one frame per message, across replay pages, then goes on live", async () => {
		const topic = uniqueTopic();
		const n = TUNING.replayPageSize + 150;
		for (let i = 0; i < n; i += 100) await publishBatch(topic, Math.min(100, n - i));
		const sock = await TestSocket.open(topic, "from=3");
		await sock.waitForMessages(n - 3);
		await publishBatch(topic, 20, "live");
		await sock.waitForMessages(n - 3 + 20);
		const each = parsedEach(sock);
		expect(each).toHaveLength(n - 3 + 20);
		expectConsecutive(
			each.map((f) => f.message.seq),
			4,
		);
		sock.close();
	});

	it("sends one frame per message to a filtered socket, and from=earliest", async () => {
		const topic = uniqueTopic();
		await publishBatch(topic, 10, "old");
		const filter = encodeURIComponent(JSON.stringify({ kind: ["a"] }));
		const sock = await TestSocket.open(topic, `from=earliest&filter=${filter}`);
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		const res = await publish(topic, {
			messages: Array.from({ length: 20 }, (_, i) => ({ data: i, attributes: { kind: i % 2 ? "a" : "b" } })),
		});
		expect(res.status).toBe(201);
		await sock.waitForMessages(10);
		const each = parsedEach(sock);
		expect(each.map((f) => f.message.data)).toEqual([1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
		sock.close();
	});

	it("answers the plain subprotocol when offered, and does not pack", async () => {
		const topic = uniqueTopic();
		const res = await upgrade(topic, "", offering("tidings"));
		expect(res.headers.get("Sec-WebSocket-Protocol")).toBe("tidings");
		const sock = await TestSocket.accept(res);
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		await publishBatch(topic, 20);
		await sock.waitForMessages(20);
		expect(parsedEach(sock)).toHaveLength(20);
		sock.close();
	});

	it("for arbitrary batches, each message is exactly one frame and the seqs are the published ones", async () => {
		// Data with newlines, line separators and nested JSON: none may split or merge a frame.
		const data = fc.oneof(
			fc.jsonValue({ maxDepth: 2 }),
			fc.constantFrom("a\nb", "\r\n", "\u2028\u2029", '{"type":"message"}\n{"x":1}'),
		);
		await fc.assert(
			fc.asyncProperty(
				fc.array(fc.array(data, { minLength: 1, maxLength: 60 }), { minLength: 1, maxLength: 5 }),
				async (batches) => {
					const topic = uniqueTopic("prop");
					const sock = await TestSocket.open(topic);
					await sock.waitForFrame((f) => f.type === "ready", "ready");
					const published: number[] = [];
					for (const batch of batches) {
						const res = await publish(topic, { messages: batch.map((d) => ({ data: d })) });
						expect(res.status).toBe(201);
						for (const r of res.body.messages as { seq: number }[]) published.push(r.seq);
					}
					await sock.waitForMessages(published.length);
					const each = parsedEach(sock);
					expect(each.every((f) => f.type === "message")).toBe(true);
					expect(each.map((f) => f.message.seq)).toEqual(published);
					sock.close();
				},
			),
			{ numRuns: 15 },
		);
	});
});

describe("packed frames, asked for", () => {
	it("packs a burst into few WebSocket messages with ?pack=1, every line one frame", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic, "pack=1");
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		await publishBatch(topic, 20);
		const got = await sock.waitForMessages(20);
		expectConsecutive(
			got.map((m) => m.seq),
			1,
		);
		// ready, then the whole batch in one message.
		expect(sock.raw).toHaveLength(2);
		expect(sock.raw[1]?.split("\n").map((line) => JSON.parse(line).message.seq)).toEqual(got.map((m) => m.seq));
		sock.close();
	});

	it("packs with the tidings.pack subprotocol, which it answers, beside a bearer token", async () => {
		const topic = uniqueTopic();
		const res = await upgrade(topic, "", offering("tidings, tidings.pack, bearer.not-a-token-here"));
		expect(res.headers.get("Sec-WebSocket-Protocol")).toBe("tidings.pack");
		const sock = await TestSocket.accept(res);
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		await publishBatch(topic, 20);
		await sock.waitForMessages(20);
		expect(sock.raw).toHaveLength(2);
		sock.close();
	});

	it("packs a replay into messages of at most about packMaxChars", async () => {
		const topic = uniqueTopic();
		const n = TUNING.replayPageSize + 150;
		for (let i = 0; i < n; i += 100) await publishBatch(topic, Math.min(100, n - i));
		const sock = await TestSocket.open(topic, "from=0&pack=1");
		const got = await sock.waitForMessages(n);
		expectConsecutive(
			got.map((m) => m.seq),
			1,
		);
		const messages = sock.raw.slice(1);
		// One per replay page here: each page fits in one packed message.
		expect(messages.length).toBeLessThan(n / 100);
		for (const text of messages) expect(text.length).toBeLessThanOrEqual(TUNING.packMaxChars);
		sock.close();
	});

	it("keeps the choice in the socket's stored attachment, for live sockets and group members alike", async () => {
		const topic = uniqueTopic();
		expect((await call("PUT", `/v1/topics/${topic}/groups/g`, {})).status).toBe(201);
		const socks = [
			await TestSocket.open(topic, "pack=1"),
			await TestSocket.open(topic),
			await TestSocket.open(topic, "group=g&pack=1"),
			await TestSocket.open(topic, "group=g", offering("tidings.pack")),
			await TestSocket.open(topic, "group=g&pack=0"),
		];
		for (const s of socks) await s.waitForFrame((f) => f.type === "ready", "ready");
		const stored = await runInDurableObject(topicStub(topic), (_i, state) =>
			state.getWebSockets().map((ws) => {
				// What hibernation keeps: the runtime's copy, not the object's cache.
				const att = ws.deserializeAttachment() as SocketAttachment;
				return `${att.kind}:${att.pack === true}`;
			}),
		);
		expect(stored.sort()).toEqual(["live:false", "live:true", "member:false", "member:true", "member:true"]);
		expect(await runInDurableObject(topicStub(topic), (_i, state) => state.getWebSockets(LIVE_TAG).length)).toBe(2);
		for (const s of socks) s.close();
	});

	it("lets publishes that come while the object is busy share one message, and sends a lone publish without waiting for another", async () => {
		const topic = uniqueTopic();
		const raw = await runInDurableObject(topicStub(topic), async (instance: Topic, state) => {
			const sockets = await Promise.all(
				Array.from({ length: TUNING.coalesceMinSockets }, async () => {
					const res = await instance.fetch(
						new Request("http://tidings.test/ws?pack=1", { headers: { Upgrade: "websocket" } }),
					);
					const ws = res.webSocket as WebSocket;
					const got: string[] = [];
					ws.addEventListener("message", (e) => got.push(String(e.data)));
					ws.accept();
					return { ws, got };
				}),
			);
			// Three publishes in one turn: the object is busy from the first to the last.
			for (const n of [1, 2, 3]) instance.publish([{ data_json: String(n) }]);
			await new Promise((r) => setTimeout(r, 100));
			// One publish to an idle object goes out by itself.
			instance.publish([{ data_json: "4" }]);
			await new Promise((r) => setTimeout(r, 100));
			const closing = sockets.map((s) => whenClosed(s.ws));
			for (const w of state.getWebSockets()) w.close(1000, "done");
			await Promise.all(closing);
			return sockets.map((s) => s.got.slice(1).map((text) => text.split("\n").map((l) => JSON.parse(l).message.seq)));
		});
		for (const messages of raw) expect(messages).toEqual([[1, 2, 3], [4]]);
	});

	it("refuses a pack value other than 0 or 1 before upgrading", async () => {
		const res = await upgrade(uniqueTopic(), "pack=yes");
		expect(res.status).toBe(400);
		expect(await res.json()).toMatchObject({
			error: { code: "invalid_request", message: expect.stringMatching(/pack/) },
		});
	});
});
