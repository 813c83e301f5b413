#!/usr/bin/env node
// `npm start`: tidings on workerd through `wrangler dev`, on port 8787, with
// local persistence in .wrangler/state and anonymous access for development.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";

const port = process.env.PORT ?? "8787";
const require = createRequire(import.meta.url);
const wrangler = require.resolve("wrangler/bin/wrangler.js");

console.log(`
tidings: local development on http://localhost:${port}
  anonymous access is ALLOWED (TIDINGS_ALLOW_ANONYMOUS=true): never deploy with it.
  data persists in .wrangler/state; stop with Ctrl-C.
  try:  curl -X POST localhost:${port}/v1/topics/demo/messages -H 'Content-Type: application/json' -d '{"data":"hi"}'
        open http://localhost:${port}/ for the live demo page
`);

const child = spawn(
	process.execPath,
	[
		wrangler,
		"dev",
		"--port",
		port,
		"--ip",
		process.env.HOST ?? "127.0.0.1",
		"--persist-to",
		".wrangler/state",
		"--var",
		"TIDINGS_ALLOW_ANONYMOUS:true",
		"--show-interactive-dev-session=false",
		...process.argv.slice(2),
	],
	{ stdio: "inherit", env: { WRANGLER_SEND_METRICS: "false", ...process.env } },
);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
