#!/usr/bin/env node
// Builds the package entry points into dist/ and the browser bundle that the
// Worker serves at /tidings.js (public/tidings.js, an asset).
//   node scripts/build.mjs            everything, with type declarations
//   node scripts/build.mjs --browser  only public/tidings.js (Wrangler's build step)
import { execFileSync } from "node:child_process";
import { chmod, mkdir, readdir, rename, rm } from "node:fs/promises";
import { build } from "esbuild";

const common = { bundle: true, format: "esm", target: "es2022", logLevel: "warning", legalComments: "none" };

// Written elsewhere and renamed into place, so a `wrangler dev` serving public/
// never sends half a file, and builds started by parallel `wrangler dev`s do not collide.
await mkdir("dist", { recursive: true });
// Split: what only some pages need (the SSE fallback) is a chunk beside it, loaded on first use.
const tmp = `dist/.browser.${process.pid}`;
await build({
	...common,
	entryPoints: { tidings: "src/client/browser.ts" },
	outdir: tmp,
	splitting: true,
	chunkNames: "tidings-[name]-[hash]",
	platform: "browser",
	minify: true,
});
// Chunks first (the entry names them), then the entry; then the chunks of earlier builds go.
const old = (await readdir("public")).filter((f) => /^tidings-.*\.js$/.test(f));
const built = await readdir(tmp);
for (const f of built.filter((f) => f !== "tidings.js")) await rename(`${tmp}/${f}`, `public/${f}`);
await rename(`${tmp}/tidings.js`, "public/tidings.js");
for (const f of old.filter((f) => !built.includes(f))) await rm(`public/${f}`, { force: true });
await rm(tmp, { recursive: true, force: true });

if (!process.argv.includes("--browser")) {
	await build({
		...common,
		entryPoints: { client: "src/client/index.ts", "client.node": "src/client/node.ts", tokens: "src/tokens/index.ts" },
		outdir: "dist",
		platform: "neutral",
		packages: "external",
	});
	// The `tidings` CLI (package.json `bin`); its dependencies stay packages, installed beside it.
	await build({
		...common,
		entryPoints: { cli: "src/cli/bin.ts" },
		outdir: "dist",
		platform: "node",
		packages: "external",
	});
	await chmod("dist/cli.js", 0o755);
	execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
		stdio: "inherit",
	});
}
