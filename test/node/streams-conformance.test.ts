/**
 * The Durable Streams conformance suite (`@durable-streams/server-conformance-tests`,
 * pinned in package-lock.json) against tidings on workerd under `wrangler dev`,
 * every test it runs by default. Long-polls wait 2 s here instead of 20 s so the
 * suite's timeouts stay short; nothing else differs from `npm start`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { runConformanceTests } from "@durable-streams/server-conformance-tests";
import { afterAll, beforeAll } from "vitest";
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
