/**
 * Property tests (fast-check) for the parsers: topic names, publish bodies,
 * query parameters, WebSocket frames and filters. The HTTP and socket
 * properties run against the real Worker and object in workerd.
 */
import fc from "fast-check";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { ERROR_STATUS } from "../../src/protocol/errors.js";
import { type Filter, matchesFilter } from "../../src/protocol/filter.js";
import { FilterSchema, parseClientFrame, TopicName, utf8Length } from "../../src/protocol/schema.js";
import { api, stats, TestSocket, uniqueTopic } from "./helpers.js";

const RUNS = { numRuns: 150 };
const SEGMENT_CHARS = "abcXYZ019_-";

/** Reference for topic names, written apart from the schema's regex. */
function isTopicName(s: string): boolean {
	if (s.length < 1 || s.length > 128) return false;
	return s.split(".").every((seg) => seg.length > 0 && [...seg].every((ch) => /[A-Za-z0-9_-]/.test(ch)));
}

const jsonValue = fc.jsonValue({ maxDepth: 3 });

describe("topic names", () => {
	it("the schema accepts exactly the reference's names", () => {
		const nameLike = fc.oneof(
			fc.string({ maxLength: 140 }),
			fc
				.array(fc.string({ unit: fc.constantFrom(...SEGMENT_CHARS), maxLength: 12 }), { maxLength: 12 })
				.map((a) => a.join(".")),
			fc.string({ unit: fc.constantFrom(...SEGMENT_CHARS, "."), minLength: 120, maxLength: 135 }),
		);
		fc.assert(
			fc.property(nameLike, (s) => {
				expect(v.is(TopicName, s)).toBe(isTopicName(s));
			}),
			{ numRuns: 1000 },
		);
	});
});

describe("utf8Length", () => {
	it("equals the encoder's byte count, lone surrogates included", () => {
		fc.assert(
			fc.property(fc.string({ unit: "binary", maxLength: 64 }), (s) => {
				expect(utf8Length(s)).toBe(new TextEncoder().encode(s).byteLength);
			}),
			{ numRuns: 1000 },
		);
	});
});

