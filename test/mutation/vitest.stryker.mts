/**
 * The workerd project alone, for StrykerJS (see README.md beside this file):
 * STRYKER_TESTS names the test files (comma-separated), else every workerd suite.
 */
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

export default defineConfig({
	plugins: [
		cloudflareTest({
			wrangler: { configPath: "./wrangler.toml" },
			miniflare: { bindings: { TIDINGS_ALLOW_ANONYMOUS: "true" } },
		}),
	],
	test: {
		include: process.env.STRYKER_TESTS?.split(",") ?? ["test/worker/**/*.test.ts"],
		globalSetup: ["test/worker/push-receiver.setup.ts"],
		testTimeout: 30_000,
	},
});
