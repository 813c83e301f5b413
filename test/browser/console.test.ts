/**
 * The console (/console) and the demo page (/) in real headless Chromium
 * against the real Worker on workerd, as a user drives them: a publish shows
 * in the live tail, a poisoned group's dead letter shows with its attempts,
 * redrive empties the list, a delete removes the topic; the demo runs a job
 * through the example worker to its notification. Screenshots at 375 and
 * 1440 px go to screenshots/ (ignored by git) to look at.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startConsumer } from "../../examples/job-finished/consumer.js";
import { CHROMIUM_ARGS, findChromium } from "../../scripts/chromium.mjs";
import { Tidings } from "../../src/client/node.js";
import { type DevServer, freePort, startDev } from "../node/wrangler-dev.js";
import { eventually } from "../shared/eventually.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const SHOTS = path.join(ROOT, "screenshots");
const state = mkdtempSync(path.join(os.tmpdir(), "tidings-console-"));
const keyedState = mkdtempSync(path.join(os.tmpdir(), "tidings-console-keyed-"));
let server: DevServer;
/** A Worker configured as a deployment is: an admin key and a token secret, no anonymous access. */
let keyed: DevServer;
const ADMIN_KEY = "console-test-admin-key-0123456789";
let browser: Browser;
const pageErrors: string[] = [];
const WIDTHS = [375, 1440] as const;

beforeAll(async () => {
	mkdirSync(SHOTS, { recursive: true });
	// The two Workers start one after the other: free ports are found before they are taken.
	// (Each is assigned as soon as it runs, so that afterAll stops it even if the other fails.)
	const servers = (async () => {
		server = await startDev(state, await freePort());
		keyed = await startDev(keyedState, await freePort(), {
			vars: {
				TIDINGS_ALLOW_ANONYMOUS: "false",
				TIDINGS_ADMIN_KEY: ADMIN_KEY,
				TIDINGS_TOKEN_SECRET: "console-test-token-secret-0123456789",
			},
		});
	})();
	[, browser] = await Promise.all([
		servers,
		findChromium().then(({ path: executablePath }) =>
			chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS }),
		),
	]);
}, 90_000);

afterAll(async () => {
	await browser?.close();
	await Promise.all([server?.kill9().catch(() => {}), keyed?.kill9().catch(() => {})]);
	rmSync(state, { recursive: true, force: true });
	rmSync(keyedState, { recursive: true, force: true });
});

async function open(pathname: string, width = 1440, base = server.url): Promise<Page> {
	const page = await browser.newPage({ viewport: { width, height: width < 600 ? 812 : 900 } });
	page.on("pageerror", (e) => pageErrors.push(String(e)));
	// What the Content-Security-Policy of /console (public/_headers) blocks shows as console errors.
	page.on("console", (m) => {
		if (m.type() === "error" && /Content Security Policy/i.test(m.text())) pageErrors.push(m.text());
	});
	await page.goto(`${base}${pathname}`);
	return page;
}

/** A full-page screenshot, and the check that nothing is wider than the window (no sideways scrolling). */
async function shoot(page: Page, name: string): Promise<void> {
	const width = page.viewportSize()?.width ?? 0;
	await page.screenshot({ path: path.join(SHOTS, `${name}-${width}.png`), fullPage: true });
	expect(
		await page.evaluate<number>("document.documentElement.scrollWidth"),
		`${name} at ${width} px`,
	).toBeLessThanOrEqual(width);
}

async function api(method: string, pathname: string, body?: unknown): Promise<Response> {
	return fetch(`${server.url}${pathname}`, {
		method,
		headers: { "content-type": "application/json" },
		body: body === undefined ? undefined : JSON.stringify(body),
	});
}

