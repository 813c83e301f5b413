/**
 * What the CLI prints and how it exits, in one place, so scripts can rely
 * on it: results on stdout (JSON with `--json`), errors and progress on
 * stderr, and an exit code per kind of failure.
 * @module
 */
import { TidingsError } from "../client/errors.js";

/** Exit codes (docs/cli.md). */
export const EXIT = {
	ok: 0,
	/** The API refused the request: the error's code and message are on stderr. */
	refused: 1,
	/** Bad usage: a missing argument, an unknown option, input that is not JSON. */
	usage: 2,
	/** tidings could not be reached (or did not answer in time). */
	network: 3,
	/** `consume`: the command could not be started. */
	command: 4,
} as const;

export class UsageError extends Error {}

/** Prints an error as `error: <code>: <message>` and answers its exit code. */
export function reportError(err: unknown): number {
	if (err instanceof UsageError) {
		process.stderr.write(`error: ${err.message}\n`);
		return EXIT.usage;
	}
	if (err instanceof TidingsError) {
		process.stderr.write(`error: ${err.code}${err.status ? ` (HTTP ${err.status})` : ""}: ${err.message}\n`);
		return err.code === "network" ? EXIT.network : EXIT.refused;
	}
	process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
	return EXIT.refused;
}

export function printJson(value: unknown): void {
	process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Rows as aligned columns. */
export function printTable(header: string[], rows: (string | number)[][]): void {
	const cells = [header, ...rows.map((r) => r.map(String))];
	const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
	for (const r of cells)
		process.stdout.write(
			`${r
				.map((c, i) => (c ?? "").padEnd(widths[i] ?? 0))
				.join("  ")
				.trimEnd()}\n`,
		);
}

/**
 * A one-line progress bar on stderr, redrawn in place on a terminal, a line
 * per 10 % elsewhere (a CI log). Hand-written: a bar is a dozen lines, not a dependency.
 */
export class Progress {
	#shown = -1;
	readonly #tty = Boolean(process.stderr.isTTY);

	constructor(
		private readonly label: string,
		private total: number | undefined,
	) {}

	update(done: number, total = this.total): void {
		this.total = total;
		if (total === undefined || total === 0) {
			if (this.#tty) process.stderr.write(`\r${this.label} ${done}`);
			return;
		}
		const pct = Math.min(100, Math.floor((done / total) * 100));
		if (!this.#tty) {
			if (pct >= this.#shown + 10 || (pct === 100 && this.#shown !== 100)) {
				this.#shown = pct;
				process.stderr.write(`${this.label} ${done}/${total} (${pct}%)\n`);
			}
			return;
		}
		const width = 30;
		const filled = Math.round((pct / 100) * width);
		process.stderr.write(`\r${this.label} [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${done}/${total}`);
	}

	done(): void {
		if (this.#tty) process.stderr.write("\n");
	}
}
