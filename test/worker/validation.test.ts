import { env, exports } from "cloudflare:workers";
import { Hono } from "hono";
import * as v from "valibot";
import { describe, expect, it, vi } from "vitest";
import { LIMITS } from "../../src/protocol/limits.js";
import { app } from "../../src/worker/app.js";
import { onError } from "../../src/worker/errors.js";
import { requireJson, validate } from "../../src/worker/validate.js";
import { api, call, history, publish, stats, TestSocket, uniqueTopic } from "./helpers.js";

type ErrorAnswer = { error: { code: string; message: string } };

async function expectError(res: Response, status: number, code: string, mentions?: RegExp) {
	const body = (await res.json()) as ErrorAnswer;
	expect(res.status, JSON.stringify(body)).toBe(status);
	expect(body.error.code).toBe(code);
	expect(body.error.message.length).toBeGreaterThan(0);
	if (mentions) expect(body.error.message).toMatch(mentions);
}

function post(topic: string, body: unknown, headers: Record<string, string> = {}) {
	return api(`/v1/topics/${topic}/messages`, {
		method: "POST",
		headers: { "Content-Type": "application/json", ...headers },
		body: typeof body === "string" ? body : JSON.stringify(body),
	});
}

describe("topic names", () => {
	it("accepts dot-separated segments up to 128 characters", async () => {
		for (const name of ["a", "user.created", "jobs.user-42", "A_b-9.c", "x".repeat(128), "a.b.c.d.e"]) {
			expect((await publish(name, { data: 1 })).status, name).toBe(201);
		}
	});

	it("rejects anything else with 400 and stores nothing", async () => {
		const bad = ["x".repeat(129), ".a", "a.", "a..b", "a b", "a/b", "ä", "a*", "a>", "%00", "a.%2E"];
		for (const name of bad) {
			const res = await post(encodeURIComponent(name), { data: 1 });
			const code = name.length > 128 ? "limit_exceeded" : "invalid_request";
			await expectError(res, 400, code, /topic/);
		}
	});
});

