/**
 * A hand-picked mutation check for src/durable and src/protocol: applies one
 * mutation at a time (an exact text replacement), runs the test files that
 * should notice, and counts the mutants they kill. A report, not a gate; not
 * part of `npm test`.
 *
 *   npx tsx test/mutation/run.ts                 every mutation
 *   npx tsx test/mutation/run.ts dedupe timer    only those whose name contains a word given
 *
 * StrykerJS runs too, a file at a time: see README.md beside this file.
 * The files are restored after each mutation, also on Ctrl-C or SIGTERM.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { MUTATIONS, type Mutation } from "./mutations.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function apply(m: Mutation): () => void {
	const file = path.join(ROOT, m.file);
	const original = readFileSync(file, "utf8");
	const at = original.indexOf(m.find);
	if (at < 0 || original.indexOf(m.find, at + 1) >= 0) {
		throw new Error(`${m.name}: the text to mutate must occur exactly once in ${m.file}`);
	}
	writeFileSync(file, original.slice(0, at) + m.replace + original.slice(at + m.find.length));
	return () => writeFileSync(file, original);
}

/** `--whole-files`: run the named files in full, without `only` (to score an older suite whose test names differ). */
const wholeFiles = process.argv.includes("--whole-files");

function run(m: Mutation): { killed: boolean; ms: number } {
	const started = Date.now();
	const byProject = new Map<string, string[]>();
	for (const t of m.tests) {
		const project = t.startsWith("test/worker/") ? "workerd" : t.startsWith("test/browser/") ? "browser" : "node";
		byProject.set(project, [...(byProject.get(project) ?? []), t]);
	}
	let killed = false;
	for (const [project, files] of byProject) {
		const args = ["vitest", "run", "--project", project, ...files, ...(m.only && !wholeFiles ? ["-t", m.only] : [])];
		const env = { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" };
		const r = spawnSync("npx", args, { cwd: ROOT, encoding: "utf8", timeout: 600_000, env });
		// Killed only by a failing test: not by a run that found no test, or that could not start.
		const out = `${r.stdout}${r.stderr}`;
		if (/Tests\s+\d+ failed/.test(out)) killed = true;
		else if (r.status !== 0) throw new Error(`${m.name}: the run failed without a failing test:\n${out.slice(-2000)}`);
		if (killed) break;
	}
	return { killed, ms: Date.now() - started };
}

const words = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const chosen = MUTATIONS.filter((m) => words.length === 0 || words.some((w) => m.name.includes(w)));
let restore: (() => void) | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
	process.on(signal, () => {
		restore?.();
		process.exit(130);
	});
}
const results = new Map<Mutation, boolean>();
for (const m of chosen) {
	restore = apply(m);
	let result: { killed: boolean; ms: number };
	try {
		result = run(m);
	} finally {
		restore();
		restore = undefined;
	}
	results.set(m, result.killed);
	console.log(`${result.killed ? "killed  " : "SURVIVED"}  ${m.name}  (${(result.ms / 1000).toFixed(0)} s)`);
}
const score = (ms: Mutation[]) => {
	const k = ms.filter((m) => results.get(m)).length;
	return `${k}/${ms.length} killed (${((100 * k) / Math.max(1, ms.length)).toFixed(0)} %)`;
};
console.log(`\nmutation score, src/durable and src/protocol: ${score(chosen.filter((m) => !m.client))}`);
if (chosen.some((m) => m.client)) console.log(`mutation score, src/client: ${score(chosen.filter((m) => m.client))}`);
