/**
 * `npm run bench -- --only groups,peer`: which parts run. A part compared
 * with another row gets that row too, so every ratio still has its baseline
 * measured in the same run.
 * @module
 */
import type { ThroughputKind } from "./measure.js";

export const PARTS = ["throughput", "typed", "groups", "peer", "starvation", "memory", "latency", "streams"] as const;
export type Part = (typeof PARTS)[number];

export interface Plan {
	/** What was asked for (every part by default). */
	requested: Part[];
	/** What runs: the request plus the rows its ratios need. */
	parts: Part[];
	/** The throughput rows that run: all with `throughput`, else only the baselines others need. */
	throughputKinds: ThroughputKind[];
}

const ALL_KINDS: ThroughputKind[] = ["httpSingle", "httpBatch", "wsPublish"];

function requestedParts(argv: string[]): Part[] {
	const i = argv.findIndex((a) => a === "--only" || a.startsWith("--only="));
	if (i < 0) return [...PARTS];
	const arg = argv[i] ?? "";
	const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[i + 1];
	if (!value) throw new Error(`--only needs a list: --only ${PARTS.join(",")}`);
	const names = value
		.split(",")
		.map((s) => s.trim())
		.filter(Boolean);
	const unknown = names.filter((n) => !(PARTS as readonly string[]).includes(n));
	if (unknown.length > 0) throw new Error(`unknown part ${unknown.join(", ")}; the parts are ${PARTS.join(", ")}`);
	return PARTS.filter((p) => names.includes(p));
}

export function plan(argv: string[]): Plan {
	const requested = requestedParts(argv);
	const want = new Set<Part>(requested);
	// The peer's ratios are against tidings' group rows and its single and batch publishes.
	if (want.has("peer")) want.add("groups");
	// The SSE fan-out row reads beside the WebSocket fan-out row at the same rate.
	if (want.has("streams")) want.add("latency");
	const kinds = new Set<ThroughputKind>(want.has("throughput") ? ALL_KINDS : []);
	// Latency derives its rate from both single rows; starvation and the peer compare with tidings' single row.
	if (want.has("latency") || want.has("starvation") || want.has("peer")) kinds.add("httpSingle");
	if (want.has("peer")) {
		kinds.add("httpBatch");
		kinds.add("wsPublish");
	}
	return {
		requested,
		parts: PARTS.filter((p) => want.has(p)),
		throughputKinds: ALL_KINDS.filter((k) => kinds.has(k)),
	};
}