describe("publish limits", () => {
	it("takes data up to 128 KiB serialized and answers 413 above", async () => {
		const topic = uniqueTopic();
		const fits = "x".repeat(LIMITS.messageDataMaxBytes - 2); // the quotes make it exactly the limit
		expect((await post(topic, { data: fits })).status).toBe(201);
		await expectError(await post(topic, { data: `${fits}x` }), 413, "payload_too_large", /131072/);
		// Multi-byte characters count in bytes.
		const wide = "é".repeat(LIMITS.messageDataMaxBytes / 2);
		await expectError(await post(topic, { data: wide }), 413, "payload_too_large");
		expect((await stats(topic)).head_seq).toBe(1);
	});

	it("takes batches of up to 100 messages", async () => {
		const topic = uniqueTopic();
		const batch = (n: number) => ({ messages: Array.from({ length: n }, (_, i) => ({ data: i })) });
		expect((await post(topic, batch(100))).status).toBe(201);
		await expectError(await post(topic, batch(101)), 400, "limit_exceeded", /100/);
		await expectError(await post(topic, batch(0)), 400, "invalid_request");
		expect((await stats(topic)).head_seq).toBe(100);
	});

	it("answers 413 to a request over 1 MiB", async () => {
		const topic = uniqueTopic();
		const item = { data: "y".repeat(100 * 1024) };
		const body = JSON.stringify({ messages: Array.from({ length: 11 }, () => item) });
		expect(body.length).toBeGreaterThan(LIMITS.publishMaxBytes);
		await expectError(await post(topic, body), 413, "payload_too_large", /1 MiB/);
		expect((await stats(topic)).head_seq).toBe(0);
	});

	it("takes delays up to 12 hours", async () => {
		const topic = uniqueTopic();
		expect((await post(topic, { data: 1, delay_ms: LIMITS.delayMaxMs })).status).toBe(202);
		await expectError(
			await post(topic, { data: 1, delay_ms: LIMITS.delayMaxMs + 1 }),
			400,
			"limit_exceeded",
			/12 hours/,
		);
		await expectError(await post(topic, { data: 1, delay_ms: -1 }), 400, "invalid_request");
		await expectError(await post(topic, { data: 1, delay_ms: 1.5 }), 400, "invalid_request");
		expect((await stats(topic)).delayed).toBe(1);
	});

	it("bounds attributes", async () => {
		const topic = uniqueTopic();
		const attrs = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`a${i}`, i]));
		expect((await post(topic, { data: 1, attributes: attrs(50) })).status).toBe(201);
		await expectError(await post(topic, { data: 1, attributes: attrs(51) }), 400, "limit_exceeded", /50/);
		await expectError(
			await post(topic, { data: 1, attributes: { a: "v".repeat(1025) } }),
			400,
			"limit_exceeded",
			/1024/,
		);
		await expectError(
			await post(topic, { data: 1, attributes: { ["k".repeat(129)]: 1 } }),
			400,
			"limit_exceeded",
			/128/,
		);
		await expectError(await post(topic, { data: 1, attributes: { a: null } }), 400, "invalid_request");
		await expectError(await post(topic, { data: 1, attributes: [1] }), 400, "invalid_request");
		expect((await stats(topic)).head_seq).toBe(1);
	});

	it("bounds keys, traceparent and baggage", async () => {
		const topic = uniqueTopic();
		expect((await post(topic, { data: 1, key: "k".repeat(256) })).status).toBe(201);
		await expectError(await post(topic, { data: 1, key: "k".repeat(257) }), 400, "limit_exceeded", /256/);
		await expectError(await post(topic, { data: 1, key: "" }), 400, "invalid_request");
		await expectError(await post(topic, { data: 1, baggage: "b".repeat(8193) }), 400, "limit_exceeded", /8192/);
		await expectError(await post(topic, { data: 1, traceparent: "00-xyz" }), 400, "invalid_request");
		expect((await stats(topic)).head_seq).toBe(1);
	});

	it("answers deeply nested data with a 4xx, never a 500, over HTTP and sockets", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic);
		for (const depth of [70_000, 400_000]) {
			const nested = `${"[".repeat(depth)}${"]".repeat(depth)}`;
			const res = await post(topic, `{"data":${nested}}`);
			expect([400, 413], `depth ${depth}`).toContain(res.status);
			await res.arrayBuffer();
			const before = sock.frames.length;
			sock.send(`{"type":"publish","ref":"deep","data":${nested}}`);
			const err = await sock.waitFor(() => sock.frames.slice(before).find((f) => f.type === "error"), "error frame");
			expect(["invalid_frame", "invalid_request", "payload_too_large"]).toContain(err.code);
		}
		expect(sock.closed).toBeUndefined();
		sock.close();
		expect((await stats(topic)).head_seq).toBe(0);
	});

	it("bounds a history page by bytes as well as by limit", async () => {
		const topic = uniqueTopic();
		const big = "h".repeat(120 * 1024);
		for (let i = 0; i < 5; i++) {
			expect((await post(topic, { messages: Array.from({ length: 8 }, () => ({ data: big })) })).status).toBe(201);
		}
		const res = await api(`/v1/topics/${topic}/messages?limit=1000`);
		const page = (await res.json()) as { messages: unknown[]; next_after: number };
		expect(page.messages.length).toBeGreaterThan(0);
		expect(page.messages.length).toBeLessThan(40);
		expect(page.next_after).toBe(page.messages.length);
	});

	it("reads repeated names as JSON.parse does: the last value wins (documented)", async () => {
		const topic = uniqueTopic();
		expect((await post(topic, '{"data":1,"attributes":{"a":1,"a":"two"},"data":2}')).status).toBe(201);
		const [m] = (await history(topic)).messages;
		expect(m?.data).toBe(2);
		expect(m?.attributes).toEqual({ a: "two" });
		// A repeat does not count twice: 50 distinct names, one of them given again, fit the limit.
		const fifty = Array.from({ length: 50 }, (_, i) => `"a${i}":${i}`).join(",");
		expect((await post(topic, `{"data":3,"attributes":{${fifty},"a0":"again"}}`)).status).toBe(201);
		const sock = await TestSocket.open(topic);
		sock.send('{"type":"publish","ref":"first","data":1,"ref":"last"}');
		expect(await sock.waitForFrame((f) => f.type === "published", "published")).toMatchObject({ ref: "last" });
		sock.close();
	});

	it("explains malformed bodies", async () => {
		const topic = uniqueTopic();
		await expectError(await post(topic, "{not json"), 400, "invalid_json");
		await expectError(await post(topic, {}), 400, "invalid_request", /data is required/);
		await expectError(await post(topic, { data: 1, dealy_ms: 5 }), 400, "invalid_request");
		await expectError(await post(topic, [1, 2]), 400, "invalid_request");
		await expectError(await post(topic, "null"), 400, "invalid_request");
		await expectError(await post(topic, { messages: "nope" }), 400, "invalid_request", /messages/);
		const form = await api(`/v1/topics/${topic}/messages`, { method: "POST", body: "data=1" });
		await expectError(form, 415, "unsupported_media_type", /application\/json/);
		expect((await stats(topic)).head_seq).toBe(0);
	});
});

