/**
 * What users get from the build: the browser bundle (size, self-contained,
 * served by the Worker at /tidings.js with CORS), the package entry points
 * through the exports map (`tidings/client` with its Node condition,
 * `tidings/tokens`) and their type declarations. `npm test` builds first
 * (pretest); run `node scripts/build.mjs` before running this file alone.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, freePort, startDev } from "./wrangler-dev.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BUNDLE = path.join(ROOT, "public/tidings.js");
const GZIP_BUDGET = 8192;
/** What both the browser bundle and `tidings/client` export. */
const CLIENT_EXPORTS = ["CLOSE_CODES", "FallbackOutbox", "IndexedDbOutbox", "MemoryOutbox", "Tidings", "TidingsError"];

/**
 * The public members of each exported class, as docs/client.md documents them:
 * what its emitted declaration may show (constructors included, `#private` not).
 */
const PUBLIC_MEMBERS: Record<string, { file: string; members: string[] }> = {
	Tidings: {
		file: "tidings.d.ts",
		members: [
			"constructor",
			"url",
			"WebSocket",
			"heartbeatMs",
			"state",
			"on",
			"outbox",
			"publish",
			"subscribe",
			"topic",
			"consume",
			"close",
			"flush",
		],
	},
	Subscription: { file: "subscription.d.ts", members: ["constructor", "topic", "lastSeq", "state", "close"] },
	Consumer: { file: "consumer.d.ts", members: ["constructor", "topic", "state", "busy", "stop", "close"] },
	TidingsError: { file: "errors.d.ts", members: ["constructor", "name", "code", "status", "retryable"] },
	MemoryOutbox: { file: "outbox.d.ts", members: ["add", "peek", "remove", "size", "clear"] },
	FallbackOutbox: { file: "outbox.d.ts", members: ["constructor", "add", "peek", "remove", "size", "clear"] },
	IndexedDbOutbox: {
		file: "outbox-idb.d.ts",
		members: ["constructor", "name", "add", "peek", "remove", "size", "clear"],
	},
};
/** Names the client uses inside, which once leaked into the published types. */
const INTERNAL_NAMES = [
	"emit",
	"call",
	"link",
	"update",
	"reachable",
	"token",
	"backoff",
	"request",
	"requestTimeoutMs",
	"options",
	"links",
	"handlers",
	"box",
	"waiters",
	"channel",
	"flushing",
	"draining",
	"again",
	"single",
	"down",
	"closed",
	"closing",
	"resume",
	"drain",
	"settle",
	"queued",
	"lock",
	"chain",
	"handler",
	"queue",
	"running",
	"stopped",
	"entries",
	"durable",
	"memory",
	"db",
];

