/**
 * Deploying, as far as a machine without a Cloudflare account can go:
 * `wrangler deploy --dry-run` runs the build step (the browser client, the
 * console, the demo's page module), bundles the Worker and reads the assets,
 * exactly as a real deploy would before uploading. The Worker must stay under
 * the Workers free plan's size limit (3 MB after compression).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { afterAll, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");
const WRANGLER = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");
/** The Workers Free plan's limit on a Worker's size after compression (3 MB; read as 3,000,000 bytes, the stricter way). */
const FREE_PLAN_COMPRESSED = 3_000_000;
const out = mkdtempSync(path.join(os.tmpdir(), "tidings-deploy-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

it("wrangler deploy --dry-run builds the Worker, the client and the console, under the free plan's size limit", async () => {
	const started = Date.now();
	const { stdout, stderr } = await promisify(execFile)(
		process.execPath,
		[WRANGLER, "deploy", "--dry-run", "--outdir", out],
		{
			cwd: ROOT,
			timeout: 90_000,
			env: {
				...process.env,
				WRANGLER_SEND_METRICS: "false",
				WRANGLER_HIDE_BANNER: "true",
				CLOUDFLARE_CF_FETCH_ENABLED: "false",
			},
		},
	);
	const output = stdout + stderr;
	expect(output).toContain("--dry-run: exiting now.");

	// The Worker: its bundle exports the entrypoint and both Durable Object classes.
	const worker = readFileSync(path.join(out, "index.js"));
	expect(worker.toString()).toMatch(/export\s*\{[^}]*\bTopic\b[^}]*\}/);
	expect(worker.toString()).toMatch(/export\s*\{[^}]*\bCatalog\b[^}]*\}/);
	const gzip = gzipSync(worker).length;
	const reported = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(output);
	expect(reported, output).not.toBeNull();
	console.log(
		`Worker: ${worker.length} bytes, ${gzip} bytes gzipped (wrangler: ${reported?.[1]} KiB / gzip ${reported?.[2]} KiB); free plan limit ${FREE_PLAN_COMPRESSED} bytes compressed`,
	);
	expect(gzip).toBeLessThan(FREE_PLAN_COMPRESSED);
	expect(Number(reported?.[2]) * 1024).toBeLessThan(FREE_PLAN_COMPRESSED);

	// The assets: the build step wrote the client and the console, and the pages point at what exists.
	for (const file of ["tidings.js", "console/console.js", "job-finished.js"]) {
		const stat = statSync(path.join(ROOT, "public", file));
		expect(stat.mtimeMs, `public/${file} rebuilt by the deploy`).toBeGreaterThanOrEqual(started - 1000);
		const size = stat.size;
		console.log(
			`public/${file}: ${size} bytes, ${gzipSync(readFileSync(path.join(ROOT, "public", file))).length} gzipped`,
		);
	}
	for (const page of ["index.html", "console.html"]) {
		const html = readFileSync(path.join(ROOT, "public", page), "utf8");
		for (const [, ref] of html.matchAll(/(?:src|href)="(\/[^"]+)"/g)) {
			if (ref === "/" || ref === "/console") continue;
			expect(() => statSync(path.join(ROOT, "public", ref as string)), `${page} refers to ${ref}`).not.toThrow();
		}
	}
	expect(output).toMatch(/Read \d+ files from the assets directory/);
}, 120_000);
