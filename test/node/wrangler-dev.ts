/**
 * Starts tidings the way `npm start` does (wrangler dev on workerd, persisted),
 * as a process group of its own so a test can kill it with SIGKILL.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const WRANGLER = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");

export async function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const srv = createServer();
		srv.once("error", reject);
		srv.listen(0, "127.0.0.1", () => {
			const { port } = srv.address() as { port: number };
			srv.close(() => resolve(port));
		});
	});
}

export interface DevServer {
	url: string;
	child: ChildProcess;
	output: () => string;
	/** kill -9 of wrangler and workerd together: no shutdown, no flush. */
	kill9: () => Promise<void>;
}

/**
 * `configs`: Wrangler config files, the first one served on `port` (more
 * than one runs several Workers in one session, bound to each other).
 * `vars`: more variables and secrets for the Worker (`TIDINGS_ALLOW_ANONYMOUS: "false"` to turn off the anonymous access `npm start` has).
 */
export async function startDev(
	persistTo: string,
	port: number,
	{
		configs = ["wrangler.toml"],
		timeoutMs = 60_000,
		health = "/healthz",
		vars = {},
	}: { configs?: string[]; timeoutMs?: number; health?: string; vars?: Record<string, string> } = {},
): Promise<DevServer> {
	// An inspector port of its own: wrangler picks a free one, but several dev servers starting at once can pick the same.
	const inspectorPort = await freePort();
	const child = spawn(
		process.execPath,
		[
			WRANGLER,
			"dev",
			...configs.flatMap((c) => ["-c", c]),
			"--port",
			String(port),
			"--ip",
			"127.0.0.1",
			"--inspector-port",
			String(inspectorPort),
			"--persist-to",
			persistTo,
			// Anonymous access, as `npm start` has, unless `vars` says otherwise.
			...Object.entries({ TIDINGS_ALLOW_ANONYMOUS: "true", ...vars }).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
			"--show-interactive-dev-session=false",
		],
		{
			cwd: ROOT,
			detached: true,
			stdio: ["ignore", "pipe", "pipe"],
			env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
		},
	);
	let out = "";
	child.stdout?.on("data", (d) => {
		out += String(d);
	});
	child.stderr?.on("data", (d) => {
		out += String(d);
	});
	const url = `http://127.0.0.1:${port}`;
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		if (child.exitCode !== null) throw new Error(`wrangler dev exited early:\n${out}`);
		try {
			const res = await fetch(`${url}${health}`);
			await res.arrayBuffer();
			if (res.status < 500) break;
		} catch {
			// not listening yet
		}
		if (Date.now() > deadline) {
			process.kill(-(child.pid as number), "SIGKILL");
			throw new Error(`wrangler dev did not answer within ${timeoutMs} ms:\n${out}`);
		}
		await new Promise((r) => setTimeout(r, 200));
	}
	return {
		url,
		child,
		output: () => out,
		kill9: async () => {
			const exited = new Promise((r) => child.once("exit", r));
			process.kill(-(child.pid as number), "SIGKILL");
			await exited;
		},
	};
}
