/**
 * Who may do what: every right against every endpoint and frame, with the
 * Worker configured as in production (admin key and token secret, no
 * anonymous access).
 */

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Hono } from "hono";
import { sign } from "hono/jwt";
import { describe, expect, it } from "vitest";
import type { Right } from "../../src/protocol/rights.js";
import { mintToken } from "../../src/tokens/index.js";
import { app } from "../../src/worker/app.js";
import { limitKeyOf } from "../../src/worker/auth.js";
import type { AppEnv } from "../../src/worker/env.js";
import { call, stats, TestSocket, topicStub, uniqueTopic, upgrade } from "./helpers.js";

const ADMIN_KEY = "admin-key-for-tests-0123456789";
const SECRET = "token-secret-for-tests-0123456789";
const prod = { ...env, TIDINGS_ALLOW_ANONYMOUS: undefined, TIDINGS_ADMIN_KEY: ADMIN_KEY, TIDINGS_TOKEN_SECRET: SECRET };

/** The Worker configured as in production, called with `credential` (or none). */
const as = (credential?: string) => ({ token: credential, env: prod });

async function token(topics: Record<string, Right[]>, ttl_s = 300) {
	return (await mintToken(SECRET, { topics, ttl_s })).token;
}

/** Every endpoint with the right it needs. */
function endpoints(topic: string): Array<[string, string, unknown, Right]> {
	const g = `/v1/topics/${topic}/groups/g`;
	return [
		["POST", `/v1/topics/${topic}/messages`, { data: 1 }, "publish"],
		["GET", `/v1/topics/${topic}/messages`, undefined, "subscribe"],
		["GET", `/v1/topics/${topic}`, undefined, "subscribe"],
		["GET", `/v1/topics/${topic}/groups`, undefined, "consume"],
		["PUT", `/v1/topics/${topic}`, { max_messages: 100 }, "admin"],
		["PUT", g, {}, "admin"],
		["GET", g, undefined, "consume"],
		["POST", `${g}/pull`, {}, "consume"],
		["POST", `${g}/ack`, { seqs: [1] }, "consume"],
		["POST", `${g}/nack`, { seqs: [1] }, "consume"],
		["GET", `${g}/dlq`, undefined, "consume"],
		["POST", `${g}/dlq/redrive`, {}, "admin"],
		["DELETE", `${g}/dlq`, undefined, "admin"],
		["DELETE", g, undefined, "admin"],
		["DELETE", `/v1/topics/${topic}`, undefined, "admin"],
	];
}