describe("publish bodies over HTTP", () => {
	const attributes = fc.dictionary(
		fc.string({ maxLength: 8 }),
		fc.oneof(fc.string({ maxLength: 8 }), fc.double(), fc.boolean(), fc.constant(null)),
		{ maxKeys: 4 },
	);
	const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
	/** Mostly a valid value, now and then anything the generator gives. */
	const mostly = <T, U>(valid: fc.Arbitrary<T>, any: fc.Arbitrary<U>) =>
		fc.oneof({ weight: 19, arbitrary: valid }, { weight: 1, arbitrary: any });
	const validAttributes = fc.dictionary(
		fc.string({ minLength: 1, maxLength: 8 }),
		fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean()),
		{ maxKeys: 4 },
	);
	const item = fc.record(
		{
			data: jsonValue,
			attributes: mostly(validAttributes, attributes),
			delay_ms: mostly(fc.integer({ min: 0, max: 50 }), fc.oneof(fc.integer({ min: -5, max: -1 }), fc.double())),
			// A few keys, so repeats are common.
			key: mostly(fc.constantFrom("a", "b", "c", "d", "e", "f"), fc.string({ maxLength: 4 })),
			traceparent: mostly(fc.constant(TRACEPARENT), fc.constant("bad")),
		},
		{ requiredKeys: [] },
	);
	/** Now and then a field no message has. */
	const itemMaybeBogus = fc.oneof(
		{ weight: 19, arbitrary: item },
		{ weight: 1, arbitrary: fc.tuple(item, fc.anything()).map(([i, bogus]) => ({ ...i, bogus })) },
	);
	const body = fc.oneof(
		{ weight: 4, arbitrary: itemMaybeBogus },
		{ weight: 4, arbitrary: fc.record({ messages: fc.array(itemMaybeBogus, { maxLength: 4 }) }) },
		{ weight: 1, arbitrary: fc.record({ messages: fc.anything() }) },
		{ weight: 1, arbitrary: fc.anything() },
	);

	it("never answers 5xx; a 2xx stores exactly its non-duplicate results, a rejected body nothing", async () => {
		const topic = uniqueTopic("fuzz");
		let head = 0;
		let accepted = 0;
		let duplicates = 0;
		let n = 0;
		/** Keys stored so far (the dedupe window is far longer than this test). */
		const seen = new Set<string>();
		await fc.assert(
			fc.asyncProperty(body, fc.boolean(), async (b, fresh) => {
				// Half the cases use keys of their own: a key repeated inside a batch is then new to the server.
				if (fresh && b !== null && typeof b === "object") {
					const items = "messages" in b && Array.isArray(b.messages) ? b.messages : [b];
					for (const item of items as Array<{ key?: unknown }>)
						if (item !== null && typeof item === "object" && typeof item.key === "string")
							item.key = `${n}:${item.key}`;
				}
				n++;
				const text = JSON.stringify(b) ?? "undefined";
				const res = await api(`/v1/topics/${topic}/messages`, {
					method: "POST",
					headers: { "Content-Type": "application/json" },
					body: text,
				});
				const answer = (await res.json()) as Record<string, unknown>;
				expect(res.status).toBeLessThan(500);
				// Delayed messages move from `delayed` to the log on their own; the sum only grows by publishes.
				const s = await stats(topic);
				const now = s.head_seq + s.delayed;
				if (res.status >= 400) {
					expect(Object.keys(ERROR_STATUS)).toContain((answer.error as { code: string }).code);
					expect(now).toBe(head);
				} else {
					accepted++;
					const results = (answer.messages ?? [answer]) as Array<{ duplicate?: boolean }>;
					// Accepted, so every message was valid: which ones repeat a key is known without the server.
					const items = ("messages" in (b as object) ? (b as { messages: unknown[] }).messages : [b]) as Array<{
						key?: string;
					}>;
					expect(results).toHaveLength(items.length);
					items.forEach((item, i) => {
						const repeat = item.key !== undefined && seen.has(item.key);
						if (item.key !== undefined) seen.add(item.key);
						expect(results[i]?.duplicate === true, `message ${i} of ${text}`).toBe(repeat);
					});
					const fresh = results.filter((r) => r.duplicate !== true).length;
					duplicates += results.length - fresh;
					expect(now - head, text).toBe(fresh);
				}
				head = now;
			}),
			RUNS,
		);
		// The generator is not mostly rejects, and repeats do happen.
		expect(accepted).toBeGreaterThan(RUNS.numRuns / 3);
		expect(duplicates).toBeGreaterThan(0);
	});

	it("never answers 5xx to arbitrary query strings", async () => {
		const topic = uniqueTopic("fuzzq");
		const param = fc.tuple(fc.constantFrom("after", "limit", "from", "filter", "x"), fc.string({ maxLength: 20 }));
		await fc.assert(
			fc.asyncProperty(fc.array(param, { maxLength: 3 }), async (params) => {
				const q = new URLSearchParams(params).toString();
				const res = await api(`/v1/topics/${topic}/messages?${q}`);
				await res.arrayBuffer();
				expect(res.status).toBeLessThan(500);
				const ws = await api(`/v1/topics/${topic}/ws?${q}`, { headers: { Upgrade: "websocket" } });
				if (ws.webSocket) {
					ws.webSocket.accept();
					ws.webSocket.close(1000);
				} else await ws.arrayBuffer();
				expect(ws.status).toBeLessThan(500);
			}),
			// Each run opens a socket; fewer runs keep this file quick.
			{ numRuns: 60 },
		);
	});
});

