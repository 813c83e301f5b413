/**
 * One workerd, two Workers: tidings and the ceiling. Each gets a direct
 * socket, so requests reach it without Miniflare's entry Worker or any Node
 * proxy in the path (that proxy is what makes `wrangler dev` slow).
 * @module
 */
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { Log, LogLevel, Miniflare, type WorkerOptions } from "miniflare";

export const COMPATIBILITY_DATE = "2026-04-20";

export interface Workers {
	mf: Miniflare;
	/** Base URL (http://127.0.0.1:port) of each Worker's own socket. */
	urls: Record<"tidings" | "ceiling", string>;
	output: RuntimeOutput;
}

export interface WorkerPaths {
	tidings: string;
	ceiling: string;
}

/**
 * workerd's stdout and stderr, counted rather than echoed: one failing
 * request per publish would otherwise bury the table under stack traces.
 */
export class RuntimeOutput {
	lines = 0;
	readonly first: string[] = [];

	attach(stream: Readable): void {
		createInterface({ input: stream }).on("line", (line) => {
			this.lines++;
			if (this.first.length < 8) this.first.push(line.slice(0, 300));
		});
	}
}

function worker(name: string, scriptPath: string, extra: Partial<WorkerOptions>): WorkerOptions {
	return {
		name,
		modules: true,
		scriptPath,
		compatibilityDate: COMPATIBILITY_DATE,
		unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
		...extra,
	} as WorkerOptions;
}

/**
 * `storageDir` holds the Durable Objects' SQLite files. workerd's in-memory
 * storage has no SQLite, so a tmpfs directory is the nearest to "in memory";
 * without one Miniflare uses a temporary directory on disk.
 */
export async function startWorkers(paths: WorkerPaths, storageDir: string | undefined): Promise<Workers> {
	const output = new RuntimeOutput();
	const mf = new Miniflare({
		host: "127.0.0.1",
		port: 0,
		log: new Log(LogLevel.WARN),
		// The placeholder `cf` object: Miniflare would otherwise fetch the real one from the internet.
		cf: false,
		...(storageDir === undefined ? {} : { durableObjectsPersist: storageDir }),
		handleRuntimeStdio: (stdout, stderr) => {
			output.attach(stdout);
			output.attach(stderr);
		},
		workers: [
			worker("tidings", paths.tidings, {
				durableObjects: { TOPIC: { className: "Topic", useSQLite: true } },
				bindings: { TIDINGS_ALLOW_ANONYMOUS: "true" },
			}),
			worker("ceiling", paths.ceiling, {
				durableObjects: { CEILING: { className: "Ceiling", useSQLite: true } },
			}),
		],
	});
	await mf.ready;
	const url = async (name: string) => (await mf.unsafeGetDirectURL(name)).origin;
	return { mf, urls: { tidings: await url("tidings"), ceiling: await url("ceiling") }, output };
}
