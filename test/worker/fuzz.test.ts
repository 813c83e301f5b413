/**
 * Hostile input everywhere (fast-check): every HTTP body and query parameter,
 * every frame, filters and tokens, against the real Worker and object. Never
 * a 5xx, never a closed socket, never a state change from a rejected input.
 * Each property prints how many cases it ran.
 */
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { ERROR_STATUS } from "../../src/protocol/errors.js";
import { parseClientFrame } from "../../src/protocol/schema.js";
import { mintToken } from "../../src/tokens/index.js";
import { app } from "../../src/worker/app.js";
import { api, call, stats, TestSocket, uniqueTopic } from "./helpers.js";

const ADMIN_KEY = "admin-key-for-tests-0123456789";
const SECRET = "token-secret-for-tests-0123456789";
const prod = { ...env, TIDINGS_ALLOW_ANONYMOUS: undefined, TIDINGS_ADMIN_KEY: ADMIN_KEY, TIDINGS_TOKEN_SECRET: SECRET };
const RUNS = 120;
const counts: Record<string, number> = {};

afterAll(() => {
	const total = Object.values(counts).reduce((a, b) => a + b, 0);
	console.log(
		`fuzz: ${total} cases: ${Object.entries(counts)
			.map(([k, n]) => `${k} ${n}`)
			.join(", ")}`,
	);
});

function count(name: string): void {
	counts[name] = (counts[name] ?? 0) + 1;
}

const junk = fc.oneof(
	fc.anything(),
	fc.jsonValue({ maxDepth: 3 }),
	fc.record(
		{
			max_retries: fc.oneof(fc.integer({ min: -5, max: 200 }), fc.anything()),
			retry_delay_ms: fc.oneof(fc.integer(), fc.double()),
			backoff: fc.constantFrom("fixed", "exponential", "x", 1),
			ack_timeout_ms: fc.integer({ min: -1, max: 100_000 }),
			start: fc.constantFrom("latest", "earliest", "never"),
			filter: fc.oneof(fc.anything(), fc.dictionary(fc.string({ maxLength: 3 }), fc.anything(), { maxKeys: 3 })),
			dead_letter_topic: fc.oneof(fc.string({ maxLength: 10 }), fc.constant(null)),
			push: fc.anything(),
			seqs: fc.oneof(fc.array(fc.integer({ min: -2, max: 5 }), { maxLength: 5 }), fc.anything()),
			max: fc.oneof(fc.integer({ min: -1, max: 200 }), fc.anything()),
			lease: fc.oneof(
				fc.string({ maxLength: 50 }),
				fc.uuid().map((u) => `pull:${u}`),
			),
			error: fc.oneof(fc.string({ maxLength: 20 }), fc.integer()),
			topics: fc.oneof(fc.anything(), fc.dictionary(fc.string({ maxLength: 6 }), fc.anything(), { maxKeys: 3 })),
			ttl_s: fc.oneof(fc.integer(), fc.anything()),
			max_messages: fc.oneof(fc.integer(), fc.anything()),
			max_sockets: fc.oneof(fc.integer(), fc.anything()),
		},
		{ requiredKeys: [] },
	),
);

async function expectClean(res: Response, name: string): Promise<void> {
	count(name);
	expect(res.status, name).toBeLessThan(500);
	if (res.status >= 400) {
		const body = (await res.json()) as { error: { code: string } };
		expect(Object.keys(ERROR_STATUS)).toContain(body.error.code);
	} else await res.arrayBuffer();
}