describe("bodies that are not UTF-8", () => {
	const enc = new TextEncoder();
	/** JSON text with raw bytes spliced in where `@` stands. */
	const bytes = (json: string, raw: number[]) => {
		const [before = "", after = ""] = json.split("@");
		return new Uint8Array([...enc.encode(before), ...raw, ...enc.encode(after)]);
	};
	const BAD: Array<[string, number[]]> = [
		["0xff", [0xff]],
		["an overlong encoding of /", [0xc0, 0xaf]],
		["a lone continuation byte", [0x80]],
		["an encoded surrogate", [0xed, 0xa0, 0x80]],
		["a truncated sequence", [0xe2, 0x82]],
		["a code point above U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
	];
	const send = (method: string, path: string, body: BodyInit) =>
		api(path, { method, headers: { "Content-Type": "application/json" }, body });
	/** The same bytes without a Content-Length: the body arrives as a stream. */
	const streamed = (b: Uint8Array) =>
		new ReadableStream<Uint8Array>({
			start(c) {
				c.enqueue(b);
				c.close();
			},
		});

	it("are refused with invalid_json on publish, whole or streamed, and store nothing", async () => {
		const topic = uniqueTopic();
		const path = `/v1/topics/${topic}/messages`;
		for (const [what, raw] of BAD) {
			await expectError(await send("POST", path, bytes('{"data":"@"}', raw)), 400, "invalid_json", /UTF-8/);
			await expectError(await send("POST", path, bytes('{"data":1,"key":"k@"}', raw)), 400, "invalid_json");
			await expectError(
				await send("POST", path, bytes('{"messages":[{"data":1,"attributes":{"a@":1}}]}', raw)),
				400,
				"invalid_json",
			);
			const res = await send("POST", path, streamed(bytes('{"data":"@"}', raw)));
			await expectError(res, 400, "invalid_json", new RegExp(`UTF-8|${what}`));
		}
		expect((await stats(topic)).head_seq).toBe(0);
		// Valid multi-byte text is untouched, whole or streamed.
		expect((await send("POST", path, enc.encode('{"data":"é😀"}'))).status).toBe(201);
		expect((await send("POST", path, streamed(enc.encode('{"data":"ü"}')))).status).toBe(201);
		expect((await history(topic)).messages.map((m) => m.data)).toEqual(["é😀", "ü"]);
	});

	it("are refused on the other JSON routes too", async () => {
		const topic = uniqueTopic();
		const bad = [0xff];
		await expectError(
			await send("PUT", `/v1/topics/${topic}/groups/g`, bytes('{"filter":{"kind":"@"}}', bad)),
			400,
			"invalid_json",
		);
		expect((await api(`/v1/topics/${topic}/groups/g`)).status).toBe(404);
		await expectError(
			await send("PUT", `/v1/topics/${topic}`, bytes('{"max_messages":5,"@":1}', bad)),
			400,
			"invalid_json",
		);
		await expectError(
			await send("POST", "/v1/tokens", bytes('{"topics":{"a":["publish"]},"sub":"@"}', bad)),
			400,
			"invalid_json",
		);
		expect((await call("PUT", `/v1/topics/${topic}/groups/g`, {})).status).toBe(201);
		await expectError(
			await send("POST", `/v1/topics/${topic}/groups/g/nack`, bytes('{"seqs":[1],"error":"@"}', bad)),
			400,
			"invalid_json",
		);
	});

	it("are read, decoded and parsed once", async () => {
		const probe = new Hono()
			.post("/", requireJson, validate("json", v.unknown()), (c) => c.json({ got: c.req.valid("json") }))
			.onError(onError);
		const text = JSON.stringify({ data: "x".repeat(1000), n: 1 });
		const parse = vi.spyOn(JSON, "parse");
		const lenient = vi.spyOn(Request.prototype, "text");
		try {
			const res = await probe.fetch(
				new Request("http://x/", { method: "POST", headers: { "Content-Type": "application/json" }, body: text }),
			);
			expect(await res.json()).toEqual({ got: JSON.parse(text) });
			// Once by the route, once by the assertion above.
			expect(parse.mock.calls.filter(([t]) => t === text)).toHaveLength(2);
			expect(lenient).not.toHaveBeenCalled();
		} finally {
			parse.mockRestore();
			lenient.mockRestore();
		}
	});

	it("over 1 MiB are still 413 first", async () => {
		const topic = uniqueTopic();
		const big = bytes(`{"data":"${"x".repeat(LIMITS.publishMaxBytes)}@"}`, [0xff]);
		await expectError(await send("POST", `/v1/topics/${topic}/messages`, big), 413, "payload_too_large");
		await expectError(await send("POST", `/v1/topics/${topic}/messages`, streamed(big)), 413, "payload_too_large");
		expect((await stats(topic)).head_seq).toBe(0);
	});
});

describe("lone surrogates", () => {
	const LONE = ["\ud800", "a\udc00b", "x\ud83d", "\ude00\ud83d"];

	it("in key or baggage are refused on every publish path, and nothing is stored", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic);
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		for (const bad of LONE) {
			for (const field of ["key", "baggage"]) {
				await expectError(await post(topic, { data: 1, [field]: bad }), 400, "invalid_request", /lone surrogate/);
				await expectError(
					await post(topic, { messages: [{ data: 1 }, { data: 2, [field]: bad }] }),
					400,
					"invalid_request",
					new RegExp(`messages\\.1\\.${field}: .*lone surrogate`),
				);
				const before = sock.frames.length;
				sock.send({ type: "publish", ref: "one", data: 1, [field]: bad });
				sock.send({ type: "publish", ref: "batch", messages: [{ data: 1, [field]: bad }] });
				await sock.waitFor(() => sock.frames.length >= before + 2, "two answers");
				for (const f of sock.frames.slice(before)) {
					expect(f).toMatchObject({
						type: "error",
						code: "invalid_request",
						message: expect.stringMatching(/lone surrogate/),
					});
				}
				// The RPC entrypoint shares the schema: one value is enough (each rejection is logged).
				if (bad !== LONE[0]) continue;
				const rpc = exports.TidingsRpc;
				const one = await rpc.publish(topic, 1, { [field]: bad }).then(
					() => "stored",
					(e: unknown) => String(e),
				);
				expect(one).toMatch(/invalid_request: .*lone surrogate/);
				const batch = await rpc.publishBatch(topic, [{ data: 1, [field]: bad }]).then(
					() => "stored",
					(e: unknown) => String(e),
				);
				expect(batch).toMatch(/invalid_request: .*lone surrogate/);
			}
		}
		sock.close();
		expect((await stats(topic)).head_seq).toBe(0);
	});

	it("do not stop keys with surrogate pairs: they round-trip and deduplicate", async () => {
		const topic = uniqueTopic();
		const key = "order-😀-𝄞";
		const first = await post(topic, { data: 1, key, baggage: "emoji=😀" });
		expect(first.status).toBe(201);
		const [stored] = (await history(topic)).messages;
		expect(stored?.key).toBe(key);
		expect(stored?.baggage).toBe("emoji=😀");
		// Re-publishing with the key as read back is a duplicate, not a second copy.
		const again = await post(topic, { data: 1, key: stored?.key });
		expect(again.status).toBe(200);
		expect((await stats(topic)).head_seq).toBe(1);
	});

	it("in data and attributes round-trip exactly (JSON escapes them)", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic);
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		const data = { text: "a\ud800b", list: ["\udfff", "x\ud83d"] };
		const attributes = { "n\udc00": "v\ud800", plain: "😀" };
		expect((await post(topic, { data, attributes })).status).toBe(201);
		sock.send({ type: "publish", ref: "r", data, attributes });
		await sock.waitForFrame((f) => f.type === "published", "published");
		const page = await history(topic);
		for (const m of page.messages) {
			expect(m.data).toEqual(data);
			expect(JSON.stringify(m.attributes)).toBe(JSON.stringify(attributes));
		}
		expect(page.messages).toHaveLength(2);
		sock.close();
	});

	it("in a nack's error are stored as U+FFFD, the same in the DLQ and on the dead-letter topic", async () => {
		const topic = uniqueTopic();
		const dlt = `${topic}.dead`;
		const json = (res: Response) => res.json() as Promise<Record<string, unknown>>;
		const put = await api(`/v1/topics/${topic}/groups/g`, {
			method: "PUT",
			headers: { "Content-Type": "application/json" },
			body: JSON.stringify({ max_retries: 0, dead_letter_topic: dlt }),
		});
		expect(put.status).toBe(201);
		const watcher = await TestSocket.open(dlt);
		await watcher.waitForFrame((f) => f.type === "ready", "ready");
		expect((await post(topic, { data: 1 })).status).toBe(201);
		const groupPost = (rest: string, body: unknown) =>
			api(`/v1/topics/${topic}/groups/g${rest}`, {
				method: "POST",
				headers: { "Content-Type": "application/json" },
				body: JSON.stringify(body),
			});
		const pulled = (await json(await groupPost("/pull", {}))) as { messages: Array<{ seq: number }> };
		// A client that cut an error message in the middle of a surrogate pair.
		const nack = await groupPost("/nack", { seqs: [pulled.messages[0]?.seq], error: "failed: \ud83d" });
		expect(await json(nack)).toEqual({ nacked: [1], dead: [1] });
		const dlq = (await json(await api(`/v1/topics/${topic}/groups/g/dlq`))) as {
			messages: Array<{ last_error: string }>;
		};
		expect(dlq.messages[0]?.last_error).toBe("failed: \ufffd");
		const [dead] = await watcher.waitForMessages(1, 5000);
		expect(dead?.attributes.last_error).toBe("failed: \ufffd");
		watcher.close();
	});
});