describe("attributes through history", () => {
	/** Names Object.prototype has, or that a careless parser treats specially. */
	const reservedName = fc.constantFrom(
		"__proto__",
		"constructor",
		"prototype",
		"toString",
		"hasOwnProperty",
		"valueOf",
	);
	const name = fc.oneof(reservedName, fc.string({ unit: "binary", minLength: 1, maxLength: 8 }));
	const value = fc.oneof(
		fc.string({ unit: "binary", maxLength: 8 }),
		fc.double({ noNaN: true, noDefaultInfinity: true }),
		fc.boolean(),
	);
	const attributes = fc.dictionary(name, value, { maxKeys: 8 });

	it("history returns exactly the attributes and data that were published, reserved names included", async () => {
		const topic = uniqueTopic("attrs");
		await fc.assert(
			fc.asyncProperty(attributes, fc.string({ unit: "binary", maxLength: 8 }), async (attrs, data) => {
				const sent = JSON.stringify({ data, attributes: attrs });
				const res = await api(`/v1/topics/${topic}/messages`, {
					method: "POST",
					headers: { "Content-Type": "application/json" },
					body: sent,
				});
				const answer = (await res.json()) as { seq: number };
				expect(res.status, JSON.stringify(answer)).toBe(201);
				const page = await api(`/v1/topics/${topic}/messages?after=${answer.seq - 1}&limit=1`);
				const [m] = ((await page.json()) as { messages: Array<{ data: unknown; attributes: object }> }).messages;
				// JSON text compared as text: keys, their order and lone surrogates must all survive.
				expect(JSON.stringify({ data: m?.data, attributes: m?.attributes })).toBe(sent);
			}),
			// Two requests a run: fewer runs keep this file quick on a shared machine.
			{ numRuns: 80 },
		);
	}, 60_000);
});