describe("rights on every endpoint", () => {
	it("each right opens exactly its endpoints, on the topics its pattern matches", async () => {
		const topic = uniqueTopic("auth");
		expect((await call("PUT", `/v1/topics/${topic}/groups/g`, {}, as(ADMIN_KEY))).status).toBe(201);
		for (const right of ["publish", "subscribe", "consume", "admin"] as Right[]) {
			const mine = await token({ [`${topic.split(".")[0]}.*`]: [right] });
			const elsewhere = await token({ "other.*": [right] });
			for (const [method, path, body, needed] of endpoints(topic)) {
				// Deleting the group with the right would remove it for the next rounds: checked at the end.
				if (method === "DELETE" && right === "admin" && (path.endsWith("/groups/g") || path.endsWith(topic))) continue;
				const res = await call(method, path, body, as(mine));
				if (needed === right) {
					expect(res.status, `${right} → ${method} ${path}`).not.toBe(403);
					expect(res.status, `${right} → ${method} ${path}`).not.toBe(401);
				} else expect(res.status, `${right} → ${method} ${path}`).toBe(403);
				const other = await call(method, path, body, as(elsewhere));
				expect(other.status, `${right} on other.* → ${method} ${path}`).toBe(403);
				const answer = other.body as { error: { code: string; message: string } };
				expect(answer.error.code).toBe("forbidden");
			}
		}
		// The admin key may do everything (the topic's delete comes last, and takes the group with it).
		for (const [method, path, body] of endpoints(topic)) {
			const res = await call(method, path, body, as(ADMIN_KEY));
			expect(res.status, `admin key → ${method} ${path}`).toBeLessThan(400);
		}
		// And an admin token may delete a group.
		expect((await call("PUT", `/v1/topics/${topic}/groups/g`, {}, as(ADMIN_KEY))).status).toBe(201);
		const admin = await token({ [`${topic.split(".")[0]}.*`]: ["admin"] });
		expect((await call("DELETE", `/v1/topics/${topic}/groups/g`, undefined, as(admin))).status).toBeLessThan(300);
		// And delete the topic.
		expect((await call("DELETE", `/v1/topics/${topic}`, undefined, as(admin))).status).toBe(200);
	});

	it("aims dead letters only at topics the token may publish to (or administer)", async () => {
		const topic = uniqueTopic("tenant-a");
		const put = (t: string, dead_letter_topic: string) =>
			call("PUT", `/v1/topics/${topic}/groups/g`, { dead_letter_topic }, as(t));
		const adminHere = await token({ "tenant-a.>": ["admin"] });
		const denied = await put(adminHere, "tenant-b.dlq");
		expect(denied.status).toBe(403);
		expect((denied.body as { error: { message: string } }).error.message).toMatch(/dead_letter_topic tenant-b\.dlq/);
		expect((await call("GET", `/v1/topics/${topic}/groups/g`, undefined, as(ADMIN_KEY))).status).toBe(404); // nothing was created
		expect((await put(adminHere, "tenant-a.dlq")).status).toBe(201);
		const withPublish = await token({ "tenant-a.>": ["admin"], "tenant-b.dlq": ["publish"] });
		expect((await put(withPublish, "tenant-b.dlq")).status).toBe(200);
	});

	it("answers 401 without credentials or with bad ones, 403 without the right, and never echoes them", async () => {
		const topic = uniqueTopic("auth");
		const path = `/v1/topics/${topic}/messages`;
		expect((await call("POST", path, { data: 1 }, as())).status).toBe(401);
		const bad = await call("POST", path, { data: 1 }, as("not-a-token-xyz"));
		expect(bad.status).toBe(401);
		expect(bad.text).not.toContain("not-a-token-xyz");
		const expired = (await mintToken(SECRET, { topics: { ">": ["publish"] }, ttl_s: 1 }, Date.now() - 10_000)).token;
		const expiredRes = await call("POST", path, { data: 1 }, as(expired));
		expect(expiredRes.status).toBe(401);
		expect((expiredRes.body as { error: { message: string } }).error.message).toMatch(/expired/);
		const readOnly = await token({ ">": ["subscribe"] });
		expect((await call("POST", path, { data: 1 }, as(readOnly))).status).toBe(403);
		expect((await stats(topic)).head_seq).toBe(0);
	});

	it("takes the token from the header, ?token= or the bearer subprotocol", async () => {
		const topic = uniqueTopic("auth");
		const t = await token({ [topic]: ["subscribe"] });
		expect((await call("GET", `/v1/topics/${topic}/messages`, undefined, as(t))).status).toBe(200);
		expect((await call("GET", `/v1/topics/${topic}/messages?token=${t}`, undefined, as())).status).toBe(200);
		const ws = await upgrade(topic, "", { ...as(t), via: "subprotocol" });
		expect(ws.status).toBe(101);
		// The server selects `tidings`, never echoing the token.
		expect(ws.headers.get("Sec-WebSocket-Protocol")).toBe("tidings");
		ws.webSocket?.accept();
		ws.webSocket?.close(1000);
	});

	it("issues tokens with the admin key only", async () => {
		const body = { topics: { "jobs.*": ["subscribe"] }, ttl_s: 60 };
		const issued = await call("POST", "/v1/tokens", body, as(ADMIN_KEY));
		expect(issued.status).toBe(201);
		const { token: t, expires_at } = issued.body as { token: string; expires_at: number };
		expect(expires_at).toBeGreaterThan(Date.now());
		expect((await call("GET", "/v1/topics/jobs.1/messages", undefined, as(t))).status).toBe(200);
		expect((await call("POST", "/v1/tokens", body, as(t))).status).toBe(403);
		const admin = await token({ ">": ["admin"] });
		expect((await call("POST", "/v1/tokens", body, as(admin))).status).toBe(403);
		expect((await call("POST", "/v1/tokens", { topics: { "a..b": ["publish"] } }, as(ADMIN_KEY))).status).toBe(400);
	});

	it("issues and honours tokens for topics named __proto__, constructor and prototype", async () => {
		const issue = (text: string) =>
			app.fetch(
				new Request("http://tidings.test/v1/tokens", {
					method: "POST",
					headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" },
					body: text,
				}),
				prod,
			);
		const issued = await issue(
			'{"topics":{"constructor":["publish"],"__proto__":["subscribe"],"prototype":["admin"]}}',
		);
		expect(issued.status).toBe(201);
		const { token: t } = (await issued.json()) as { token: string };
		expect((await call("POST", "/v1/topics/constructor/messages", { data: 1 }, as(t))).status).toBe(201);
		expect((await call("GET", "/v1/topics/__proto__/messages", undefined, as(t))).status).toBe(200);
		expect((await call("PUT", "/v1/topics/prototype", { max_messages: 100 }, as(t))).status).toBe(200);
		// Nothing more than granted.
		expect((await call("POST", "/v1/topics/__proto__/messages", { data: 1 }, as(t))).status).toBe(403);
		expect((await call("GET", "/v1/topics/constructor/messages", undefined, as(t))).status).toBe(403);
		expect((await call("POST", "/v1/topics/toString/messages", { data: 1 }, as(t))).status).toBe(403);
		// A reserved name is checked like any pattern, and counted.
		const bad = await issue('{"topics":{"a":["publish"],"constructor":["root"]}}');
		expect(bad.status).toBe(400);
		expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/topics\.constructor/);
		const many = `{"constructor":["publish"],${Array.from({ length: 50 }, (_, i) => `"p${i}":["publish"]`).join(",")}}`;
		const over = await issue(`{"topics":${many}}`);
		expect(over.status).toBe(400);
		expect(((await over.json()) as { error: { code: string } }).error.code).toBe("limit_exceeded");
	});
});

