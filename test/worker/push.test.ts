import fc from "fast-check";
import { describe, expect, inject, it } from "vitest";
import { signPush, verifyPush } from "../../src/protocol/push-signature.js";
import { call, eventually, type Json, publish, uniqueTopic } from "./helpers.js";

const SECRET = "a-long-enough-push-secret";

interface Received {
	at: number;
	end?: number;
	headers: Record<string, string>;
	body: string;
}

function receiver(hook: string) {
	const base = inject("pushReceiver");
	return {
		url: `${base}/hook/${hook}`,
		script: (statuses: number[], delayMs = 0) =>
			fetch(`${base}/_script/${hook}`, { method: "POST", body: JSON.stringify({ statuses, delayMs }) }).then((r) =>
				r.text(),
			),
		log: async () => (await (await fetch(`${base}/_log/${hook}`)).json()) as Received[],
	};
}

describe("push signatures", () => {
	it("verify what was signed, and refuse tampered, stale, malformed and wrongly keyed deliveries", async () => {
		const body = '{"seq":1,"data":"x"}';
		const now = Date.now();
		const header = await signPush(SECRET, body, now);
		expect(await verifyPush(SECRET, header, body, { now })).toEqual({ ok: true, timestamp: now });
		expect(await verifyPush(SECRET, header, `${body} `, { now })).toEqual({ ok: false, reason: "mismatch" });
		expect(await verifyPush("another-secret-value", header, body, { now })).toEqual({ ok: false, reason: "mismatch" });
		expect(await verifyPush(SECRET, header, body, { now: now + 6 * 60_000 })).toEqual({ ok: false, reason: "stale" });
		expect(await verifyPush(SECRET, header, body, { now: now - 6 * 60_000 })).toEqual({ ok: false, reason: "stale" });
		const forged = header.replace(/t=\d+/, `t=${now + 1}`);
		expect(await verifyPush(SECRET, forged, body, { now })).toEqual({ ok: false, reason: "mismatch" });
		for (const bad of [null, "", "t=1", "v1=00", `t=${now},v1=zz`, `${header},extra`]) {
			expect(await verifyPush(SECRET, bad, body, { now })).toEqual({ ok: false, reason: "malformed" });
		}
	});

	it("round-trips any body (fast-check)", async () => {
		await fc.assert(
			fc.asyncProperty(
				fc.string({ unit: "binary", maxLength: 200 }),
				fc.string({ minLength: 16, maxLength: 40 }),
				async (body, secret) => {
					const header = await signPush(secret, body, 1_700_000_000_000);
					expect((await verifyPush(secret, header, body, { now: 1_700_000_000_000 })).ok).toBe(true);
				},
			),
			{ numRuns: 100 },
		);
	});
});

