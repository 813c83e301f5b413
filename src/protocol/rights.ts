/**
 * Rights on topics, granted per topic pattern. Patterns are topic names whose
 * segments may be `*` (exactly one segment) or, last, `>` (one or more
 * segments), as in NATS subjects: `jobs.*` grants `jobs.42` but not `jobs` or
 * `jobs.42.log`; `jobs.>` grants both of the latter but not `jobs`.
 * Shared by the Worker (checks), the token helpers (minting) and the client.
 * @module
 */

export const RIGHTS = ["publish", "subscribe", "consume", "admin"] as const;
export type Right = (typeof RIGHTS)[number];

/** Topic pattern → rights on the topics it matches. */
export type Grants = Record<string, Right[]>;

const SEGMENT = /^[A-Za-z0-9_-]+$/;

/** Whether `pattern` is well formed: segments, `*` anywhere, `>` only last. */
export function isPattern(pattern: string): boolean {
	if (pattern.length < 1 || pattern.length > 128) return false;
	const parts = pattern.split(".");
	return parts.every((p, i) => SEGMENT.test(p) || p === "*" || (p === ">" && i === parts.length - 1));
}

export function matchesPattern(pattern: string, topic: string): boolean {
	const p = pattern.split(".");
	const t = topic.split(".");
	for (let i = 0; i < p.length; i++) {
		const seg = p[i];
		if (seg === ">") return t.length > i;
		if (i >= t.length) return false;
		if (seg !== "*" && seg !== t[i]) return false;
	}
	return p.length === t.length;
}

/** Every right the grants give on `topic`. */
export function rightsOn(grants: Grants, topic: string): Set<Right> {
	const out = new Set<Right>();
	for (const [pattern, rights] of Object.entries(grants)) {
		if (matchesPattern(pattern, topic)) for (const r of rights) out.add(r);
	}
	return out;
}
