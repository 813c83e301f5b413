/**
 * The Durable Streams door (`/v1/stream/:name`) on the same log as the topic:
 * one log, two doors; rights; bad input stores nothing; expiry on the one
 * scheduler; waiting readers that survive the object's eviction. The
 * protocol itself is checked by its conformance suite (test/node).
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { Topic } from "../../src/durable/topic.js";
import { CLOSE_CODES } from "../../src/protocol/errors.js";
import type { Right } from "../../src/protocol/rights.js";
import { formatOffset, parseOffset, WAITER_TAG } from "../../src/protocol/streams.js";
import { mintToken } from "../../src/tokens/index.js";
import { app } from "../../src/worker/app.js";
import { isBad, parseProducer, parseUint } from "../../src/worker/streams/request.js";
import {
	api,
	call,
	createGroup,
	eventually,
	groupPath,
	history,
	publish,
	restartObject,
	TestSocket,
	topicStub,
	uniqueTopic,
} from "./helpers.js";

const path = (name: string, query = "") => `/v1/stream/${name}${query}`;

function put(name: string, contentType: string, body?: BodyInit, headers: Record<string, string> = {}) {
	return api(path(name), {
		method: "PUT",
		headers: { "Content-Type": contentType, ...headers },
		...(body ? { body } : {}),
	});
}

function post(name: string, contentType: string | undefined, body?: BodyInit, headers: Record<string, string> = {}) {
	return api(path(name), {
		method: "POST",
		headers: { ...(contentType ? { "Content-Type": contentType } : {}), ...headers },
		...(body !== undefined ? { body } : {}),
	});
}

async function readAll(name: string, query = "") {
	const res = await api(path(name, query));
	return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Reads an SSE body until `until` holds for what arrived (or the time runs out). */
async function sseUntil(res: Response, until: (text: string) => boolean, timeoutMs = 10_000): Promise<string> {
	const reader = (res.body as ReadableStream<Uint8Array>).getReader();
	const decoder = new TextDecoder();
	let text = "";
	const deadline = Date.now() + timeoutMs;
	while (!until(text) && Date.now() < deadline) {
		const next = await Promise.race([
			reader.read(),
			new Promise<{ done: true; value: undefined }>((r) => setTimeout(() => r({ done: true, value: undefined }), 500)),
		]);
		if (next.value) text += decoder.decode(next.value, { stream: true });
	}
	await reader.cancel().catch(() => {});
	return text;
}

