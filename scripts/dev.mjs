#!/usr/bin/env node
// `npm start`: tidings on workerd through `wrangler dev` (port 8787, or PORT),
// with local persistence in .wrangler/state and anonymous access for
// development, and beside it the job-finished example worker
// (examples/job-finished/consumer.ts) that the demo page at / drives.
//   npm start                  both
//   npm start -- --no-example  only the Worker; other arguments go to `wrangler dev`
//   WRANGLER_LOG=info npm start  also a line per request
import { spawn } from "node:child_process";
import { createRequire } from "node:module";

const port = process.env.PORT ?? "8787";
const host = process.env.HOST ?? "127.0.0.1";
const base = `http://${host === "0.0.0.0" ? "localhost" : host}:${port}`;
const require = createRequire(import.meta.url);
const wrangler = require.resolve("wrangler/bin/wrangler.js");
const args = process.argv.slice(2);
const example = !args.includes("--no-example");

console.log(`tidings: starting on ${base} (PORT=8788 npm start for another port)…`);

const env = {
	// Nothing that needs the internet, so an offline machine sees no errors:
	// no telemetry, no Request.cf lookup (a placeholder is used), no update check banner.
	WRANGLER_SEND_METRICS: "false",
	CLOUDFLARE_CF_FETCH_ENABLED: "false",
	WRANGLER_HIDE_BANNER: "true",
	...process.env,
};
const children = [
	spawn(
		process.execPath,
		[
			wrangler,
			"dev",
			"--port",
			port,
			"--ip",
			host,
			"--persist-to",
			".wrangler/state",
			"--var",
			"TIDINGS_ALLOW_ANONYMOUS:true",
			"--show-interactive-dev-session=false",
			// Warnings and the Worker's errors only: the console polls, and a line per request would bury them.
			"--log-level",
			process.env.WRANGLER_LOG ?? "warn",
			...args.filter((a) => a !== "--no-example"),
		],
		{ stdio: "inherit", env },
	),
];

for (const sig of ["SIGINT", "SIGTERM"]) {
	process.on(sig, () => {
		for (const c of children) c.kill(sig);
	});
}
children[0].on("exit", (code, signal) => {
	for (const c of children.slice(1)) c.kill("SIGTERM");
	process.exit(code ?? (signal ? 1 : 0));
});

async function ready() {
	for (;;) {
		try {
			const res = await fetch(`${base}/healthz`);
			await res.arrayBuffer();
			if (res.ok) return;
		} catch {
			// not listening yet
		}
		if (children[0].exitCode !== null) return;
		await new Promise((r) => setTimeout(r, 250));
	}
}

await ready();
if (children[0].exitCode === null) {
	if (example) {
		children.push(
			spawn(process.execPath, ["--import", "tsx", "examples/job-finished/consumer.ts"], {
				stdio: ["ignore", "ignore", "inherit"],
				env: { ...env, TIDINGS_URL: base },
			}),
		);
	}
	console.log(`
  tidings is running (local development: anonymous access is ALLOWED, never deploy with TIDINGS_ALLOW_ANONYMOUS)
    demo      ${base}/
    console   ${base}/console
    API       ${base}/v1/topics            docs/http-api.md
    client    ${base}/tidings.js
  ${example ? "the job-finished example worker is consuming `jobs` (examples/job-finished)" : "no example worker (--no-example)"}
  data persists in .wrangler/state; stop with Ctrl-C.
`);
}