describe("queries and routes", () => {
	it("bounds history limit to 1..1000", async () => {
		const topic = uniqueTopic();
		for (const q of ["limit=1", "limit=1000", "after=0&limit=5", "after=999999"]) {
			expect((await api(`/v1/topics/${topic}/messages?${q}`)).status, q).toBe(200);
		}
		await expectError(await api(`/v1/topics/${topic}/messages?limit=1001`), 400, "limit_exceeded", /1000/);
		for (const q of ["limit=0", "limit=abc", "after=-1", "after=1.5", "after=1e3", "limit=1&limit=2"]) {
			await expectError(await api(`/v1/topics/${topic}/messages?${q}`), 400, "invalid_request");
		}
	});

	it("answers any whole number above a limit with limit_exceeded, however many digits, and anything else with invalid_request", async () => {
		const topic = uniqueTopic();
		const big = ["1001", "99999999", "0000000000001001", "9".repeat(400)];
		const notNumbers = ["abc", "1e3", "-1", "1.5", "+5", " 5", "0x10", ""];
		const routes: Array<[string, (q: string) => string, string[]]> = [
			["history limit", (n) => `/v1/topics/${topic}/messages?limit=${n}`, big],
			["dlq limit", (n) => `/v1/topics/${topic}/groups/g/dlq?limit=${n}`, big],
			["prefetch", (n) => `/v1/topics/${topic}/ws?group=g&prefetch=${n}`, big],
			["history after", (n) => `/v1/topics/${topic}/messages?after=${n}`, ["9007199254740992", "9".repeat(20)]],
			["dlq after", (n) => `/v1/topics/${topic}/groups/g/dlq?after=${n}`, ["9007199254740992", "9".repeat(20)]],
			["from", (n) => `/v1/topics/${topic}/ws?from=${n}`, ["9007199254740992", "9".repeat(400)]],
		];
		for (const [what, path, over] of routes) {
			for (const n of over) {
				await expectError(await api(path(n)), 400, "limit_exceeded", /at most/);
			}
			for (const n of notNumbers) {
				const res = await api(path(encodeURIComponent(n)));
				const body = (await res.json()) as ErrorAnswer;
				expect(res.status, `${what}=${n}`).toBe(400);
				expect(body.error.code, `${what}=${n}`).toBe("invalid_request");
			}
		}
		// The largest whole numbers still allowed.
		expect((await api(`/v1/topics/${topic}/messages?after=9007199254740991&limit=0001000`)).status).toBe(200);
		await expectError(await api(`/v1/topics/${topic}/ws?from=9007199254740991`), 426, "upgrade_required");
	});

	it("validates from on sockets", async () => {
		const topic = uniqueTopic();
		for (const q of ["from=soon", "from=-1", "from=1.5"]) {
			const res = await api(`/v1/topics/${topic}/ws?${q}`, { headers: { Upgrade: "websocket" } });
			await expectError(res, 400, "invalid_request", /from/);
		}
	});

	it("bounds filters by keys, values (anything-but lists included) and bytes", async () => {
		const topic = uniqueTopic();
		const open = (f: unknown) =>
			api(`/v1/topics/${topic}/ws?filter=${encodeURIComponent(JSON.stringify(f))}`, {
				headers: { Upgrade: "websocket" },
			});
		const values = (n: number) => Array.from({ length: n }, (_, i) => `v${i}`);
		const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "x"]));
		const accepted = await open({ a: values(100) });
		expect(accepted.status).toBe(101);
		accepted.webSocket?.accept();
		accepted.webSocket?.close(1000);
		await expectError(await open({ a: values(101) }), 400, "limit_exceeded", /100/);
		await expectError(await open({ a: { "anything-but": values(101) } }), 400, "limit_exceeded", /100/);
		await expectError(await open(keys(11)), 400, "limit_exceeded", /10 keys/);
		await expectError(await open({ a: ["x".repeat(5000)] }), 413, "payload_too_large", /4096/);
	});

	it("answers a plain GET of the socket route as the upgrade would, and 426 when every check passes; 404 to unknown routes", async () => {
		const topic = uniqueTopic();
		await expectError(await api(`/v1/topics/${topic}/ws`), 426, "upgrade_required", /every check passed/);
		await expectError(await api(`/v1/topics/${topic}/ws?from=bad`), 400, "invalid_request");
		await expectError(await api(`/v1/topics/${topic}/ws?group=nope`), 404, "not_found", /no group nope/);
		await expectError(await api(`/v1/topics/bad%20topic/ws`), 400, "invalid_request");
		expect((await stats(topic)).subscribers).toBe(0);
		await expectError(await api("/v1/nothing"), 404, "not_found");
		await expectError(await api(`/v1/topics/${topic}/messages`, { method: "DELETE" }), 404, "not_found");
	});

	it("validates topic settings", async () => {
		const topic = uniqueTopic();
		const put = (body: unknown) =>
			api(`/v1/topics/${topic}`, {
				method: "PUT",
				headers: { "Content-Type": "application/json" },
				body: JSON.stringify(body),
			});
		expect((await put({ max_messages: 1_000_000, max_age_ms: 30 * 24 * 3600 * 1000 })).status).toBe(200);
		await expectError(await put({}), 400, "invalid_request");
		await expectError(await put({ max_messages: 0 }), 400, "invalid_request");
		await expectError(await put({ max_messages: 1_000_001 }), 400, "limit_exceeded");
		await expectError(await put({ max_age_ms: 999 }), 400, "invalid_request");
		await expectError(await put({ max_age_ms: 31 * 24 * 3600 * 1000 }), 400, "limit_exceeded");
		await expectError(await put({ max_messages: 10, retention: 1 }), 400, "invalid_request");
		expect((await stats(topic)).settings.max_messages).toBe(1_000_000);
	});

	it("serves /healthz", async () => {
		const res = await api("/healthz");
		expect(res.status).toBe(200);
		expect(await res.json()).toEqual({ ok: true });
	});
});