describe("one log, two doors", () => {
	it("a topic's messages are its JSON stream, and offsets resume where seqs do", async () => {
		const topic = uniqueTopic("s");
		for (const n of [1, 2, 3]) expect((await publish(topic, { data: { n } })).status).toBe(201);
		const first = await readAll(topic);
		expect(first.status).toBe(200);
		expect(first.headers.get("Content-Type")).toBe("application/json");
		expect(JSON.parse(first.text)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
		const offset = first.headers.get("Stream-Next-Offset") as string;
		expect(offset).toBe(formatOffset(3));
		await publish(topic, { data: { n: 4 } });
		const next = await readAll(topic, `?offset=${offset}`);
		expect(JSON.parse(next.text)).toEqual([{ n: 4 }]);
	});

	it("stream appends reach the topic's history, live subscribers and consumer groups", async () => {
		const name = uniqueTopic("s");
		expect((await put(name, "application/json")).status).toBe(201);
		await createGroup(name, "g", { start: "earliest" });
		const sock = await TestSocket.open(name, "from=0");
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		expect((await post(name, "application/json", `[{"a":1},{"a":2}]`)).status).toBe(204);
		const page = await history(name);
		expect(page.messages.map((m) => [m.seq, m.data])).toEqual([
			[1, { a: 1 }],
			[2, { a: 2 }],
		]);
		expect((await sock.waitForMessages(2)).map((m) => m.data)).toEqual([{ a: 1 }, { a: 2 }]);
		const pulled = (await call("POST", groupPath(name, "g", "/pull"), { max: 10 })).body.messages as Array<{
			data: unknown;
		}>;
		expect(pulled.map((m) => m.data)).toEqual([{ a: 1 }, { a: 2 }]);
		sock.close();
	});

	it("a byte stream refuses topic publishes (its messages are base64 strings to the topic API)", async () => {
		const name = uniqueTopic("s");
		expect((await put(name, "application/octet-stream", new Uint8Array([1, 2, 3]))).status).toBe(201);
		expect((await publish(name, { data: 1 })).status).toBe(409);
		expect((await history(name)).messages.map((m) => m.data)).toEqual(["AQID"]);
	});

	it("a closed stream refuses topic publishes, over HTTP and over a socket", async () => {
		const name = uniqueTopic("s");
		await put(name, "application/json", "[1]", { "Stream-Closed": "true" });
		expect((await publish(name, { data: 2 })).status).toBe(409);
		const sock = await TestSocket.open(name, "from=0");
		sock.send({ type: "publish", ref: "r", data: 3 });
		expect(await sock.waitForFrame((f) => f.type === "error", "an error frame")).toMatchObject({
			code: "conflict",
			ref: "r",
		});
		sock.close();
		expect(JSON.parse((await readAll(name)).text)).toEqual([1]);
	});

	it("idempotent producers use the dedupe store of publish keys", async () => {
		const name = uniqueTopic("s");
		await put(name, "text/plain");
		const producer = { "Producer-Id": "p1", "Producer-Epoch": "0", "Producer-Seq": "0" };
		expect((await post(name, "text/plain", "x", producer)).status).toBe(200);
		expect((await post(name, "text/plain", "x", producer)).status).toBe(204);
		const rows = await runInDurableObject(topicStub(name), (_i, state) =>
			state.storage.sql.exec<{ key: string; id: string; seq: number }>("SELECT key, id, seq FROM dedupe").toArray(),
		);
		expect(rows).toEqual([{ key: "\u0000producer:p1", id: "0", seq: 0 }]);
		expect((await readAll(name)).text).toBe("x");
	});
});

describe("bad input stores nothing", () => {
	it("answers the protocol's status codes and leaves the log as it was", async () => {
		const name = uniqueTopic("s");
		await put(name, "application/json", `[{"k":1}]`);
		const before = (await readAll(name)).headers.get("Stream-Next-Offset");
		const cases: Array<[Promise<Response>, number]> = [
			[post(name, "application/json", "{ not json"), 400],
			[post(name, "application/json", "[]"), 400],
			[post(name, "application/json", ""), 400],
			[post(name, undefined, new Uint8Array([1])), 400],
			[post(name, "text/plain", "x"), 409],
			[post(name, "application/json", "1", { "Producer-Id": "p" }), 400],
			[post(name, "application/json", "1", { "Producer-Id": "p", "Producer-Epoch": "01", "Producer-Seq": "0" }), 400],
			[post(name, "application/json", `"${"x".repeat(1024 * 1024)}"`), 413],
			[api(path(name, "?offset=abc")), 400],
			[api(path(name, "?offset=9999999999999999_0000000000000000")), 400],
			[api(path(name, "?live=sse")), 400],
			[put(name, "text/plain"), 409],
		];
		for (const [res, status] of cases) {
			const r = await res;
			await r.arrayBuffer();
			expect(r.status).toBe(status);
		}
		// A producer sequence gap is refused and stores nothing either.
		const p = (seq: string) => ({ "Producer-Id": "gap", "Producer-Epoch": "0", "Producer-Seq": seq });
		expect((await post(name, "application/json", "2", p("0"))).status).toBe(200);
		const gap = await post(name, "application/json", "3", p("2"));
		expect(gap.status).toBe(409);
		expect(gap.headers.get("Producer-Expected-Seq")).toBe("1");
		const after = await readAll(name);
		expect(JSON.parse(after.text)).toEqual([{ k: 1 }, 2]);
		expect(after.headers.get("Stream-Next-Offset")).not.toBe(before);
		expect((await history(name)).messages.length).toBe(2);
	});

	it("parses offsets: only -1, now and offsets it wrote (fast-check)", () => {
		fc.assert(
			fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), (seq) => {
				const parsed = parseOffset(formatOffset(seq));
				return parsed?.kind === "seq" && parsed.seq === seq;
			}),
		);
		fc.assert(
			fc.property(fc.string(), (s) => {
				const parsed = parseOffset(s);
				if (parsed === undefined) return true;
				return s === "-1" || s === "now" || (parsed.kind === "seq" && formatOffset(parsed.seq) === s);
			}),
		);
		// Header values are printable ASCII (Headers refuses control characters).
		const printable = fc.oneof(fc.stringMatching(/^[\x20-\x7e]{0,8}$/), fc.nat().map(String));
		// Header integers (TTL, producer epoch and seq): exactly the protocol's decimal form, or refused.
		fc.assert(
			fc.property(
				fc.oneof(fc.string(), fc.nat().map(String), fc.constantFrom("0", "00", "+1", "1e3", "1.0", "-1")),
				(raw) => {
					const n = parseUint(raw, "h");
					return isBad(n) ? !/^(0|[1-9]\d*)$/.test(raw) || !Number.isSafeInteger(Number(raw)) : String(n) === raw;
				},
			),
		);
		fc.assert(
			fc.property(fc.option(printable), fc.option(printable), fc.option(printable), (id, epoch, seq) => {
				const headers = new Headers();
				if (id !== null) headers.set("Producer-Id", id);
				if (epoch !== null) headers.set("Producer-Epoch", epoch);
				if (seq !== null) headers.set("Producer-Seq", seq);
				const p = parseProducer(headers);
				const given = [id, epoch, seq].filter((x) => x !== null).length;
				if (given === 0) return p === undefined;
				if (given < 3) return isBad(p);
				return isBad(p) || (p !== undefined && p.id === headers.get("Producer-Id") && p.id !== "");
			}),
		);
		// Offsets sort as the log does.
		fc.assert(fc.property(fc.nat(), fc.nat(), (a, b) => a < b === formatOffset(a) < formatOffset(b)));
	});
});

