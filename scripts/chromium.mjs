// Which Chromium the browser tests drive (with playwright-core, which brings no
// browser of its own). One place, used by test/browser and by
// scripts/check-chromium.mjs (`pretest`). In this order:
//   1. CHROMIUM_PATH, when set (a Chromium or Chrome binary; it must exist);
//   2. a system Chromium: `chromium` on the PATH, or /usr/bin/chromium;
//   3. the headless Chromium packaged in @sparticuz/chromium (a devDependency),
//      unpacked on first use to the temp directory: nothing to install but `npm ci`
//      (Linux x64 only: elsewhere, set CHROMIUM_PATH).
import { accessSync, constants, existsSync, rmSync } from "node:fs";
import path from "node:path";

/** The flags every launch uses, whichever Chromium it is. */
export const CHROMIUM_ARGS = [
	// Tests run as root on CI, where Chromium's sandbox cannot start.
	"--no-sandbox",
	// The browser tests serve their page themselves, which Chromium's local-network checks would treat as a public origin.
	"--disable-features=LocalNetworkAccessChecks",
];

function executable(file) {
	try {
		accessSync(file, constants.X_OK);
		return true;
	} catch {
		return false;
	}
}

function onPath(name) {
	for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
		if (dir && executable(path.join(dir, name))) return path.join(dir, name);
	}
	return undefined;
}

/**
 * Finds a Chromium to launch. Rejects only when CHROMIUM_PATH names a missing
 * file, or when the packaged Chromium cannot be had (not installed, or it
 * fails to unpack), with a message that says what to do.
 * @returns {Promise<{ path: string, source: string }>}
 */
export async function findChromium() {
	const configured = process.env.CHROMIUM_PATH;
	if (configured) {
		if (!existsSync(configured)) {
			throw new Error(
				`CHROMIUM_PATH is ${configured}, and there is no file there. Point it at a Chromium or Chrome binary, or unset it.`,
			);
		}
		return { path: configured, source: "CHROMIUM_PATH" };
	}
	const system = onPath("chromium") ?? (executable("/usr/bin/chromium") ? "/usr/bin/chromium" : undefined);
	if (system) return { path: system, source: "system" };
	// The package ships a Linux x64 build only.
	if (process.platform !== "linux" || process.arch !== "x64") {
		throw new Error(
			`no Chromium found, and the packaged one (@sparticuz/chromium) runs on Linux x64 only, not ${process.platform} ${process.arch}. Install Chromium or Chrome and set CHROMIUM_PATH to its binary.`,
		);
	}
	let packaged;
	try {
		packaged = (await import("@sparticuz/chromium")).default;
	} catch (err) {
		throw new Error(`no system Chromium, and @sparticuz/chromium is not installed (${err}). Run npm ci.`);
	}
	return { path: await packaged.executablePath(), source: "@sparticuz/chromium" };
}

/**
 * Forgets an unpacked packaged Chromium (a half-written one, say, after an
 * interrupted first run), so that the next findChromium() unpacks it again.
 * @param {{ path: string, source: string }} found
 */
export function forgetUnpacked(found) {
	if (found.source === "@sparticuz/chromium") rmSync(found.path, { force: true });
}
