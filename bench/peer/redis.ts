/**
 * A throwaway redis-server for the peer rows: found on this machine, started
 * on a free loopback port in a temporary directory, stopped at the end. The
 * bench never touches a Redis it did not start, and tests never need one.
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export const INSTALL_HINT = "apt-get install -y redis-server (Debian/Ubuntu; prefix sudo if not root)";

/** How Redis keeps what it is given; each is a separate server, started fresh. */
export type Persistence = "aof" | "none";

export const PERSISTENCE_LABEL: Record<Persistence, string> = {
	aof: "AOF everysec",
	none: "no persistence",
};

const PERSISTENCE_ARGS: Record<Persistence, string[]> = {
	// The closest Redis comes to a durable log: every write appended, fsync'd once a second.
	aof: ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
	none: ["--appendonly", "no", "--save", ""],
};

/** redis-server on PATH, else where Debian and source builds put it; undefined if none. */
export function findRedisServer(): string | undefined {
	const dirs = [
		...(process.env.PATH ?? "").split(path.delimiter).filter(Boolean),
		"/usr/bin",
		"/usr/sbin",
		"/usr/local/bin",
	];
	for (const dir of dirs) {
		const file = path.join(dir, "redis-server");
		try {
			accessSync(file, constants.X_OK);
			return file;
		} catch {}
	}
	return undefined;
}

/** A port nobody listens on right now (the OS picks it; the tiny race until Redis binds it is acceptable here). */
function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const server = net.createServer();
		server.once("error", reject);
		server.listen(0, "127.0.0.1", () => {
			const address = server.address();
			server.close(() =>
				typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
			);
		});
	});
}

/** One PING over a raw socket: no client library, so readiness does not depend on BullMQ's driver. */
function ping(port: number): Promise<boolean> {
	return new Promise((resolve) => {
		const socket = net.connect(port, "127.0.0.1");
		const done = (ok: boolean) => {
			socket.destroy();
			resolve(ok);
		};
		socket.setTimeout(500, () => done(false));
		socket.once("error", () => done(false));
		socket.once("connect", () => socket.write("PING\r\n"));
		socket.once("data", (d) => done(d.toString().startsWith("+PONG")));
	});
}

/** Servers still running, so an exit by error or watchdog stops them too. */
const running = new Set<ChildProcess>();
process.once("exit", () => {
	for (const child of running) child.kill("SIGKILL");
});

export class RedisServer {
	private constructor(
		readonly port: number,
		readonly persistence: Persistence,
		readonly version: string,
		readonly pid: number,
		readonly dir: string,
		private readonly child: ChildProcess,
	) {}

	/**
	 * Starts a server in a temporary directory under `parent` (the same tmpfs
	 * as tidings' SQLite files where there is one, so neither side is
	 * measured on a disk the other does not use).
	 */
	static async start(binary: string, persistence: Persistence, parent = os.tmpdir()): Promise<RedisServer> {
		const dir = mkdtempSync(path.join(parent, `tidings-bench-redis-${persistence}-`));
		const port = await freePort();
		const args = [
			"--port",
			String(port),
			"--bind",
			"127.0.0.1",
			"--dir",
			dir,
			"--daemonize",
			"no",
			"--loglevel",
			"warning",
			"--logfile",
			"",
			// BullMQ refuses to lose jobs to eviction: the default, stated anyway.
			"--maxmemory-policy",
			"noeviction",
			...PERSISTENCE_ARGS[persistence],
		];
		const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
		running.add(child);
		let output = "";
		const keep = (d: Buffer) => {
			if (output.length < 4000) output += d.toString();
		};
		child.stdout?.on("data", keep);
		child.stderr?.on("data", keep);
		let exited = false;
		child.once("exit", () => {
			exited = true;
			running.delete(child);
		});
		const deadline = performance.now() + 10_000;
		while (!(await ping(port))) {
			if (exited || performance.now() > deadline) {
				child.kill("SIGKILL");
				rmSync(dir, { recursive: true, force: true });
				throw new Error(`redis-server did not start on port ${port}: ${output.trim().slice(0, 500)}`);
			}
			await sleep(50);
		}
		const version = await versionOf(binary);
		return new RedisServer(port, persistence, version, child.pid ?? 0, dir, child);
	}

	/** SIGTERM (Redis flushes and exits), SIGKILL if it takes too long; then the directory goes. */
	async stop(): Promise<void> {
		const child = this.child;
		if (child.exitCode === null && child.signalCode === null) {
			const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
			child.kill("SIGTERM");
			await Promise.race([exited, sleep(5_000)]);
			if (child.exitCode === null && child.signalCode === null) {
				child.kill("SIGKILL");
				await Promise.race([exited, sleep(2_000)]);
			}
		}
		running.delete(child);
		rmSync(this.dir, { recursive: true, force: true });
	}
}

function versionOf(binary: string): Promise<string> {
	return new Promise((resolve) => {
		const child = spawn(binary, ["--version"], { stdio: ["ignore", "pipe", "ignore"] });
		let out = "";
		child.stdout.on("data", (d: Buffer) => {
			out += d.toString();
		});
		child.once("error", () => resolve("unknown"));
		child.once("exit", () => resolve(/v=(\S+)/.exec(out)?.[1] ?? "unknown"));
	});
}
