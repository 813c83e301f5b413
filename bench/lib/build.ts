/**
 * Bundles each Worker to one ES module, as Wrangler would, so Miniflare runs
 * exactly the code under test with no module resolution of its own.
 * @module
 */
import { build } from "esbuild";

export async function bundle(entry: string, outfile: string): Promise<string> {
	await build({
		entryPoints: [entry],
		outfile,
		bundle: true,
		format: "esm",
		platform: "neutral",
		target: "es2023",
		conditions: ["workerd", "worker", "browser"],
		mainFields: ["module", "main"],
		external: ["cloudflare:*"],
		logLevel: "warning",
	});
	return outfile;
}