describe("console", () => {
	it("a publish from the form, and one from elsewhere, show in the live tail with their details", async () => {
		const page = await open("/console#/t/console.tail");
		await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe("console.tail");
		// Never written: the topic view says so (a 404 from the API), and the tail waits for it.
		await page.getByText("This topic does not exist yet").waitFor();
		await page.locator(".tail .pill", { hasText: "live" }).waitFor();

		await page.getByLabel("Data (JSON; anything else is sent as text)").fill('{"order":7,"total":12.5}');
		await page.getByLabel("Attributes (JSON object)").fill('{"kind":"test"}');
		await page.getByLabel("Key").fill("order-7");
		await page.getByRole("button", { name: "Publish", exact: true }).click();
		await page.getByText("stored as #1").waitFor();
		const first = page.locator('.tail li[data-seq="1"]');
		await first.waitFor();
		expect(await first.textContent()).toContain('{"order":7,"total":12.5}');

		const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
		expect(
			(
				await api("POST", "/v1/topics/console.tail/messages", {
					data: "from curl",
					attributes: { kind: "other", region: "eu" },
					traceparent,
				})
			).status,
		).toBe(201);
		await page.locator('.tail li[data-seq="2"]').waitFor();

		// The text filter hides what does not match; pause holds what arrives.
		await page.getByLabel("Show only messages with").fill("order");
		await expect.poll(() => page.locator(".tail li").count()).toBe(1);
		await page.getByLabel("Show only messages with").fill("");
		await page.getByRole("button", { name: "Pause" }).click();
		await api("POST", "/v1/topics/console.tail/messages", { data: "while paused" });
		await page.getByText("1 held while paused").waitFor();
		expect(await page.locator('.tail li[data-seq="3"]').count()).toBe(0);
		await page.getByRole("button", { name: "Resume" }).click();
		await page.locator('.tail li[data-seq="3"]').waitFor();

		// Details: key, attributes, time, trace context.
		await page.getByRole("button", { name: "message 1: show details" }).click();
		const detail = page.locator(".detail");
		await detail.getByRole("heading", { name: "Message #1" }).waitFor();
		expect(await detail.textContent()).toContain("order-7");
		expect(await detail.locator(".kv").textContent()).toContain("kind");
		await page.getByRole("button", { name: "message 2: show details" }).click();
		await detail.getByRole("heading", { name: "Message #2" }).waitFor();
		expect(await detail.textContent()).toContain(traceparent);
		expect(await detail.textContent()).toContain("region");
		// By keyboard: a row is a button; Enter shows it and moves the focus to the detail; Close gives it back.
		await page.locator('.tail li[data-seq="3"] button').focus();
		await page.keyboard.press("Enter");
		await detail.getByRole("heading", { name: "Message #3" }).waitFor();
		expect(await page.evaluate<string>("document.activeElement.textContent")).toBe("Message #3");
		await page.keyboard.press("Escape"); // closes it, like its Close button
		expect(await page.locator(".detail").count()).toBe(0);
		expect(await page.evaluate<string>("document.activeElement.getAttribute('aria-label')")).toBe(
			"message 3: show details",
		);
		await page.getByRole("button", { name: "message 2: show details" }).click();
		for (const width of WIDTHS) {
			await page.setViewportSize({ width, height: width < 600 ? 812 : 900 });
			await shoot(page, "topic-live");
		}
		await page.emulateMedia({ colorScheme: "dark" });
		await shoot(page, "topic-live-dark");
		await page.emulateMedia({ colorScheme: "light" });

		// History pages show the same log.
		await page.getByRole("link", { name: "History" }).click();
		await page.getByText("#1–#3 of 1–3 retained").waitFor();
		expect(await page.locator(".history li").count()).toBe(3);
		await page.close();
	});

	it("a poisoned group's dead letter shows with each attempt's error; redrive empties the list", async () => {
		const topic = "console.poison";
		expect((await api("PUT", `/v1/topics/${topic}/groups/mailer`, { max_retries: 1, retry_delay_ms: 50 })).status).toBe(
			201,
		);
		expect((await api("POST", `/v1/topics/${topic}/messages`, { data: { to: "a@example.com" } })).status).toBe(201);
		const worker = new Tidings({ url: server.url });
		const consumer = worker.consume(
			topic,
			(msg) => {
				throw new Error(`smtp refused on attempt ${msg.attempt}`);
			},
			{ group: "mailer" },
		);
		await eventually(
			async () =>
				((await (await api("GET", `/v1/topics/${topic}/groups/mailer`)).json()) as { counts: { dead: number } }).counts
					.dead === 1,
			"the message dead-lettered",
			20_000,
		);
		await consumer.stop();
		await worker.close();

		const page = await open(`/console#/t/${topic}/groups`);
		const row = page.locator('tr[data-group="mailer"]');
		await row.waitFor();
		await page.getByRole("link", { name: "1 dead letters" }).click();
		const letter = page.locator('.letter[data-seq="1"]');
		await letter.waitFor();
		const attempts = letter.locator(".attempts tbody tr");
		expect(await attempts.count()).toBe(2);
		expect(await attempts.nth(0).textContent()).toContain("smtp refused on attempt 1");
		expect(await attempts.nth(1).textContent()).toContain("smtp refused on attempt 2");
		expect(await letter.textContent()).toContain("2 attempts");
		for (const width of WIDTHS) {
			await page.setViewportSize({ width, height: width < 600 ? 812 : 900 });
			await shoot(page, "dead-letters");
		}

		// Select it, redrive the selection: the list empties, the message is back in the group.
		await page.getByLabel("#1").check();
		await page.getByRole("button", { name: "Redrive selected (1)" }).click();
		await page.getByText("Redrove 1").waitFor();
		await page.getByText("No dead letters.").waitFor();
		const group = (await (await api("GET", `/v1/topics/${topic}/groups/mailer`)).json()) as {
			counts: { dead: number; pending: number };
		};
		expect(group.counts).toMatchObject({ dead: 0, pending: 1 });
		await page.close();
	});

	it("redrive all and purge ask first; a delete removes the topic from the list", async () => {
		const topic = "console.doomed";
		await api("PUT", `/v1/topics/${topic}/groups/g`, { max_retries: 0 });
		await api("POST", `/v1/topics/${topic}/messages`, { data: 1 });
		// A pull and a nack with no retries left: a dead letter.
		const pulled = (await (await api("POST", `/v1/topics/${topic}/groups/g/pull`)).json()) as {
			messages: { seq: number }[];
			lease: string;
		};
		expect(pulled.messages).toHaveLength(1);
		const nack = await api("POST", `/v1/topics/${topic}/groups/g/nack`, {
			seqs: [1],
			lease: pulled.lease,
			error: "nope",
		});
		expect(nack.status).toBe(200);

		const page = await open(`/console#/t/${topic}/g/g`);
		await page.locator('.letter[data-seq="1"]').waitFor();
		// Purge asks; Cancel keeps everything.
		await page.getByRole("button", { name: "Purge all" }).click();
		const dialog = page.getByRole("dialog");
		await dialog.getByRole("heading", { name: "Purge 1 dead letters?" }).waitFor();
		await dialog.getByRole("button", { name: "Cancel" }).click();
		expect(await page.locator('.letter[data-seq="1"]').count()).toBe(1);
		await page.getByRole("button", { name: "Redrive all" }).click();
		await dialog.getByRole("button", { name: "Redrive all" }).click();
		await page.getByText("No dead letters.").waitFor();

		// The topic list shows it (the catalog is a few seconds behind), and a topic with traffic
		// has a rate: the change of its head seq between polls, drawn as a sparkline.
		let n = 0;
		const traffic = setInterval(() => void api("POST", "/v1/topics/console.busy/messages", { data: n++ }), 100);
		try {
			await page.getByRole("link", { name: "Topics", exact: true }).first().click();
			await page.locator(`tr[data-topic="${topic}"]`).waitFor({ timeout: 15_000 });
			await page.locator(`tr[data-topic="console.tail"]`).waitFor({ timeout: 15_000 });
			expect(await page.locator(`tr[data-topic="${topic}"] svg.spark`).count()).toBe(1);
			const busy = page.locator('tr[data-topic="console.busy"]');
			await eventually(
				async () =>
					(await busy.locator(".rate span").count()) === 1 &&
					/^[1-9]/.test(await busy.locator(".rate span").innerText()),
				"a rate above 0/s for console.busy",
				20_000,
			);
			await busy.locator("svg.spark polyline").waitFor();
			for (const width of WIDTHS) {
				await page.setViewportSize({ width, height: width < 600 ? 812 : 900 });
				await shoot(page, "topics");
			}
		} finally {
			clearInterval(traffic);
		}

		await page.getByRole("link", { name: topic }).click();
		await page.getByRole("button", { name: "Delete topic" }).click();
		await dialog.getByRole("button", { name: "Delete topic" }).click();
		await page.getByText(`Deleted ${topic}`).waitFor();
		expect(new URL(page.url()).hash).toBe("#/");
		await eventually(
			async () => (await page.locator(`tr[data-topic="${topic}"]`).count()) === 0,
			"gone from the list",
			15_000,
		);
		expect((await api("GET", `/v1/topics/${topic}`)).status).toBe(404);
		await page.close();
	});

	it("mints a token, and keeps the credential out of the URL", async () => {
		const page = await open("/console#/tokens");
		await page.getByLabel("Topic pattern").fill("jobs.>");
		await page.getByRole("button", { name: "Mint token" }).click();
		// `npm start` has no TIDINGS_TOKEN_SECRET: the console says what to set.
		await page.getByText("set TIDINGS_TOKEN_SECRET").waitFor();
		for (const width of WIDTHS) {
			await page.setViewportSize({ width, height: width < 600 ? 812 : 900 });
			await shoot(page, "tokens");
		}
		expect(page.url()).not.toContain("token=");
		await page.close();
		// Not to be framed (clickjacking), and nothing loaded from elsewhere.
		const res = await fetch(`${server.url}/console`);
		await res.arrayBuffer();
		expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
		expect(res.headers.get("x-frame-options")).toBe("DENY");
		expect(pageErrors).toEqual([]);
	});
});