describe("push consumers", () => {
	it("retries a failing endpoint with the group's backoff until it recovers, signed every time", async () => {
		const topic = uniqueTopic();
		const hook = receiver(topic);
		await hook.script([500, 503, 200]);
		const created = await call("PUT", `/v1/topics/${topic}/groups/webhook`, {
			retry_delay_ms: 300,
			max_retries: 5,
			push: { url: hook.url, secret: SECRET, timeout_ms: 2000 },
		});
		expect(created.status).toBe(201);
		expect((created.body.settings as Json).push).toEqual({
			url: hook.url,
			secret: "***",
			timeout_ms: 2000,
			concurrency: 4,
		});
		const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
		await publish(topic, { data: { order: 1 }, baggage: "tenant=acme" }, { traceparent });
		const log = await eventually(
			async () => {
				const l = await hook.log();
				return l.length >= 3 ? l : undefined;
			},
			"three push attempts",
			8000,
		);
		expect(log.map((r) => r.headers["tidings-attempt"])).toEqual(["1", "2", "3"]);
		for (const r of log) {
			expect(await verifyPush(SECRET, r.headers["tidings-signature"], r.body)).toMatchObject({ ok: true });
			expect(r.headers).toMatchObject({
				traceparent,
				baggage: "tenant=acme",
				"tidings-topic": topic,
				"tidings-group": "webhook",
				"tidings-seq": "1",
				"content-type": "application/json",
			});
			expect(JSON.parse(r.body)).toMatchObject({ seq: 1, data: { order: 1 }, group: "webhook" });
		}
		// retry_delay_ms (300) apart: not sooner, not much later.
		for (const i of [1, 2]) {
			const gap = (log[i] as Received).at - (log[i - 1] as Received).at;
			expect(gap).toBeGreaterThanOrEqual(250);
			expect(gap).toBeLessThan(1300);
		}
		await eventually(async () => {
			const counts = (await call("GET", `/v1/topics/${topic}/groups/webhook`)).body.counts as Json;
			return counts.acked === 1 && counts.retried === 2 && counts.in_flight === 0;
		}, "acked after recovery");
		await new Promise((r) => setTimeout(r, 500));
		expect(await hook.log()).toHaveLength(3);
	});

	it("dead-letters what the endpoint keeps refusing", async () => {
		const topic = uniqueTopic();
		const hook = receiver(topic);
		await hook.script([500]);
		await call("PUT", `/v1/topics/${topic}/groups/webhook`, {
			max_retries: 1,
			retry_delay_ms: 100,
			push: { url: hook.url, secret: SECRET },
		});
		await publish(topic, { data: "never" });
		const dlq = await eventually(
			async () => {
				const r = (await call("GET", `/v1/topics/${topic}/groups/webhook/dlq`)).body;
				return r.count === 1 ? r : undefined;
			},
			"dead letter",
			8000,
		);
		expect((dlq.messages as Json[])[0]).toMatchObject({ attempts: 2, last_error: "push endpoint answered HTTP 500" });
		// Dead-lettered: no further attempt, not even one retry delay (100 ms) later.
		await new Promise((r) => setTimeout(r, 400));
		expect(await hook.log()).toHaveLength(2);
	});

	it("counts an endpoint slower than push.timeout_ms, or one that redirects, as a failed attempt", async () => {
		for (const [name, statuses, delayMs, error] of [
			["slow", [200], 1500, "push endpoint did not answer within 1000 ms"],
			["redirect", [302], 0, "push endpoint answered HTTP 302"],
		] as const) {
			const topic = uniqueTopic(name);
			const hook = receiver(topic);
			await hook.script([...statuses], delayMs);
			await call("PUT", `/v1/topics/${topic}/groups/webhook`, {
				max_retries: 0,
				push: { url: hook.url, secret: SECRET, timeout_ms: 1000 },
			});
			await publish(topic, { data: name });
			const dlq = await eventually(
				async () => {
					const r = (await call("GET", `/v1/topics/${topic}/groups/webhook/dlq`)).body;
					return r.count === 1 ? r : undefined;
				},
				`${name} dead letter`,
				8000,
			);
			expect((dlq.messages as Json[])[0], name).toMatchObject({ attempts: 1, last_error: error });
		}
	});

	it("keeps at most `concurrency` requests open to a slow endpoint, delivers each message once, and nothing comes late", async () => {
		const topic = uniqueTopic();
		const hook = receiver(topic);
		await hook.script([200], 250);
		await call("PUT", `/v1/topics/${topic}/groups/webhook`, {
			push: { url: hook.url, secret: SECRET, concurrency: 3 },
		});
		await publish(topic, { messages: Array.from({ length: 12 }, (_, i) => ({ data: i })) });
		const log = await eventually(
			async () => {
				const l = await hook.log();
				return l.length >= 12 && l.every((r) => r.end !== undefined) ? l : undefined;
			},
			"12 deliveries",
			15_000,
		);
		// The most requests open at once, from when each came to when it was answered.
		const peak = Math.max(...log.map((r) => log.filter((o) => o.at <= r.at && (o.end as number) > r.at).length));
		expect(peak).toBeLessThanOrEqual(3);
		// And the concurrency is used: a slow endpoint is not served one request at a time.
		expect(peak).toBe(3);
		expect(log.map((r) => Number(r.headers["tidings-seq"])).sort((a, b) => a - b)).toEqual(
			Array.from({ length: 12 }, (_, i) => i + 1),
		);
		await eventually(
			async () => ((await call("GET", `/v1/topics/${topic}/groups/webhook`)).body.counts as Json).acked === 12,
			"all acked",
		);
		// A wait longer than a request shows no late duplicate.
		await new Promise((r) => setTimeout(r, 600));
		expect(await hook.log()).toHaveLength(12);
		expect((await call("GET", `/v1/topics/${topic}/groups/webhook`)).body.counts).toMatchObject({
			acked: 12,
			retried: 0,
			in_flight: 0,
		});
	});

	it("validates push settings", async () => {
		const topic = uniqueTopic();
		for (const push of [
			{ url: "ftp://x", secret: SECRET },
			{ url: "not a url", secret: SECRET },
			{ url: "https://example.com", secret: "short" },
			{ url: "https://example.com", secret: SECRET, timeout_ms: 60_000 },
			{ url: "https://example.com", secret: SECRET, concurrency: 0 },
			{ url: "https://example.com" },
		]) {
			expect((await call("PUT", `/v1/topics/${topic}/groups/g`, { push })).status, JSON.stringify(push)).toBe(400);
		}
	});
});

describe("push to a typed topic's group", () => {
	it("a pushed message carries the schema revision it was checked against", async () => {
		const topic = uniqueTopic();
		const hook = receiver(topic);
		await hook.script([200]);
		expect((await call("PUT", `/v1/topics/${topic}`, { schema: { type: "object", required: ["n"] } })).status).toBe(
			200,
		);
		await call("PUT", `/v1/topics/${topic}/groups/webhook`, { push: { url: hook.url, secret: SECRET } });
		expect((await publish(topic, { data: { n: 1 } })).status).toBe(201);
		const [pushed] = await eventually(
			async () => {
				const l = await hook.log();
				return l.length >= 1 ? l : undefined;
			},
			"one push",
			8000,
		);
		expect(JSON.parse(pushed?.body ?? "{}")).toMatchObject({ data: { n: 1 }, schema_revision: 1, attempt: 1 });
	});
});
