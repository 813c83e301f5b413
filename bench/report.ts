/** The printed tables and the summary rows of results.json. */
import { CONFIG, IMPLS, type Impl, TARGETS } from "./config.js";
import type { CpuShare } from "./lib/cpu.js";
import { round } from "./lib/stats.js";
import { type Cell, renderTable } from "./lib/table.js";
import {
	GROUP_ROWS,
	type ImplResults,
	LATENCY_ROWS,
	THROUGHPUT_ROWS,
	type ThroughputKind,
	type ThroughputResult,
} from "./measure.js";

export interface SummaryRow {
	row: string;
	tidings: number | undefined;
	/** null: the ceiling has no such feature (consumer groups). */
	ceiling: number | undefined | null;
	/** tidings / ceiling. */
	ratio: number;
	target: string;
	pass?: boolean;
}

function ratio(a: number | undefined, b: number | undefined): number {
	return a === undefined || b === undefined || b === 0 ? Number.NaN : round(a / b);
}

export function summarize(r: Record<Impl, ImplResults>): SummaryRow[] {
	const rows: SummaryRow[] = [];
	const add = (
		row: string,
		pick: (x: ImplResults) => number | undefined,
		target = "",
		check?: (tidings: number, ratio: number) => boolean,
	) => {
		const t = pick(r.tidings);
		const c = pick(r.ceiling);
		const q = ratio(t, c);
		const pass = check && t !== undefined && !Number.isNaN(q) ? check(t, q) : undefined;
		rows.push({ row, tidings: t, ceiling: c, ratio: q, target, ...(pass === undefined ? {} : { pass }) });
	};
	add(
		"HTTP publish, single (msg/s)",
		(x) => x.httpSingle?.messagesPerSecond,
		`≥ ${TARGETS.singleRatio}× ceiling`,
		(_, q) => q >= TARGETS.singleRatio,
	);
	add(
		`HTTP publish, batch of ${CONFIG.batchSize} (msg/s)`,
		(x) => x.httpBatch?.messagesPerSecond,
		`≥ ${TARGETS.batchPerSecond.toLocaleString("en-US")} msg/s`,
		(t) => t >= TARGETS.batchPerSecond,
	);
	add(`WS publish, window ${CONFIG.wsWindow} (msg/s)`, (x) => x.wsPublish?.messagesPerSecond);
	for (const { key, label } of GROUP_ROWS) {
		const tidings = r.tidings.groups?.[key]?.messagesPerSecond;
		rows.push({ row: `group: ${label} (msg/s)`, tidings, ceiling: null, ratio: Number.NaN, target: "" });
	}
	for (const { key, label, subscribers } of LATENCY_ROWS) {
		add(`latency p50, ${label} (ms)`, (x) => x.latency[key]?.p50Ms);
		const p99 = (x: ImplResults) => x.latency[key]?.p99Ms;
		if (subscribers === 100) {
			add(`latency p99, ${label} (ms)`, p99, `≤ ${TARGETS.p99At100Ms} ms`, (t) => t <= TARGETS.p99At100Ms);
		} else add(`latency p99, ${label} (ms)`, p99);
	}
	return rows;
}

export function summaryTable(rows: SummaryRow[]): string {
	const verdict = (pass: boolean | undefined) => (pass === undefined ? "" : pass ? "PASS" : "FAIL");
	return renderTable(
		["row", "tidings", "ceiling", "ratio", "target", ""],
		rows.map((s) => [
			s.row,
			s.tidings ?? Number.NaN,
			s.ceiling === null ? "—" : (s.ceiling ?? Number.NaN),
			s.ceiling === null ? "—" : s.ratio,
			s.target,
			verdict(s.pass),
		]),
	);
}

function cores(c: CpuShare | undefined): string {
	if (!c) return "-";
	const n = (x: number | null) => (x === null ? "?" : x.toFixed(2));
	return `${n(c.workerd)} / ${n(c.loadGenerator)} / ${n(c.steal)}`;
}

function spread(t: ThroughputResult | undefined): string {
	const fmt = (n: number) => n.toLocaleString("en-US");
	return t ? `${fmt(t.minMessagesPerSecond)}–${fmt(t.maxMessagesPerSecond)}` : "-";
}

/** Grouped by row, tidings above ceiling, so each pair reads together. */
export function detailTable(r: Record<Impl, ImplResults>): string {
	const rows: Cell[][] = [];
	for (const kind of Object.keys(THROUGHPUT_ROWS) as ThroughputKind[]) {
		for (const impl of IMPLS) {
			const t: ThroughputResult | undefined = r[impl][kind];
			const failed = t?.failed ?? Number.NaN;
			rows.push([
				THROUGHPUT_ROWS[kind],
				impl,
				t?.requestsPerSecond ?? Number.NaN,
				spread(t),
				failed,
				"",
				"",
				"",
				"",
				cores(t?.cpu),
			]);
		}
	}
	const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
	for (const { key, label } of GROUP_ROWS) {
		const g = r.tidings.groups?.[key];
		rows.push([
			`group, ${label}`,
			"tidings",
			g?.requestsPerSecond ?? Number.NaN,
			spread(g),
			g?.failed ?? Number.NaN,
			"",
			"",
			"",
			"",
			cores(g?.cpu),
			g?.duplicates ?? Number.NaN,
			g ? `${pct(g.minShare)}–${pct(g.maxShare)}` : "-",
		]);
	}
	for (const { key, label } of LATENCY_ROWS) {
		for (const impl of IMPLS) {
			const l = r[impl].latency[key];
			rows.push([
				`latency, ${label}`,
				impl,
				l?.achievedRatePerSecond ?? Number.NaN,
				"",
				l?.failures.failed ?? Number.NaN,
				l?.skippedSends ?? Number.NaN,
				l ? `${((100 * l.deliveries) / Math.max(1, l.expectedDeliveries)).toFixed(1)}%` : "-",
				l?.meanMs ?? Number.NaN,
				l?.maxMs ?? Number.NaN,
				cores(l?.cpu),
			]);
		}
	}
	return renderTable(
		[
			"details",
			"impl",
			"req/s",
			"msg/s min–max",
			"failed",
			"skipped",
			"delivered",
			"mean ms",
			"max ms",
			"cores workerd / loadgen / steal",
			"duplicates",
			"share min–max",
		],
		rows,
	);
}