describe("token sub", () => {
	it("may hold any text: HTTP publishes and sockets work, and key the same publish budget", async () => {
		const now = Math.floor(Date.now() / 1000);
		const grant = (topic: string) => ({ [topic]: ["publish", "subscribe"] as Right[] });
		// The last two would collide if a backslash were not escaped like the rest.
		const subs = ["用户-😀", "x\ud800", "é", "\\u00e9"];
		const keys: string[] = [];
		for (const sub of subs) {
			const topic = uniqueTopic("auth");
			// Signed here, not minted: mintToken refuses the lone surrogate.
			const t = await sign({ topics: grant(topic), sub, iat: now, exp: now + 60 }, SECRET, "HS256");
			expect((await call("POST", `/v1/topics/${topic}/messages`, { data: 1 }, as(t))).status).toBe(201);
			const res = await upgrade(topic, "", as(t));
			expect(res.status).toBe(101);
			res.webSocket?.accept();
			const sock = new TestSocket(res.webSocket as WebSocket);
			sock.send({ type: "publish", ref: "r", data: 2 });
			expect(await sock.waitForFrame((f) => f.ref === "r", "the answer")).toMatchObject({ type: "published" });
			// HTTP publishes spend the budget limitKeyOf names; a socket's travels to the object in a header
			// and must arrive as the same key, or the two would have separate budgets.
			const probe = new Hono<AppEnv>().get("/", (c) => {
				c.set("principal", { kind: "token", claims: { topics: {}, sub, iat: now, exp: now + 60 } });
				return c.text(limitKeyOf(c) ?? "");
			});
			const httpKey = await (await probe.request("/")).text();
			expect(httpKey).toMatch(/^sub:[\x20-\x7e]+$/);
			const socketKeys = await runInDurableObject(topicStub(topic), (_i, state) =>
				state
					.getWebSockets()
					.map((ws) => (ws.deserializeAttachment() as { grant?: { limitKey?: string } }).grant?.limitKey),
			);
			expect(socketKeys).toEqual([httpKey]);
			keys.push(httpKey);
			sock.close();
		}
		// Different subs, different budgets.
		expect(new Set(keys).size).toBe(subs.length);
	});

	it("that is not a string (signed elsewhere) does not break publishing", async () => {
		const topic = uniqueTopic("auth");
		const now = Math.floor(Date.now() / 1000);
		const t = await sign({ topics: { [topic]: ["publish"] }, sub: 42, iat: now, exp: now + 60 }, SECRET, "HS256");
		expect((await call("POST", `/v1/topics/${topic}/messages`, { data: 1 }, as(t))).status).toBe(201);
	});

	it("with a lone surrogate is refused when minting", async () => {
		await expect(mintToken(SECRET, { topics: { a: ["publish"] }, sub: "u\udc00" })).rejects.toThrow(
			/sub: .*lone surrogate/,
		);
		const res = await call("POST", "/v1/tokens", { topics: { a: ["publish"] }, sub: "\ud800" }, as(ADMIN_KEY));
		expect(res.status).toBe(400);
		expect((res.body.error as { message: string }).message).toMatch(/lone surrogate/);
	});
});

