#!/usr/bin/env node
// `pretest`: makes sure the browser suite has a Chromium that starts, before
// the run, and says which one (see scripts/chromium.mjs for the order). Stops
// the run only when none can be had; the browser suite is never skipped.
import { execFileSync } from "node:child_process";
import { findChromium, forgetUnpacked } from "./chromium.mjs";

function version(path) {
	return execFileSync(path, ["--version"], {
		encoding: "utf8",
		timeout: 30_000,
		stdio: ["ignore", "pipe", "pipe"],
	}).trim();
}

function fail(why) {
	console.error(`
tidings: the browser tests found no Chromium that starts: ${why}

They look, in this order, at CHROMIUM_PATH, a system \`chromium\` (or
/usr/bin/chromium), and the headless Chromium that npm ci installs with
@sparticuz/chromium. Run \`npm ci\` and then \`npm test\` again, or point
CHROMIUM_PATH at a Chromium or Chrome binary.
To run only the workerd and Node suites meanwhile: npx vitest run --project workerd --project node
`);
	process.exit(1);
}

let found;
try {
	found = await findChromium();
} catch (err) {
	fail(err instanceof Error ? err.message : String(err));
}
let ran;
try {
	ran = version(found.path);
} catch (err) {
	if (found.source !== "@sparticuz/chromium") fail(`${found.path} (${found.source}) does not start: ${err}`);
	// A packaged Chromium half unpacked by an interrupted run: unpack it again, once.
	forgetUnpacked(found);
	try {
		found = await findChromium();
		ran = version(found.path);
	} catch (again) {
		fail(`the packaged Chromium at ${found.path} does not start: ${again}`);
	}
}
console.log(`tidings: browser tests use ${ran} at ${found.path} (${found.source})`);
