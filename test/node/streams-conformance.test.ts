/**
 * The Durable Streams conformance suite (`@durable-streams/server-conformance-tests`,
 * pinned in package-lock.json) against tidings on workerd under `wrangler dev`,
 * every test it runs by default. Long-polls wait 2 s here instead of 20 s so the
 * suite's timeouts stay short; nothing else differs from `npm start`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DurableStream } from "@durable-streams/client";
import { runConformanceTests } from "@durable-streams/server-conformance-tests";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, freePort, startDev } from "./wrangler-dev.js";

const state = mkdtempSync(path.join(os.tmpdir(), "tidings-streams-"));
let server: DevServer | undefined;
// Read by the suite when each test runs, so it may be filled in by beforeAll.
const options = { baseUrl: "", longPollTimeoutMs: 2_000 };

beforeAll(async () => {
	server = await startDev(state, await freePort(), { vars: { TIDINGS_STREAM_LONG_POLL_MS: "2000" } });
	options.baseUrl = server.url;
}, 120_000);

afterAll(async () => {
	await server?.kill9().catch(() => {});
	rmSync(state, { recursive: true, force: true });
});

runConformanceTests(options);

/** Collects JSON items from a live session until `n` arrived. */
function collect(res: Awaited<ReturnType<DurableStream["stream"]>>, n: number): Promise<unknown[]> {
	const items: unknown[] = [];
	return new Promise((resolve) => {
		const stop = res.subscribeJson((batch) => {
			items.push(...batch.items);
			if (items.length >= n) {
				stop();
				res.cancel();
				resolve(items);
			}
		});
	});
}

describe("@durable-streams/client, unchanged, against tidings", () => {
	it("creates, appends, reads to the tail, follows by long-poll and SSE, and resumes from a saved offset", async () => {
		const url = `${options.baseUrl}/v1/stream/client-${Date.now()}`;
		const stream = await DurableStream.create({ url, contentType: "application/json" });
		await stream.append(JSON.stringify({ n: 1 }));
		await stream.append(JSON.stringify({ n: 2 }));
		const caughtUp = await stream.stream({ live: false });
		expect(await caughtUp.json()).toEqual([{ n: 1 }, { n: 2 }]);
		const saved = caughtUp.offset;

		const longPoll = await stream.stream({ live: "long-poll", offset: saved });
		const viaLongPoll = collect(longPoll, 1);
		const sse = await stream.stream({ live: "sse", offset: saved });
		const viaSse = collect(sse, 2);
		await stream.append(JSON.stringify({ n: 3 }));
		// One log, two doors: a topic publish is the stream's next message.
		const topic = new URL(url).pathname.split("/").pop();
		const published = await fetch(`${options.baseUrl}/v1/topics/${topic}/messages`, {
			method: "POST",
			headers: { "Content-Type": "application/json" },
			body: JSON.stringify({ data: { n: 4 } }),
		});
		expect(published.status).toBe(201);
		expect(await viaLongPoll).toEqual([{ n: 3 }]);
		expect(await viaSse).toEqual([{ n: 3 }, { n: 4 }]);

		const resumed = await stream.stream({ live: false, offset: saved });
		expect(await resumed.json()).toEqual([{ n: 3 }, { n: 4 }]);
	});
});