/** The member names a class declares in an emitted `.d.ts` (top level of its body, comments skipped). */
function declaredMembers(file: string, cls: string): string[] {
	const lines = readFileSync(path.join(ROOT, "dist/types/client", file), "utf8").split("\n");
	const start = lines.findIndex((l) => new RegExp(`^export declare class ${cls}\\b`).test(l));
	expect(start, `class ${cls} in ${file}`).toBeGreaterThanOrEqual(0);
	const names: string[] = [];
	for (const line of lines.slice(start + 1)) {
		if (line === "}") break;
		// Members are indented by exactly four spaces; deeper lines belong to a member's type or comment.
		const m =
			/^ {4}(?:(?:readonly|static|protected|private|public|get|set|abstract|override|declare) )*(#?[\w$]+)/.exec(line);
		if (m?.[1] && m[1] !== "#private") names.push(m[1]);
	}
	return [...new Set(names)];
}

/** Runs an ES module in a fresh `node` from the repository root (the package resolves itself there); returns its JSON output. */
function nodeEval(source: string): unknown {
	const out = execFileSync(process.execPath, ["--input-type=module", "-e", source], {
		cwd: ROOT,
		encoding: "utf8",
		timeout: 30_000,
	});
	return JSON.parse(out);
}

describe("the browser bundle public/tidings.js", () => {
	it(`exists and is at most ${GZIP_BUDGET} bytes gzipped (-9)`, () => {
		expect(existsSync(BUNDLE), "public/tidings.js is built by `node scripts/build.mjs`").toBe(true);
		const raw = readFileSync(BUNDLE);
		const gz = gzipSync(raw, { level: 9 }).length;
		console.log(`public/tidings.js: ${raw.length} bytes, ${gz} bytes gzip -9 (budget ${GZIP_BUDGET})`);
		expect(raw.length).toBeGreaterThan(1000);
		expect(gz).toBeLessThanOrEqual(GZIP_BUDGET);
	});

	it("is self-contained (no bare imports) and exports the client", () => {
		const src = readFileSync(BUNDLE, "utf8");
		// esbuild bundled everything: no `import ... from "pkg"` or `import("pkg")` of a package left.
		expect(src).not.toMatch(/\bfrom\s*["'][^"'./]/);
		expect(src).not.toMatch(/\bimport\s*\(\s*["'][^"'./]/);
		const names = nodeEval(
			`const m = await import(${JSON.stringify(pathToFileURL(BUNDLE).href)}); console.log(JSON.stringify(Object.keys(m).sort()));`,
		);
		expect(names).toEqual(expect.arrayContaining(CLIENT_EXPORTS));
		expect(names).not.toContain("verifyPush"); // push receivers import it from tidings/client, not pages
	});
});

describe("package entry points", () => {
	it("a real `node` resolves tidings/client to the Node build, which exports the client and constructs", () => {
		const result = nodeEval(`
			const resolved = import.meta.resolve("tidings/client");
			const m = await import("tidings/client");
			const t = new m.Tidings({ url: "http://127.0.0.1:1" });
			const ok = t.url === "http://127.0.0.1:1" && typeof t.publish === "function";
			await t.close();
			const e = new m.TidingsError("network", "x");
			console.log(JSON.stringify({
				resolved,
				keys: Object.keys(m).sort(),
				ok,
				state: t.state,
				error: e instanceof Error && e.code,
				closeCodes: typeof m.CLOSE_CODES,
				memory: await new m.MemoryOutbox().size(),
			}));
		`) as {
			resolved: string;
			keys: string[];
			ok: boolean;
			state: string;
			error: string;
			closeCodes: string;
			memory: number;
		};
		expect(result.resolved).toBe(pathToFileURL(path.join(ROOT, "dist/client.node.js")).href);
		expect(result.keys).toEqual(expect.arrayContaining([...CLIENT_EXPORTS, "verifyPush"]));
		expect(result.ok).toBe(true);
		expect(result.state).toBe("closed");
		expect(result.error).toBe("network");
		expect(result.closeCodes).toBe("object");
		expect(result.memory).toBe(0);
	});

	it("a real `node` imports tidings/tokens: mintToken and verifyToken round-trip", () => {
		const result = nodeEval(`
			const resolved = import.meta.resolve("tidings/tokens");
			const m = await import("tidings/tokens");
			const secret = "s".repeat(32);
			const { token, expires_at } = await m.mintToken(secret, { topics: { "jobs.>": ["subscribe"] }, ttl_s: 60, sub: "pkg-test" });
			const claims = await m.verifyToken(secret, token);
			const wrong = await m.verifyToken("x".repeat(32), token).then(() => "accepted", (e) => e.name);
			console.log(JSON.stringify({ resolved, keys: Object.keys(m).sort(), token, expires_at, claims, wrong }));
		`) as {
			resolved: string;
			keys: string[];
			token: string;
			expires_at: number;
			claims: { sub: string; topics: unknown; exp: number };
			wrong: string;
		};
		expect(result.resolved).toBe(pathToFileURL(path.join(ROOT, "dist/tokens.js")).href);
		expect(result.keys).toEqual(expect.arrayContaining(["mintToken", "verifyToken", "TokenError"]));
		expect(result.token.split(".")).toHaveLength(3);
		expect(result.claims.sub).toBe("pkg-test");
		expect(result.claims.topics).toEqual({ "jobs.>": ["subscribe"] });
		expect(result.claims.exp * 1000).toBe(result.expires_at);
		expect(result.wrong).toBe("TokenError");
	});

	it("imported through vitest too, tidings/client gives a working client", async () => {
		// A variable specifier: type-checking must not depend on dist/ being built.
		const spec = "tidings/client";
		const m = (await import(/* @vite-ignore */ spec)) as typeof import("../../src/client/node.js");
		for (const name of ["Tidings", "TidingsError", "MemoryOutbox", "IndexedDbOutbox", "CLOSE_CODES"])
			expect(m, name).toHaveProperty(name);
		const t = new m.Tidings({ url: "http://127.0.0.1:1" });
		expect(t).toBeInstanceOf(m.Tidings);
		await t.close();
		expect(t.state).toBe("closed");
		const tokensSpec = "tidings/tokens";
		const tokens = (await import(/* @vite-ignore */ tokensSpec)) as Record<string, unknown>;
		expect(typeof tokens.mintToken).toBe("function");
		expect(typeof tokens.verifyToken).toBe("function");
	});

	it("ships type declarations for both conditions and for tokens", () => {
		for (const file of ["dist/types/client/index.d.ts", "dist/types/client/node.d.ts", "dist/types/tokens/index.d.ts"])
			expect(existsSync(path.join(ROOT, file)), file).toBe(true);
		const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
			exports: Record<string, unknown>;
		};
		// Every file the exports map names is there.
		const targets: string[] = [];
		const walk = (v: unknown) => {
			if (typeof v === "string") targets.push(v);
			else if (v && typeof v === "object") for (const x of Object.values(v)) walk(x);
		};
		walk(pkg.exports);
		expect(targets.length).toBeGreaterThanOrEqual(6);
		for (const t of targets) expect(existsSync(path.join(ROOT, t)), t).toBe(true);
		expect(readFileSync(path.join(ROOT, "dist/types/client/node.d.ts"), "utf8")).toMatch(/class Tidings/);
	});

	it.each(Object.entries(PUBLIC_MEMBERS))(
		"the declaration of %s shows its public API and nothing internal",
		(cls, spec) => {
			const members = declaredMembers(spec.file, cls);
			expect(members.filter((m) => INTERNAL_NAMES.includes(m))).toEqual([]);
			expect([...members].sort()).toEqual([...spec.members].sort());
		},
	);

	it("the Node build's Tidings adds nothing but its constructor", () => {
		expect(declaredMembers("node.d.ts", "Tidings")).toEqual(["constructor"]);
	});
});

describe("served by the Worker (wrangler dev)", () => {
	const state = mkdtempSync(path.join(os.tmpdir(), "tidings-package-"));
	let server: DevServer;

	beforeAll(async () => {
		server = await startDev(state, await freePort());
	}, 90_000);

	afterAll(async () => {
		await server?.kill9().catch(() => {});
		rmSync(state, { recursive: true, force: true });
	});

	it("GET /tidings.js: 200, JavaScript, any origin, the built file", async () => {
		const res = await fetch(`${server.url}/tidings.js`, { headers: { origin: "https://app.example" } });
		const body = await res.text();
		expect(res.status).toBe(200);
		expect(res.headers.get("content-type")).toMatch(/javascript/);
		expect(res.headers.get("access-control-allow-origin")).toBe("*");
		// Read after wrangler dev started: its build step rewrites the file.
		expect(body).toBe(readFileSync(BUNDLE, "utf8"));
	});

	it("GET / still serves the demo page", async () => {
		const res = await fetch(`${server.url}/`);
		const body = await res.text();
		expect(res.status).toBe(200);
		expect(res.headers.get("content-type")).toMatch(/text\/html/);
		expect(body).toContain("<title>tidings — live topic demo</title>");
	});
});