describe("WebSocket frames", () => {
	const frameLike = fc.oneof(
		fc.string({ maxLength: 40 }),
		fc.jsonValue({ maxDepth: 3 }).map((j) => JSON.stringify(j)),
		fc
			.record(
				{
					type: fc.constantFrom("publish", "ack", "received", "drain", "x"),
					ref: fc.oneof(fc.string({ maxLength: 5 }), fc.integer()),
					seq: fc.oneof(fc.integer({ min: -2, max: 5 }), fc.anything()),
					data: jsonValue,
					messages: fc.anything(),
					key: fc.anything(),
				},
				{ requiredKeys: [] },
			)
			.map((o) => JSON.stringify(o)),
	);

	it("parseClientFrame never throws and answers a known code", () => {
		fc.assert(
			fc.property(frameLike, (text) => {
				const r = parseClientFrame(text);
				if (!r.ok) expect(Object.keys(ERROR_STATUS)).toContain(r.code);
			}),
			{ numRuns: 2000 },
		);
	});

	it("a valid publish frame keeps its data exactly", () => {
		fc.assert(
			fc.property(fc.string({ minLength: 1, maxLength: 10 }), jsonValue, (ref, data) => {
				const r = parseClientFrame(JSON.stringify({ type: "publish", ref, data }));
				expect(r.ok).toBe(true);
				// JSON has no -0: compare with what JSON itself round-trips.
				if (r.ok && "data_json" in r.frame)
					expect(JSON.parse(r.frame.data_json)).toEqual(JSON.parse(JSON.stringify(data)));
				else expect.unreachable("a single publish frame");
			}),
			{ numRuns: 500 },
		);
	});

	/**
	 * Publish frames valid by construction (written from docs/protocol.md, not
	 * from the schema), and frames invalid by construction. Keys come from a
	 * small set, so repeats (within a batch, and across frames) are common.
	 */
	const key = fc.constantFrom("k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8");
	const validAttributes = fc.dictionary(
		fc.string({ minLength: 1, maxLength: 8 }),
		fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean()),
		{ maxKeys: 3 },
	);
	const validMessage = fc.record(
		{ data: jsonValue, attributes: validAttributes, key, delay_ms: fc.constantFrom(0, 20) },
		{ requiredKeys: ["data"] },
	);
	type Sent = { key?: string };
	const validFrame = fc.oneof(
		validMessage.map((m) => ({ messages: [m as Sent], frame: { type: "publish", ...m } })),
		fc
			.array(validMessage, { minLength: 1, maxLength: 4 })
			.map((ms) => ({ messages: ms as Sent[], frame: { type: "publish", messages: ms } })),
	);
	const invalidFrame = fc.oneof(
		// Not JSON at all.
		fc.string({ maxLength: 20 }).map((t) => `{${t}`),
		// JSON, but not an object.
		fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 })),
		// An unknown type.
		fc.record({ type: fc.constantFrom("x", "publishes", "PUBLISH", ""), data: jsonValue }),
		// A publish without data, with a field no message has, with a bad delay or attribute, or an empty batch.
		fc.constant({ type: "publish" }),
		validMessage.map((m) => ({ type: "publish", ...m, bogus: 1 })),
		validMessage.map((m) => ({ type: "publish", ...m, delay_ms: -1 })),
		validMessage.map((m) => ({ type: "publish", ...m, attributes: { nested: { a: 1 } } })),
		validMessage.map((m) => ({ type: "publish", ...m, key: "" })),
		fc.constant({ type: "publish", messages: [] }),
		// A batch with one bad message among good ones: the whole batch is refused.
		fc.tuple(fc.array(validMessage, { minLength: 1, maxLength: 3 }), fc.nat(3)).map(([ms, i]) => ({
			type: "publish",
			messages: ms.toSpliced(i % (ms.length + 1), 0, { attributes: {} } as (typeof ms)[number]),
		})),
	);

	it("the object answers every frame; valid publishes store exactly the non-duplicates, invalid ones nothing", async () => {
		const topic = uniqueTopic("fuzzws");
		const sock = await TestSocket.open(topic);
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		/** The model: keys seen (the dedupe window is far longer than this test), and messages stored. */
		const seen = new Set<string>();
		let stored = 0;
		let n = 0;
		const cases = fc.oneof(
			validFrame.map((v) => ({ valid: true as const, ...v })),
			invalidFrame.map((frame) => ({ valid: false as const, frame, messages: [] as Sent[] })),
		);
		let valid = 0;
		let invalid = 0;
		await fc.assert(
			fc.asyncProperty(cases, fc.boolean(), async (c, fresh) => {
				const ref = `r${++n}`;
				// Half the cases use keys of their own: a key repeated inside the frame is then new to the server.
				if (fresh && c.valid) {
					const frame = c.frame as { key?: string; messages?: Sent[] };
					for (const m of c.messages) if (m.key !== undefined) m.key = `${ref}:${m.key}`;
					if (frame.key !== undefined) frame.key = `${ref}:${frame.key}`;
				}
				const text =
					typeof c.frame === "string"
						? c.frame
						: JSON.stringify(
								c.frame !== null && typeof c.frame === "object" && !Array.isArray(c.frame)
									? { ...c.frame, ref }
									: c.frame,
							);
				sock.send(text);
				const answer = await sock.waitFor(
					() => sock.frames.filter((f) => f.type === "error" || f.type === "published")[n - 1],
					`an answer to ${text.slice(0, 200)}`,
				);
				expect(sock.closed).toBeUndefined();
				if (!c.valid) {
					invalid++;
					expect(answer.type, text).toBe("error");
					expect(Object.keys(ERROR_STATUS)).toContain(answer.code);
					return;
				}
				valid++;
				expect(answer, text).toMatchObject({ type: "published", ref });
				const results: Array<{ duplicate?: boolean }> = "messages" in (c.frame as object) ? answer.messages : [answer];
				expect(results).toHaveLength(c.messages.length);
				c.messages.forEach((m, i) => {
					const duplicate = m.key !== undefined && seen.has(m.key);
					if (m.key !== undefined) seen.add(m.key);
					if (!duplicate) stored++;
					expect(results[i]?.duplicate === true, `message ${i} of ${text}`).toBe(duplicate);
				});
			}),
			RUNS,
		);
		// Both kinds ran, in numbers.
		expect(valid).toBeGreaterThan(RUNS.numRuns / 4);
		expect(invalid).toBeGreaterThan(RUNS.numRuns / 4);
		const s = await stats(topic);
		expect(stored).toBeGreaterThan(0);
		// Stored now or delayed, and nothing from a rejected frame.
		expect(s.head_seq + s.delayed).toBe(stored);
		sock.close();
	});

	it("frames of any shape are answered once each and never close the socket", async () => {
		const topic = uniqueTopic("fuzzws");
		const sock = await TestSocket.open(topic);
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		// A `received` frame is the one frame with no answer: left out here.
		const anyFrame = frameLike.filter((t) => !/"received"/.test(t));
		let answered = 0;
		await fc.assert(
			fc.asyncProperty(anyFrame, async (text) => {
				sock.send(text);
				answered++;
				await sock.waitFor(
					() => sock.frames.filter((f) => f.type === "error" || f.type === "published").length >= answered,
					"an answer",
				);
				expect(sock.closed).toBeUndefined();
			}),
			{ numRuns: 60 },
		);
		sock.close();
	});
});