describe("closed by default", () => {
	const request = (path: string, init?: RequestInit) => new Request(`http://tidings.test${path}`, init);
	const closed = { ...env, TIDINGS_ALLOW_ANONYMOUS: undefined, TIDINGS_ADMIN_KEY: undefined };
	const keyed = { ...env, TIDINGS_ALLOW_ANONYMOUS: undefined, TIDINGS_ADMIN_KEY: "s3cret-admin-key" };

	it("answers 401 with how to configure when nothing is set, except /healthz", async () => {
		expect((await app.fetch(request("/healthz"), closed)).status).toBe(200);
		const res = await app.fetch(request("/v1/topics/a/messages"), closed);
		await expectError(res, 401, "unauthorized", /TIDINGS_ADMIN_KEY/);
	});

	it("takes the admin key as a bearer header or a token query", async () => {
		const topic = uniqueTopic();
		await expectError(await app.fetch(request(`/v1/topics/${topic}`), keyed), 401, "unauthorized");
		const wrong = request(`/v1/topics/${topic}/messages`, { headers: { Authorization: "Bearer nope" } });
		const wrongRes = await app.fetch(wrong, keyed);
		const wrongBody = await wrongRes.text();
		expect(wrongRes.status).toBe(401);
		expect(wrongBody).not.toContain("nope");
		expect(wrongBody).not.toContain("s3cret");
		const ok = request(`/v1/topics/${topic}/messages`, { headers: { Authorization: "Bearer s3cret-admin-key" } });
		expect((await app.fetch(ok, keyed)).status).toBe(200);
		expect((await app.fetch(request(`/v1/topics/${topic}/messages?token=s3cret-admin-key`), keyed)).status).toBe(200);
		// A non-Bearer Authorization header (a proxy's Basic auth, say) does not hide ?token=.
		const basic = request(`/v1/topics/${topic}/messages?token=s3cret-admin-key`, {
			headers: { Authorization: "Basic eDp5" },
		});
		expect((await app.fetch(basic, keyed)).status).toBe(200);
	});
});
