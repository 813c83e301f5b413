/**
 * `npm run soak -- --minutes N [--seed S] [--quiet]`: runs the soak
 * (soak.ts) for N minutes of chaos (fractions allowed: `--minutes 0.5`),
 * prints the table, and exits 1 on any violation.
 * @module
 */
import { parseArgs } from "node:util";
import { runSoak } from "./soak.js";

const { values } = parseArgs({
	options: {
		minutes: { type: "string", default: "1" },
		seed: { type: "string" },
		quiet: { type: "boolean", default: false },
	},
});
const minutes = Number(values.minutes);
if (!(minutes > 0 && minutes <= 24 * 60)) {
	console.error(`--minutes must be a number of minutes above 0, not ${values.minutes}`);
	process.exit(2);
}
const seed = values.seed === undefined ? undefined : Number(values.seed);
const result = await runSoak({
	ms: Math.round(minutes * 60_000),
	seed,
	log: values.quiet ? undefined : (line) => console.log(line),
});
console.log(`\n${result.table}`);
process.exit(result.violations.length ? 1 : 0);