describe("rights on sockets", () => {
	/** The socket, or the status that refused it. */
	async function open(topic: string, query: string, t: string) {
		const res = await upgrade(topic, query, as(t));
		if (res.status !== 101) {
			await res.body?.cancel();
			return res.status;
		}
		return TestSocket.accept(res);
	}

	it("needs subscribe for a live socket, consume for a group socket, publish for publish frames", async () => {
		const topic = uniqueTopic("auth");
		expect((await call("PUT", `/v1/topics/${topic}/groups/g`, {}, as(ADMIN_KEY))).status).toBe(201);
		const sub = await token({ [topic]: ["subscribe"] });
		const consume = await token({ [topic]: ["consume"] });
		expect(await open(topic, "", consume)).toBe(403);
		expect(await open(topic, "group=g", sub)).toBe(403);
		const live = (await open(topic, "", sub)) as TestSocket;
		await live.waitForFrame((f) => f.type === "ready", "ready");
		live.send({ type: "publish", ref: "r1", data: 1 });
		const denied = await live.waitForFrame((f) => f.type === "error", "forbidden");
		expect(denied).toMatchObject({ code: "forbidden", ref: "r1" });
		expect((await stats(topic)).head_seq).toBe(0);
		const both = (await open(topic, "", await token({ [topic]: ["subscribe", "publish"] }))) as TestSocket;
		both.send({ type: "publish", ref: "r2", data: 2 });
		expect(await both.waitForFrame((f) => f.type === "published", "published")).toMatchObject({ seq: 1 });
		const member = (await open(topic, "group=g", consume)) as TestSocket;
		expect((await member.waitForFrame((f) => f.type === "ready", "ready")).group).toBe("g");
		for (const s of [live, both, member]) s.close();
	});
});

describe("token expiry on open sockets", () => {
	// Expiry is whole seconds from the second of minting (exp = floor(now) + ttl_s): ttl_s 1 can leave a
	// token a few ms to live, so these use 2 (1–2 s left) and wait 2.1 s after the socket is open.
	it("closes a live socket (4401) when its token has expired, before sending it anything more", async () => {
		const topic = uniqueTopic("auth");
		const { token } = await mintToken(SECRET, { topics: { [topic]: ["subscribe"] }, ttl_s: 2 });
		const sock = await TestSocket.open(topic, "", as(token));
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		// Tokens carry whole seconds: wait past the expiry.
		await new Promise((r) => setTimeout(r, 2100));
		expect((await call("POST", `/v1/topics/${topic}/messages`, { data: "after expiry" }, as(ADMIN_KEY))).status).toBe(
			201,
		);
		await sock.waitFor(() => sock.closed, "closed at expiry");
		expect(sock.closed?.code).toBe(4401);
		expect(sock.messages()).toHaveLength(0);
	});

	it("refuses a publish frame after the token expired with unauthorized, stores nothing, and closes with 4401", async () => {
		const topic = uniqueTopic("auth");
		const { token } = await mintToken(SECRET, { topics: { [topic]: ["subscribe", "publish"] }, ttl_s: 2 });
		const sock = await TestSocket.open(topic, "", as(token));
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		sock.send({ type: "publish", ref: "before", data: 1 });
		await sock.waitForFrame((f) => f.type === "published", "published before expiry");
		await new Promise((r) => setTimeout(r, 2100));
		sock.send({ type: "publish", ref: "after", data: 2 });
		const refused = await sock.waitForFrame((f) => f.type === "error", "the refusal");
		expect(refused).toMatchObject({ code: "unauthorized", ref: "after", message: expect.stringMatching(/expired/) });
		await sock.waitFor(() => sock.closed, "closed");
		expect(sock.closed?.code).toBe(4401);
		expect((await stats(topic)).head_seq).toBe(1);
	});

	it("closes a group member (4401) when its token has expired, and gives it nothing more", async () => {
		const topic = uniqueTopic("auth");
		expect((await call("PUT", `/v1/topics/${topic}/groups/g`, {}, as(ADMIN_KEY))).status).toBe(201);
		const { token } = await mintToken(SECRET, { topics: { [topic]: ["consume"] }, ttl_s: 2 });
		const sock = await TestSocket.open(topic, "group=g", as(token));
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		await new Promise((r) => setTimeout(r, 2100));
		expect((await call("POST", `/v1/topics/${topic}/messages`, { data: "job" }, as(ADMIN_KEY))).status).toBe(201);
		await sock.waitFor(() => sock.closed, "closed at expiry");
		expect(sock.closed?.code).toBe(4401);
		expect(sock.messages()).toHaveLength(0);
		// The job waits for a member with a valid token.
		const info = (await call("GET", `/v1/topics/${topic}/groups/g`, undefined, as(ADMIN_KEY))).body as {
			counts: { pending: number };
		};
		expect(info.counts.pending).toBe(1);
	});
});
