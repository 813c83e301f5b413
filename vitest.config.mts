import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { dropExpectedWorkerdLogs } from "./test/worker/workerd-logs.js";

// workerd's log entries for what the workerd suite does on purpose, and only those (see the file).
dropExpectedWorkerdLogs();

// Worker and Durable Object suites run inside workerd, against real SQLite
// storage, alarms and WebSockets; Node suites drive the real runtime from outside.
export default defineConfig({
	test: {
		projects: [
			{
				plugins: [
					cloudflareTest({
						wrangler: { configPath: "./wrangler.toml" },
						miniflare: { bindings: { TIDINGS_ALLOW_ANONYMOUS: "true" } },
					}),
				],
				test: {
					name: "workerd",
					include: ["test/worker/**/*.test.ts"],
					globalSetup: ["test/worker/push-receiver.setup.ts"],
					testTimeout: 30_000,
				},
			},
			{
				// The browser bundle in real headless Chromium against the real runtime.
				test: {
					name: "browser",
					environment: "node",
					include: ["test/browser/**/*.test.ts"],
					testTimeout: 120_000,
					hookTimeout: 120_000,
				},
			},
			{
				// Node-side suites against the real runtime (wrangler dev / Miniflare).
				test: {
					name: "node",
					environment: "node",
					include: ["test/node/**/*.test.ts"],
					testTimeout: 120_000,
				},
			},
		],
	},
});
