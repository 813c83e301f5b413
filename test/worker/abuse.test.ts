/** Limits on what a client can make the server do: push targets, CORS, sockets per topic. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { CLOSE_CODES } from "../../src/protocol/errors.js";
import { LIMITS } from "../../src/protocol/limits.js";
import { mintToken } from "../../src/tokens/index.js";
import { app } from "../../src/worker/app.js";
import { pushUrlProblem } from "../../src/worker/push-url.js";
import { api, call, TestSocket, uniqueTopic } from "./helpers.js";

const ADMIN_KEY = "admin-key-for-tests-0123456789";
const SECRET = "token-secret-for-tests-0123456789";
const prod = { ...env, TIDINGS_ALLOW_ANONYMOUS: undefined, TIDINGS_ADMIN_KEY: ADMIN_KEY };
const withTokens = { ...prod, TIDINGS_TOKEN_SECRET: SECRET };

describe("push targets", () => {
	it("are public https hosts in production; http to localhost only in local development", () => {
		for (const ok of [
			"https://hooks.example.com/x",
			"https://hooks.example.com./x",
			"https://1.2.3.4/x",
			"https://[2606:4700::1111]/",
			"https://[::ffff:1.2.3.4]/",
			"https://[64:ff9b::1.2.3.4]/",
			"https://[2002:102:304::1]/",
		]) {
			expect(pushUrlProblem(ok, false), ok).toBeUndefined();
		}
		const refused = [
			"http://hooks.example.com/x",
			"https://localhost/x",
			"https://127.0.0.1/x",
			"https://10.1.2.3/",
			"https://172.16.0.1/",
			"https://172.31.255.255/",
			"https://192.168.1.1/",
			"https://169.254.169.254/latest/meta-data",
			"https://100.64.0.1/",
			"https://0.0.0.0/",
			"https://[::1]/",
			"https://[fd00::1]/",
			"https://[fe80::1]/",
			"https://[::ffff:10.0.0.1]/",
			// IPv4-translated (::ffff:0:0:0/96) and the rest of ::/64: not globally routable, whatever IPv4 they embed.
			"https://[::ffff:0:7f00:1]/",
			"https://[::ffff:0:127.0.0.1]/",
			"https://[::ffff:0:102:304]/",
			"https://[0:0:0:0:ffff:0:a00:1]/",
			"https://[::1:0:0:1]/",
			"https://[::1:ffff:102:304]/",
			"https://[::abcd:1:2:3]/",
			"https://[0:0:0:0:ffff:ffff:ffff:ffff]/",
			// In 64:ff9b::/32 but outside the NAT64 prefix 64:ff9b::/96: not routable either.
			"https://[64:ff9b:0:0:1:0:102:304]/",
			"https://[::]/",
			"https://[::10.0.0.1]/",
			"https://[::1.2.3.4]/",
			"https://[64:ff9b::a00:1]/",
			"https://[64:ff9b:1::1]/",
			"https://[2002:a00:1::1]/",
			"https://[fec0::1]/",
			"https://[ff02::1]/",
			"https://[100::1]/",
			"https://[2001:db8::1]/",
			"https://printer.local/",
			"https://db.internal/",
			"https://db.internal./",
			"https://localhost./",
			"https://127.0.0.1./",
			"https://user:pass@example.com/",
			"ftp://example.com/",
		];
		for (const url of refused) expect(pushUrlProblem(url, false), url).toEqual(expect.any(String));
		expect(pushUrlProblem("http://127.0.0.1:8080/hook", true)).toBeUndefined();
		expect(pushUrlProblem("http://localhost:8080/hook", true)).toBeUndefined();
		expect(pushUrlProblem("http://10.0.0.1/hook", true)).toEqual(expect.any(String));
	});

	it("are checked when a group is configured, with a clear 400", async () => {
		const topic = uniqueTopic();
		const res = await call(
			"PUT",
			`/v1/topics/${topic}/groups/g`,
			{ push: { url: "https://169.254.169.254/", secret: "a-long-enough-push-secret" } },
			{ token: ADMIN_KEY, env: prod },
		);
		expect(res.status).toBe(400);
		expect((res.body as { error: { message: string } }).error.message).toMatch(/public host/);
		expect((await api(`/v1/topics/${topic}/groups/g`)).status).toBe(404);
	});
});

describe("CORS", () => {
	const preflight = (origin: string, e: object) =>
		app.fetch(
			new Request("http://tidings.test/v1/topics/a/messages", {
				method: "OPTIONS",
				headers: { Origin: origin, "Access-Control-Request-Method": "POST" },
			}),
			e,
		);

	it("allows no origin in production by default, the configured ones when set, all in local development", async () => {
		expect((await preflight("https://app.example", prod)).headers.get("Access-Control-Allow-Origin")).toBeNull();
		const configured = { ...prod, TIDINGS_CORS_ORIGINS: "https://app.example, https://admin.example" };
		expect((await preflight("https://app.example", configured)).headers.get("Access-Control-Allow-Origin")).toBe(
			"https://app.example",
		);
		expect((await preflight("https://evil.example", configured)).headers.get("Access-Control-Allow-Origin")).toBeNull();
		expect((await preflight("https://any.example", env)).headers.get("Access-Control-Allow-Origin")).toBe(
			"https://any.example",
		);
	});
});

describe("sockets per topic", () => {
	it("refuses sockets past max_sockets with 429, without Retry-After", async () => {
		const topic = uniqueTopic();
		const put = await call("PUT", `/v1/topics/${topic}`, { max_sockets: 2 });
		expect(put.status).toBe(200);
		const a = await TestSocket.open(topic);
		const b = await TestSocket.open(topic);
		const third = await api(`/v1/topics/${topic}/ws`, { headers: { Upgrade: "websocket" } });
		expect(third.status).toBe(429);
		// A place frees when a socket closes, not after a second: no Retry-After (docs/http-api.md).
		expect(third.headers.get("Retry-After")).toBeNull();
		expect(((await third.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
		a.close();
		await a.waitFor(() => a.closed, "closed");
		// A freed place is taken again.
		const c = await TestSocket.open(topic);
		for (const s of [b, c]) s.close();
	});
});

describe("rate limits", () => {
	it("refuse a token socket's frames past its rate with rate_limited, then close a socket that keeps flooding", async () => {
		const e = withTokens;
		const topic = uniqueTopic();
		const { token } = await mintToken(SECRET, { topics: { [topic]: ["subscribe"] } });
		const sock = await TestSocket.open(topic, "", { token, via: "query", env: e });
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		// Flood faster than the refill: frames past the burst are dropped with a rate_limited
		// error (not answered one by one), and a socket that keeps going is closed.
		let sent = 0;
		for (; !sock.closed && sent < 200_000; sent += 500) {
			for (let i = 0; i < 500; i++) sock.send("{}");
			await new Promise((r) => setTimeout(r, 1));
		}
		await sock.waitFor(() => sock.closed, "closed for flooding");
		const limited = sock.frames.find((f) => f.code === "rate_limited");
		expect(limited?.message).toMatch(/frames a second/);
		const answered = sock.frames.filter((f) => f.code === "unknown_frame").length;
		expect(answered).toBeLessThan(sent);
		expect(sock.closed?.code).toBe(CLOSE_CODES.rateLimited);
	});

	it("limit a token's publishes on a socket too: past the budget, publish frames get rate_limited and store nothing", async () => {
		const topic = uniqueTopic();
		const { token } = await mintToken(SECRET, { topics: { [topic]: ["subscribe", "publish"] }, sub: "socket-flooder" });
		const sock = await TestSocket.open(topic, "", { token, via: "query", env: withTokens });
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		const batch = Array.from({ length: 100 }, (_, i) => ({ data: i }));
		// 5,000 messages at once: past the burst (2,000) plus what a second refills (1,000) however slowly
		// a loaded machine stores them; with 2,500 a slow run could stay within the budget.
		for (let i = 0; i < 50; i++) sock.send({ type: "publish", ref: `b${i}`, messages: batch });
		await sock.waitFor(
			() => sock.frames.filter((f) => (f.type === "published" || f.type === "error") && f.ref).length === 50,
			"50 answers",
		);
		const answers = sock.frames.filter((f) => f.ref);
		const refused = answers.filter((f) => f.type === "error");
		expect(answers.slice(0, 20).every((f) => f.type === "published")).toBe(true);
		expect(refused.length).toBeGreaterThan(0);
		expect(refused.every((f) => f.code === "rate_limited" && /messages a second/.test(f.message))).toBe(true);
		const stored = answers.filter((f) => f.type === "published").length * 100;
		const stats = (await (await api(`/v1/topics/${topic}`)).json()) as { head_seq: number };
		expect(stats.head_seq).toBe(stored);
		expect(sock.closed).toBeUndefined();
		// Keeping on past the budget is abuse like frame flooding: 1,000 refusals in 10 s close the socket.
		for (let i = 0; i < LIMITS.socketRefusedBeforeClose + 50 && !sock.closed; i++) {
			sock.send({ type: "publish", ref: `x${i}`, messages: batch });
			if (i % 100 === 99) await new Promise((r) => setTimeout(r, 1));
		}
		await sock.waitFor(() => sock.closed, "closed for publishing past the budget");
		expect(sock.closed?.code).toBe(CLOSE_CODES.rateLimited);
	});

	it("do not limit sockets opened with the admin key (or in local development)", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic);
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		for (let i = 0; i < LIMITS.socketFramesBurst + 500; i++) sock.send({ type: "publish", ref: `r${i}`, data: i });
		await sock.waitFor(
			() => sock.frames.filter((f) => f.type === "published").length === LIMITS.socketFramesBurst + 500,
			"every publish answered",
			20_000,
		);
		expect(sock.frames.some((f) => f.code === "rate_limited")).toBe(false);
		sock.close();
	});

	it("limit a token's publishes per topic over HTTP (429 with Retry-After); the admin key is not limited", async () => {
		const e = withTokens;
		const topic = uniqueTopic();
		const { token } = await mintToken(SECRET, { topics: { [topic]: ["publish"] }, sub: "flooder" });
		const post = (credential: string) =>
			call(
				"POST",
				`/v1/topics/${topic}/messages`,
				{ messages: Array.from({ length: 100 }, (_, i) => ({ data: i })) },
				{ token: credential, env: e },
			);
		const statuses: number[] = [];
		let refused: Awaited<ReturnType<typeof post>> | undefined;
		for (let i = 0; i < 25; i++) {
			const res = await post(token);
			statuses.push(res.status);
			if (res.status === 429) refused ??= res;
		}
		expect(statuses.slice(0, 20).every((s) => s === 201)).toBe(true);
		expect(statuses.indexOf(429)).toBeGreaterThanOrEqual(20);
		if (!refused) throw new Error("no 429 among the answers");
		expect(refused.headers.get("Retry-After")).toBe("1");
		expect((refused.body as { error: { code: string } }).error.code).toBe("rate_limited");
		for (let i = 0; i < 30; i++) expect((await post(ADMIN_KEY)).status).toBe(201);
	});
});