describe("rights", () => {
	const ADMIN_KEY = "admin-key-for-tests-0123456789";
	const SECRET = "token-secret-for-tests-0123456789";
	const prod = {
		...env,
		TIDINGS_ALLOW_ANONYMOUS: undefined,
		TIDINGS_ADMIN_KEY: ADMIN_KEY,
		TIDINGS_TOKEN_SECRET: SECRET,
	};
	const as = async (name: string, rights: Right[]) =>
		(await mintToken(SECRET, { topics: { [name]: rights }, ttl_s: 300 })).token;
	const send = (credential: string | undefined, method: string, name: string, init: RequestInit = {}) => {
		const headers = new Headers(init.headers);
		if (credential) headers.set("Authorization", `Bearer ${credential}`);
		return app.fetch(new Request(`http://tidings.test${path(name)}`, { ...init, method, headers }), prod);
	};

	it("subscribe reads, publish appends, admin creates, closes and deletes; nothing without a credential", async () => {
		const name = uniqueTopic("s");
		const text = { "Content-Type": "text/plain" };
		expect((await send(undefined, "PUT", name, { headers: text })).status).toBe(401);
		expect((await send(await as(name, ["publish"]), "PUT", name, { headers: text })).status).toBe(403);
		expect((await send(ADMIN_KEY, "PUT", name, { headers: text })).status).toBe(201);
		const reader = await as(name, ["subscribe"]);
		const writer = await as(name, ["publish"]);
		expect((await send(reader, "POST", name, { headers: text, body: "x" })).status).toBe(403);
		expect((await send(writer, "POST", name, { headers: text, body: "x" })).status).toBe(204);
		expect((await send(writer, "GET", name)).status).toBe(403);
		const read = await send(reader, "GET", name);
		expect(await read.text()).toBe("x");
		expect((await send(writer, "POST", name, { headers: { "Stream-Closed": "true" } })).status).toBe(403);
		expect((await send(await as(name, ["admin"]), "POST", name, { headers: { "Stream-Closed": "true" } })).status).toBe(
			204,
		);
		expect((await send(reader, "DELETE", name)).status).toBe(403);
		const other = await as(`${name}-other`, ["admin", "subscribe", "publish"]);
		expect((await send(other, "GET", name)).status).toBe(403);
		expect((await send(ADMIN_KEY, "DELETE", name)).status).toBe(204);
	});
});

