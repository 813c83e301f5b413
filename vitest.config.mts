import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

// Worker and Durable Object suites run inside workerd, against real SQLite
// storage, alarms and WebSockets.
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
					testTimeout: 30_000,
				},
			},
		],
	},
});