describe("HTTP bodies and queries (fuzz)", () => {
	it("group, pull, ack, nack, redrive, settings and token bodies never give a 5xx, and a rejected one changes nothing", async () => {
		const topic = uniqueTopic("fuzz");
		expect((await call("PUT", `/v1/topics/${topic}/groups/g`, {})).status).toBe(201);
		const routes: Array<[string, string]> = [
			["PUT", `/v1/topics/${topic}/groups/h`],
			["POST", `/v1/topics/${topic}/groups/g/pull`],
			["POST", `/v1/topics/${topic}/groups/g/ack`],
			["POST", `/v1/topics/${topic}/groups/g/nack`],
			["POST", `/v1/topics/${topic}/groups/g/dlq/redrive`],
			["PUT", `/v1/topics/${topic}`],
			["POST", "/v1/tokens"],
		];
		// The topic's whole visible state: settings, every group with its settings and counts.
		const snapshot = async () => JSON.stringify(await (await api(`/v1/topics/${topic}`)).json());
		let state = await snapshot();
		await fc.assert(
			fc.asyncProperty(fc.constantFrom(...routes), junk, async ([method, path], body) => {
				const res = await app.fetch(
					new Request(`http://tidings.test${path}`, {
						method,
						headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" },
						body: JSON.stringify(body) ?? "null",
					}),
					prod,
				);
				await expectClean(res, `${method} ${path.replace(topic, ":topic")}`);
				const after = await snapshot();
				if (res.status >= 400) expect(after, "a rejected request changed nothing").toBe(state);
				state = after;
			}),
			{ numRuns: RUNS * 3 },
		);
	}, 120_000);

	it("query parameters on every GET never give a 5xx", async () => {
		const topic = uniqueTopic("fuzz");
		await api(`/v1/topics/${topic}/groups/g`, {
			method: "PUT",
			headers: { "Content-Type": "application/json" },
			body: "{}",
		});
		const param = fc.tuple(
			fc.constantFrom("after", "limit", "from", "filter", "group", "prefetch", "token", "x"),
			fc.string({ maxLength: 20 }),
		);
		await fc.assert(
			fc.asyncProperty(
				fc.constantFrom(`/v1/topics/${topic}/messages`, `/v1/topics/${topic}/groups/g/dlq`, `/v1/topics/${topic}`),
				fc.array(param, { maxLength: 4 }),
				async (path, params) => {
					const res = await api(`${path}?${new URLSearchParams(params)}`);
					await expectClean(res, "GET query");
				},
			),
			{ numRuns: RUNS },
		);
	});
});

describe("tokens (fuzz)", () => {
	it("any credential string is a 401 or a granted request, never a 5xx or an echo", async () => {
		const topic = uniqueTopic("fuzz");
		const good = (await mintToken(SECRET, { topics: { [topic]: ["subscribe"] } })).token;
		const mangled = fc
			.tuple(fc.nat({ max: good.length - 1 }), fc.string({ minLength: 1, maxLength: 3 }))
			.map(([i, s]) => good.slice(0, i) + s + good.slice(i + s.length));
		await fc.assert(
			fc.asyncProperty(fc.oneof(fc.string({ minLength: 1, maxLength: 200 }), mangled), async (credential) => {
				fc.pre(/^[\x21-\x7e]+$/.test(credential));
				const res = await app.fetch(
					new Request(`http://tidings.test/v1/topics/${topic}/messages`, {
						headers: { Authorization: `Bearer ${credential}` },
					}),
					prod,
				);
				count("token");
				expect([200, 401]).toContain(res.status);
				const text = await res.text();
				if (res.status === 401 && credential.length > 8) expect(text).not.toContain(credential);
			}),
			{ numRuns: RUNS * 2 },
		);
	});
});

describe("frames on group sockets (fuzz)", () => {
	it("ack and nack frames of any shape are answered or ignored, the socket stays open, nothing is stored", async () => {
		const topic = uniqueTopic("fuzz");
		await api(`/v1/topics/${topic}/groups/g`, {
			method: "PUT",
			headers: { "Content-Type": "application/json" },
			body: "{}",
		});
		const sock = await TestSocket.open(topic, "group=g&prefetch=5");
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		const frame = fc.oneof(
			fc
				.record(
					{
						type: fc.constantFrom("ack", "nack", "drain"),
						seq: fc.oneof(fc.integer({ min: -3, max: 10 }), fc.anything()),
						ref: fc.anything(),
						delay_ms: fc.anything(),
						error: fc.anything(),
						x: fc.anything(),
					},
					{ requiredKeys: ["type"] },
				)
				.map((o) => JSON.stringify(o)),
			fc.string({ maxLength: 30 }),
		);
		let errors = 0;
		await fc.assert(
			fc.asyncProperty(frame, async (text) => {
				count("group frame");
				sock.send(text);
				// A valid drain is the one frame with no answer.
				const parsed = parseClientFrame(text);
				if (parsed.ok && parsed.frame.type === "drain") return;
				errors++;
				// Every frame here is an error (nothing is leased): wait for its answer.
				await sock.waitFor(() => sock.frames.filter((f) => f.type === "error").length >= errors, "an error frame");
				expect(sock.closed).toBeUndefined();
			}),
			{ numRuns: RUNS },
		);
		expect((await stats(topic)).head_seq).toBe(0);
		sock.close();
	});
});