describe("filters", () => {
	const scalar = fc.oneof(fc.constantFrom("a", "ab", "b", "", "abc"), fc.integer({ min: -3, max: 3 }), fc.boolean());
	const op = fc.constantFrom("=", "<", "<=", ">", ">=");
	const condition = fc.oneof(
		scalar,
		fc.record({ prefix: fc.constantFrom("", "a", "ab", "x") }),
		fc.record({
			"anything-but": fc.oneof(
				scalar,
				fc.array(scalar, { minLength: 1, maxLength: 3 }),
				fc.record({ prefix: fc.constantFrom("a", "b") }),
			),
		}),
		fc
			.oneof(
				fc.tuple(op, fc.integer({ min: -3, max: 3 })),
				fc.tuple(op, fc.integer({ min: -3, max: 3 }), op, fc.integer({ min: -3, max: 3 })),
			)
			.map((numeric) => ({ numeric })),
		fc.record({ exists: fc.boolean() }),
	);
	// Names of Object.prototype among them: a filter keeps such keys and matches them as any other.
	const keys = fc.constantFrom("k1", "k2", "k3", "__proto__", "constructor", "prototype");
	const filter = fc.dictionary(keys, fc.oneof(condition, fc.array(condition, { minLength: 1, maxLength: 3 })), {
		minKeys: 1,
	});
	const attrs = fc.dictionary(keys, scalar);

	/** A reference matcher written from the SNS rules, independent of src/protocol/filter.ts. */
	function reference(f: Record<string, unknown>, a: Record<string, unknown>): boolean {
		const cmp = (o: string, x: number, y: number) =>
			o === "=" ? x === y : o === "<" ? x < y : o === "<=" ? x <= y : o === ">" ? x > y : x >= y;
		const one = (c: unknown, has: boolean, val: unknown): boolean => {
			if (c !== null && typeof c === "object" && "exists" in c) return has === (c as { exists: boolean }).exists;
			if (!has) return false;
			if (typeof c !== "object" || c === null) return val === c;
			if ("prefix" in c) return typeof val === "string" && val.indexOf((c as { prefix: string }).prefix) === 0;
			if ("numeric" in c) {
				const n = (c as { numeric: Array<string | number> }).numeric;
				if (typeof val !== "number") return false;
				for (let i = 0; i < n.length; i += 2) if (!cmp(n[i] as string, val, n[i + 1] as number)) return false;
				return true;
			}
			const but = (c as { "anything-but": unknown })["anything-but"];
			if (Array.isArray(but)) return but.every((b) => b !== val);
			if (but !== null && typeof but === "object")
				return !(typeof val === "string" && val.indexOf((but as { prefix: string }).prefix) === 0);
			return but !== val;
		};
		return Object.entries(f).every(([k, conds]) => {
			const has = Object.hasOwn(a, k);
			return (Array.isArray(conds) ? conds : [conds]).some((c) => one(c, has, a[k]));
		});
	}

	it("every generated filter is valid and matches as the reference does", () => {
		fc.assert(
			fc.property(filter, attrs, (f, a) => {
				const parsed = v.safeParse(FilterSchema, f);
				expect(parsed.success).toBe(true);
				expect(matchesFilter(parsed.output as Filter, a)).toBe(reference(f, a));
			}),
			{ numRuns: 3000 },
		);
	});

	it("the schema never throws on arbitrary input", () => {
		fc.assert(
			fc.property(fc.anything(), (x) => {
				v.safeParse(FilterSchema, x);
			}),
			{ numRuns: 1000 },
		);
	});
});
