#!/usr/bin/env node
// `npm test` runs the browser suite in Debian's Chromium (driven by
// playwright-core, which downloads no browser of its own). Without it the run
// stops here with the command that installs it; the suite is never skipped.
import { existsSync } from "node:fs";

const path = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
if (!existsSync(path)) {
	console.error(`
tidings: the browser tests need Chromium at ${path}, and it is not there.
Install it with:

    sudo apt-get update && sudo apt-get install -y chromium

(or point CHROMIUM_PATH at a Chromium or Chrome binary), then run npm test again.
To run only the workerd and Node suites meanwhile: npx vitest run --project workerd --project node
`);
	process.exit(1);
}