describe("expiry and deletion", () => {
	it("a TTL runs out on the object's one alarm, which removes the stream", async () => {
		const name = uniqueTopic("s");
		expect((await put(name, "text/plain", "x", { "Stream-TTL": "1" })).status).toBe(201);
		const due = await runInDurableObject(topicStub(name), (_i, state) =>
			state.storage.sql.exec<{ kind: string }>("SELECT kind FROM timers").toArray(),
		);
		expect(due).toContainEqual({ kind: "stream-expiry" });
		await new Promise((r) => setTimeout(r, 1100));
		await runDurableObjectAlarm(topicStub(name));
		const rows = await runInDurableObject(topicStub(name), (_i, state) =>
			state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM messages").one(),
		);
		expect(rows.n).toBe(0);
		expect((await api(path(name), { method: "HEAD" })).status).toBe(404);
	});

	it("deleting a stream closes the topic's sockets, and a new one starts empty", async () => {
		const name = uniqueTopic("s");
		await put(name, "application/json", "[1,2]");
		const sock = await TestSocket.open(name, "from=0");
		await sock.waitForMessages(2);
		expect((await api(path(name), { method: "DELETE" })).status).toBe(204);
		await sock.waitFor(() => sock.closed, "closed");
		expect(sock.closed?.code).toBe(CLOSE_CODES.topicDeleted);
		expect((await put(name, "application/json", "[3]")).status).toBe(201);
		expect(JSON.parse((await readAll(name)).text)).toEqual([3]);
	});
});

