/**
 * The browser bundle in real headless Chromium (driven by playwright-core; which
 * Chromium: scripts/chromium.mjs) against the real Worker on workerd: IndexedDB outbox,
 * offline publishes, reloads, two tabs, and the fallback without IndexedDB.
 *
 * The page and /tidings.js are served by the test (from test/browser/app.html
 * and public/tidings.js, the file the Worker serves) so that the page can be
 * reloaded while the browser is offline, as a service worker or the HTTP cache
 * would do for a real app. Every other request goes to the real Worker.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, findChromium } from "../../scripts/chromium.mjs";
import type { Message } from "../../src/client/index.js";
import { startFaultProxy } from "../node/fault-proxy.js";
import { type DevServer, freePort, startDev } from "../node/wrangler-dev.js";
import { eventually } from "../shared/eventually.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const state = mkdtempSync(path.join(os.tmpdir(), "tidings-browser-"));
let server: DevServer;
let browser: Browser;
const pageErrors: string[] = [];

beforeAll(async () => {
	[server, browser] = await Promise.all([
		startDev(state, await freePort()),
		findChromium().then(({ path: executablePath }) =>
			chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS }),
		),
	]);
}, 90_000);

afterAll(async () => {
	await browser?.close();
	await server?.kill9().catch(() => {});
	rmSync(state, { recursive: true, force: true });
});

async function newContext(init?: () => void): Promise<BrowserContext> {
	const context = await browser.newContext();
	await context.route(`${server.url}/app`, (route) =>
		route.fulfill({ contentType: "text/html", body: readFileSync(path.join(ROOT, "test/browser/app.html"), "utf8") }),
	);
	await context.route(`${server.url}/tidings.js`, (route) =>
		route.fulfill({ contentType: "text/javascript", body: readFileSync(path.join(ROOT, "public/tidings.js"), "utf8") }),
	);
	// Chromium's offline emulation is re-applied to a document after it loads, so a request made
	// right after a reload can slip out: while offline, the test also fails every API request.
	await context.route(`${server.url}/v1/**`, (route) =>
		offline.has(context) ? route.abort("internetdisconnected") : route.continue(),
	);
	if (init) await context.addInitScript(init);
	return context;
}

const offline = new WeakSet<BrowserContext>();
async function setOffline(context: BrowserContext, on: boolean) {
	if (on) offline.add(context);
	else offline.delete(context);
	await context.setOffline(on);
}

async function open(context: BrowserContext): Promise<Page> {
	const page = await context.newPage();
	page.on("pageerror", (e) => pageErrors.push(String(e)));
	await page.goto(`${server.url}/app`);
	await page.waitForFunction(() => window.loaded);
	return page;
}

async function history(topic: string): Promise<Message[]> {
	const res = await fetch(`${server.url}/v1/topics/${topic}/messages?after=0&limit=1000`);
	return ((await res.json()) as { messages: Message[] }).messages;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe("in Chromium", () => {
	it("keeps 20 offline publishes across a reload and delivers each exactly once, in order, when back online", async () => {
		const context = await newContext();
		const page = await open(context);
		await page.evaluate(() => window.start("browser.offline"));
		await page.waitForFunction(() => window.events.some(([n, v]) => n === "state" && v === "connected"));

		await setOffline(context, true);
		await page.waitForFunction(() => !navigator.onLine);
		const t0 = Date.now();
		await page.evaluate((items) => window.publishMany("browser.offline", items), range(20));
		expect(Date.now() - t0).toBeLessThan(5000); // resolved as queued, never hanging
		const results = await page.evaluate(() => window.results);
		expect(results).toHaveLength(20);
		expect(results.every((r) => "queued" in r && r.queued)).toBe(true);
		expect(await page.evaluate(() => window.tidings.outbox.size())).toBe(20);

		await page.reload();
		await page.waitForFunction(() => window.loaded);
		page.on("pageerror", (e) => pageErrors.push(String(e)));
		await page.evaluate(() => window.start("browser.offline"));
		expect(await page.evaluate(() => window.tidings.outbox.size())).toBe(20);
		await new Promise((r) => setTimeout(r, 500));
		expect(await history("browser.offline")).toHaveLength(0);

		await setOffline(context, false);
		await eventually(async () => (await page.evaluate(() => window.got.length)) >= 20, "20 deliveries", 20_000);
		await new Promise((r) => setTimeout(r, 1000)); // anything doubled would arrive by now
		const got = await page.evaluate(() => window.got);
		expect(got).toEqual(range(20).map((i) => [i + 1, i]));
		const stored = await history("browser.offline");
		expect(stored.map((m) => m.data)).toEqual(range(20));
		expect(new Set(stored.map((m) => m.key)).size).toBe(20);
		expect(stored.map((m) => m.key)).toEqual(results.map((r) => r.key));
		expect(await page.evaluate(() => window.tidings.outbox.size())).toBe(0);
		await context.close();
		expect(pageErrors).toEqual([]);
	});

	it("two tabs flushing at the same time: each entry sent once, each tab's order kept", async () => {
		const context = await newContext();
		const [a, b] = await Promise.all([open(context), open(context)]);
		await Promise.all([a.evaluate(() => window.start()), b.evaluate(() => window.start())]);
		await setOffline(context, true);
		await Promise.all(
			[a, b].map((page, t) =>
				page.evaluate(([items]) => window.publishMany("browser.tabs", items), [
					range(10).map((i) => `${"ab"[t]}${i}`),
				] as const),
			),
		);
		await setOffline(context, false);
		await eventually(async () => (await history("browser.tabs")).length >= 20, "20 stored", 20_000);
		await eventually(
			async () =>
				(await Promise.all([a, b].map((p) => p.evaluate(() => window.tidings.outbox.size())))).every((n) => n === 0),
			"both outboxes empty",
			20_000,
		);
		await new Promise((r) => setTimeout(r, 1000));
		const stored = (await history("browser.tabs")).map((m) => m.data as string);
		expect(stored).toHaveLength(20);
		expect(stored.filter((d) => d.startsWith("a"))).toEqual(range(10).map((i) => `a${i}`));
		expect(stored.filter((d) => d.startsWith("b"))).toEqual(range(10).map((i) => `b${i}`));
		// Each tab hears every entry once, whichever tab sent it: an entry sent twice would be heard twice.
		for (const page of [a, b]) {
			const heard = await page.evaluate(() => window.events.filter(([n]) => n === "published").map(([, v]) => v));
			expect([...heard].sort()).toEqual([...stored].sort());
		}
		await context.close();
		expect(pageErrors).toEqual([]);
	});

	it("without IndexedDB: warns, keeps publishes in memory, and still delivers them", async () => {
		const context = await newContext(() => {
			Object.defineProperty(window, "indexedDB", {
				get() {
					throw new DOMException("IndexedDB is disabled here", "SecurityError");
				},
			});
		});
		const page = await open(context);
		await page.evaluate(() => window.start());
		await page.waitForFunction(() => window.events.some(([n, v]) => n === "warning" && v === "outbox_memory"));
		await page.evaluate(() => window.publishMany("browser.noidb", ["online"]));
		await setOffline(context, true);
		await page.evaluate(() => window.publishMany("browser.noidb", [1, 2, 3]));
		expect((await page.evaluate(() => window.results)).slice(1).every((r) => "queued" in r)).toBe(true);
		await setOffline(context, false);
		await eventually(async () => (await history("browser.noidb")).length === 4, "4 stored", 20_000);
		expect((await history("browser.noidb")).map((m) => m.data)).toEqual(["online", 1, 2, 3]);
		await context.close();
		expect(pageErrors).toEqual([]);
	});

	it("the demo page the Worker serves at / subscribes and publishes with the client from /tidings.js", async () => {
		const context = await browser.newContext(); // no routes: page and bundle come from the Worker
		const page = await context.newPage();
		page.on("pageerror", (e) => pageErrors.push(String(e)));
		await page.goto(`${server.url}/`);
		await page.locator("#state", { hasText: /^connected/ }).waitFor();
		await page.fill("#data", '{"from":"the demo"}');
		await page.click("#pub button");
		await page.locator("#log li", { hasText: '{"from":"the demo"}' }).waitFor();
		const demo = (await history("demo")).map((m) => m.data);
		expect(demo).toContainEqual({ from: "the demo" });
		await context.close();
		expect(pageErrors).toEqual([]);
	});

	it("with a full quota: degrades to memory with a warning instead of failing the publish", async () => {
		const context = await newContext(() => {
			IDBObjectStore.prototype.add = () => {
				throw new DOMException("the quota is full", "QuotaExceededError");
			};
		});
		const page = await open(context);
		await page.evaluate(() => window.start());
		const r = await page.evaluate(() => window.tidings.publish("browser.quota", "kept"));
		expect(r).toMatchObject({ seq: 1 });
		expect(await page.evaluate(() => window.events.filter(([n]) => n === "warning").map(([, v]) => v))).toEqual([
			"outbox_memory",
		]);
		expect((await history("browser.quota")).map((m) => m.data)).toEqual(["kept"]);
		await context.close();
		expect(pageErrors).toEqual([]);
	});

	it("falls back to SSE when a proxy refuses WebSocket upgrades, loading the fallback from its own chunk", async () => {
		const proxy = await startFaultProxy(Number(new URL(server.url).port));
		proxy.fault = "no-upgrade";
		const context = await newContext();
		const page = await open(context);
		const scripts: string[] = [];
		page.on("request", (r) => {
			if (r.resourceType() === "script") scripts.push(new URL(r.url()).pathname);
		});
		const topic = `browser.sse-${Date.now()}`;
		await page.evaluate(([t, url]) => window.start(t, { url }), [topic, proxy.url] as const);
		for (const n of [1, 2]) {
			await fetch(`${server.url}/v1/topics/${topic}/messages`, {
				method: "POST",
				headers: { "Content-Type": "application/json" },
				body: JSON.stringify({ data: n }),
			}).then((r) => r.arrayBuffer());
		}
		await page.waitForFunction(() => window.got.length >= 2, undefined, { timeout: 20_000 });
		expect(await page.evaluate(() => window.got)).toEqual([
			[1, 1],
			[2, 2],
		]);
		expect(scripts.some((p) => /^\/tidings-sse-.*\.js$/.test(p))).toBe(true);
		await context.close();
		await proxy.close();
		expect(pageErrors).toEqual([]);
	});
});