describe("console, signed in", () => {
	it("asks for the key, keeps it in session storage only, mints a token, and a token sees only its rights", async () => {
		const page = await open("/console", 375, keyed.url);
		await page.getByRole("heading", { name: "Sign in to the console" }).waitFor();
		for (const width of WIDTHS) {
			await page.setViewportSize({ width, height: width < 600 ? 812 : 900 });
			await shoot(page, "sign-in");
		}
		await page.getByLabel("Admin key or token").fill("wrong");
		await page.getByRole("button", { name: "Sign in" }).click();
		await page
			.getByRole("alert")
			.getByText(/^unauthorized: /)
			.waitFor();
		await page.getByLabel("Admin key or token").fill(ADMIN_KEY);
		await page.keyboard.press("Enter");
		await page.getByRole("heading", { name: "Topics" }).waitFor();
		expect(await page.evaluate<string | null>('sessionStorage.getItem("tidings.console.credential")')).toBe(ADMIN_KEY);
		// A reload keeps the session; the key is never in the URL.
		await page.reload();
		await page.getByRole("heading", { name: "Topics" }).waitFor();
		expect(page.url()).not.toContain(ADMIN_KEY);

		// A group made from the form; a token minted for jobs.>.
		await page.goto(`${keyed.url}/console#/t/jobs.1/groups`);
		await page.getByLabel("Name").fill("workers");
		await page.getByRole("button", { name: "Save group" }).click();
		await page.getByText("created group workers").waitFor();
		await page.locator('tr[data-group="workers"]').waitFor();
		await page.getByRole("link", { name: "Tokens" }).click();
		await page.getByLabel("Topic pattern").fill("jobs.>");
		await page.getByRole("button", { name: "Mint token" }).click();
		const token = await page.getByLabel("Token", { exact: true }).inputValue();
		expect(token.split(".")).toHaveLength(3);

		// Signed in with the token: its topics, and a refusal where it has no right.
		await page.getByRole("button", { name: "Sign out" }).click();
		expect(await page.evaluate<string | null>('sessionStorage.getItem("tidings.console.credential")')).toBeNull();
		await page.getByLabel("Admin key or token").fill(token);
		await page.getByRole("button", { name: "Sign in" }).click();
		// Back where it was signed out: the token view.
		await page.getByRole("heading", { name: "Tokens" }).waitFor();
		await page.getByRole("link", { name: "Topics" }).click();
		await page.locator('tr[data-topic="jobs.1"]').waitFor({ timeout: 15_000 });
		await page.getByRole("link", { name: "Tokens" }).click();
		await page.getByLabel("Topic pattern").fill("jobs.>");
		await page.getByRole("button", { name: "Mint token" }).click();
		await page.getByText("tokens are issued with the admin key only").waitFor();

		// A token that expires while the console is open: back to the sign-in form, saying why.
		const short = await fetch(`${keyed.url}/v1/tokens`, {
			method: "POST",
			headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
			body: JSON.stringify({ topics: { "jobs.>": ["subscribe"] }, ttl_s: 2 }),
		});
		const { token: shortLived } = (await short.json()) as { token: string };
		await page.getByRole("button", { name: "Sign out" }).click();
		await page.getByLabel("Admin key or token").fill(shortLived);
		await page.getByRole("button", { name: "Sign in" }).click();
		await page.getByRole("link", { name: "Topics" }).click();
		await page.locator('tr[data-topic="jobs.1"]').waitFor({ timeout: 15_000 });
		await page
			.getByRole("alert")
			.getByText("signed out: unauthorized: the token has expired")
			.waitFor({ timeout: 15_000 });
		await page.getByRole("heading", { name: "Sign in to the console" }).waitFor();
		expect(await page.evaluate<string | null>('sessionStorage.getItem("tidings.console.credential")')).toBeNull();
		await page.close();
		expect(pageErrors).toEqual([]);
	});
});

describe("demo page", () => {
	it("a job started from the page runs in the example worker, with progress, to a notification", async () => {
		const worker = await startConsumer(server.url);
		await worker.ready;
		try {
			const page = await open("/", 375);
			await page.getByText("connected · watching demo").waitFor();
			await page.getByRole("button", { name: "Start a job" }).click();
			const job = page.locator(".job").first();
			await job.getByText(/step \d of 5/).waitFor();
			await page.getByText(/Your job \w+ has finished/).waitFor({ timeout: 20_000 });
			expect(await job.locator("progress").evaluate((p: { value: number }) => p.value)).toBe(100);
			await shoot(page, "demo");
			await page.setViewportSize({ width: 1440, height: 900 });
			await shoot(page, "demo");

			// A subscription the server refuses is said on the status line.
			await page.getByRole("textbox", { name: "topic" }).fill("no spaces allowed");
			await page.getByRole("button", { name: "Subscribe" }).click();
			await page.locator("#state.refused").getByText("subscription to no spaces allowed refused").waitFor();
			await page.close();
		} finally {
			await worker.stop();
		}
		expect(pageErrors).toEqual([]);
	});
});
