#!/usr/bin/env node
// Builds the package entry points into dist/ and what the Worker serves as
// assets: the browser bundle at /tidings.js (public/tidings.js), the console's
// script at /console/console.js and the demo's job-finished page module at
// /job-finished.js.
//   node scripts/build.mjs            everything, with type declarations
//   node scripts/build.mjs --browser  only the assets (Wrangler's build step)
import { execFileSync } from "node:child_process";
import { chmod, mkdir, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";
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

/** Bundles `entry` for browsers into `out` (under public/), minified, renamed into place. */
async function asset(entry, out) {
	const tmpFile = `dist/.${path.basename(out)}.${process.pid}.js`;
	await build({ ...common, entryPoints: [entry], outfile: tmpFile, platform: "browser", minify: true });
	await rename(tmpFile, out);
}
await Promise.all([
	// The console has its own bundle (client and operator calls), so /tidings.js stays small.
	asset("src/console/main.ts", "public/console/console.js"),
	asset("examples/job-finished/page.ts", "public/job-finished.js"),
]);

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
