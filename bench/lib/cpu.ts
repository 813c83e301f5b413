/**
 * CPU time of this process (the load generator) and of workerd, per row, so
 * the table can say which side of the shared cores ran out. Linux only
 * (/proc); elsewhere workerd's share reads as unknown.
 * @module
 */
import { readdirSync, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

/** USER_HZ: 100 on every mainstream Linux build. */
const TICKS_PER_SECOND = 100;

function children(pid: number): number[] {
	try {
		return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
			readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ").filter(Boolean).map(Number),
		);
	} catch {
		return [];
	}
}

function commOf(pid: number): string {
	try {
		return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
	} catch {
		return "";
	}
}

/** Pids of the workerd processes Miniflare started under this process. */
export function findWorkerd(): number[] {
	const found: number[] = [];
	const queue = children(process.pid);
	while (queue.length > 0) {
		const pid = queue.shift() as number;
		if (commOf(pid) === "workerd") found.push(pid);
		queue.push(...children(pid));
	}
	return found;
}

/** utime + stime in ms, or undefined once the process is gone. */
function cpuMsOf(pid: number): number | undefined {
	try {
		const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
		// Fields after the parenthesised command name; utime and stime are the 12th and 13th of those.
		const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
		return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND) * 1000;
	} catch {
		return undefined;
	}
}

/** Ticks the hypervisor gave to other guests while this VM wanted to run (0 on bare metal). */
function stealTicks(): number | undefined {
	try {
		const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
		// "cpu user nice system idle iowait irq softirq steal …"
		const steal = Number(line.trim().split(/\s+/)[8]);
		return Number.isFinite(steal) ? steal : undefined;
	} catch {
		return undefined;
	}
}

export interface CpuShare {
	/** Cores used on average over the span: 1.0 is one core flat out. */
	loadGenerator: number;
	workerd: number | null;
	/** Cores taken away by the hypervisor: a noisy host shows up here, not in the other two. */
	steal: number | null;
}

/** Starts a span; calling the result ends it. */
export function cpuSpan(workerd: number[]): () => CpuShare {
	const wall = performance.now();
	const self = process.cpuUsage();
	const before = workerd.map(cpuMsOf);
	const stealBefore = stealTicks();
	return () => {
		const elapsed = performance.now() - wall;
		const used = process.cpuUsage(self);
		const after = workerd.map(cpuMsOf);
		let workerdMs: number | null = workerd.length === 0 ? null : 0;
		after.forEach((a, i) => {
			const b = before[i];
			if (workerdMs !== null && a !== undefined && b !== undefined) workerdMs += a - b;
		});
		const stealAfter = stealTicks();
		const stolen =
			stealBefore === undefined || stealAfter === undefined
				? null
				: ((stealAfter - stealBefore) / TICKS_PER_SECOND) * 1000;
		return {
			loadGenerator: (used.user + used.system) / 1000 / elapsed,
			workerd: workerdMs === null ? null : workerdMs / elapsed,
			steal: stolen === null ? null : stolen / elapsed,
		};
	};
}
