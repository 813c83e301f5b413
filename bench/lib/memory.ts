/**
 * Resident memory of workerd, from /proc (Linux only). Process RSS, not the
 * object's heap: it also holds the runtime, both Workers and whatever V8 has
 * not given back, so a delta is an upper bound on what the object grew by.
 * @module
 */
import { readFileSync } from "node:fs";

/** VmRSS of each pid, summed, in MiB; undefined if any cannot be read. */
export function rssMiB(pids: number[]): number | undefined {
	if (pids.length === 0) return undefined;
	let kib = 0;
	for (const pid of pids) {
		try {
			const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
			if (!m) return undefined;
			kib += Number(m[1]);
		} catch {
			return undefined;
		}
	}
	return kib / 1024;
}