describe("waiting readers", () => {
	it("an SSE reader waits on a hibernatable socket, survives the object's restart, and misses nothing", async () => {
		const name = uniqueTopic("s");
		await put(name, "application/json", `[{"n":1}]`);
		const res = await api(path(name, "?offset=-1&live=sse"));
		expect(res.status).toBe(200);
		const reader = (res.body as ReadableStream<Uint8Array>).getReader();
		const decoder = new TextDecoder();
		let text = "";
		const readUntil = async (s: string) => {
			await eventually(
				async () => {
					if (text.includes(s)) return true;
					const next = await Promise.race([
						reader.read(),
						new Promise<undefined>((r) => setTimeout(() => r(undefined), 200)),
					]);
					if (next?.value) text += decoder.decode(next.value, { stream: true });
					return text.includes(s) || undefined;
				},
				`SSE text with ${s}; got ${text}`,
				10_000,
			);
		};
		await readUntil(`"upToDate":true`);
		// The reader waits as one hibernatable socket in the object, not as a pending request.
		await eventually(
			() =>
				runInDurableObject(topicStub(name), (_i, state) => state.getWebSockets(WAITER_TAG).length === 1 || undefined),
			"a waiter socket",
			5_000,
		);
		await restartObject(name);
		// The restart dropped the waiter; the Worker looks again and waits on a new one.
		await eventually(
			() =>
				runInDurableObject(topicStub(name), (_i, state) => state.getWebSockets(WAITER_TAG).length === 1 || undefined),
			"a new waiter socket",
			5_000,
		);
		expect((await post(name, "application/json", `{"n":2}`)).status).toBe(204);
		await readUntil(`{"n":2}`);
		expect((await post(name, "application/json", `{"n":3}`, { "Stream-Closed": "true" })).status).toBe(204);
		await readUntil("streamClosed");
		await reader.cancel().catch(() => {});
		const data = text
			.split("\n\n")
			.filter((e) => e.startsWith("event: data"))
			.flatMap((e) => JSON.parse(e.slice("event: data\ndata:".length)) as unknown[]);
		expect(data).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
	});

	it("a caught-up SSE reader gets new messages from the waiter frame, without reading the log again", async () => {
		const name = uniqueTopic("s");
		await put(name, "application/json", "[0]");
		const res = await api(path(name, "?offset=-1&live=sse"));
		const reader = (res.body as ReadableStream<Uint8Array>).getReader();
		let text = "";
		const decoder = new TextDecoder();
		const readUntil = (s: string) =>
			eventually(
				async () => {
					if (!text.includes(s)) {
						const next = await Promise.race([
							reader.read(),
							new Promise<undefined>((r) => setTimeout(() => r(undefined), 200)),
						]);
						if (next?.value) text += decoder.decode(next.value, { stream: true });
					}
					return text.includes(s) || undefined;
				},
				`SSE text with ${s}`,
				10_000,
			);
		await readUntil("upToDate");
		await eventually(
			() =>
				runInDurableObject(topicStub(name), (_i, state) => state.getWebSockets(WAITER_TAG).length === 1 || undefined),
			"a waiter socket",
			5_000,
		);
		const reads = vi.spyOn(Topic.prototype, "streamRead");
		for (const n of [1, 2, 3]) await publish(name, { data: n });
		await readUntil("[3]");
		expect(reads).not.toHaveBeenCalled();
		reads.mockRestore();
		await reader.cancel().catch(() => {});
	});

	it("a long-poll returns what a topic publish added while it waited", async () => {
		const name = uniqueTopic("s");
		await put(name, "application/json");
		const tail = (await readAll(name)).headers.get("Stream-Next-Offset") as string;
		const waiting = api(path(name, `?offset=${tail}&live=long-poll`));
		await eventually(
			() =>
				runInDurableObject(topicStub(name), (_i, state) => state.getWebSockets(WAITER_TAG).length === 1 || undefined),
			"a waiter socket",
			5_000,
		);
		await publish(name, { data: "hello" });
		const res = await waiting;
		expect(res.status).toBe(200);
		expect(await res.json()).toEqual(["hello"]);
		expect(res.headers.get("Stream-Cursor")).toMatch(/^\d+$/);
	});

	it("SSE text streams keep line breaks inside one event", async () => {
		const name = uniqueTopic("s");
		await put(name, "text/plain", "a\nb\r\n\r\nevent: control");
		const res = await api(path(name, "?offset=-1&live=sse"));
		const text = await sseUntil(res, (t) => t.includes("upToDate"));
		expect(text.startsWith("event: data\ndata:a\ndata:b\ndata:\ndata:event: control\n\nevent: control\n")).toBe(true);
	});
});

describe("a topic over SSE (the client's fallback)", () => {
	it("sends the WebSocket protocol's frames, one per event, from a resume point, filtered", async () => {
		const topic = uniqueTopic("s");
		await publish(topic, { data: 1, attributes: { k: "a" } });
		await publish(topic, { data: 2, attributes: { k: "b" } });
		const filter = encodeURIComponent(JSON.stringify({ k: ["a"] }));
		const res = await api(`/v1/topics/${topic}/sse?from=0&filter=${filter}`);
		expect(res.status).toBe(200);
		expect(res.headers.get("Content-Type")).toBe("text/event-stream");
		const sock = await TestSocket.open(topic, `from=0&filter=${filter}`);
		await publish(topic, { data: 3, attributes: { k: "a" } });
		const text = await sseUntil(res, (t) => t.includes('"data":3'));
		const frames = text
			.split("\n\n")
			.filter((e) => e.startsWith("data: "))
			.map((e) => JSON.parse(e.slice(6)) as { type: string; message?: unknown });
		expect(frames[0]).toMatchObject({ type: "ready", from: 0 });
		const overSocket = await sock.waitForMessages(2);
		expect(frames.filter((f) => f.type === "message").map((f) => f.message)).toEqual(overSocket);
		sock.close();
	});

	it("is refused for consumer groups and bad queries", async () => {
		const topic = uniqueTopic("s");
		expect((await call("GET", `/v1/topics/${topic}/sse?group=g`)).status).toBe(400);
		expect((await call("GET", `/v1/topics/${topic}/sse?from=x`)).status).toBe(400);
	});
});
