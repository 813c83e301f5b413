/**
 * Schema patterns matched in linear time. JavaScript's RegExp backtracks:
 * `^(a+)+$` (exponential) or `[^@]+@[^@]+$` (quadratic: 15 s on 128 KiB of
 * `a`) would hold the object's one thread for as long as a publisher likes.
 * The validator builds `new RegExp(pattern, "u")` for `pattern` and
 * `patternProperties` as it goes; while a message is checked, that
 * constructor answers with an RE2 matcher (RE2JS: an automaton, linear in the
 * input, no `eval`) for every pattern of the topic's schema, compiled once
 * when the schema was. Anything else (the `regex` format's syntax check) gets
 * the real RegExp. The swap is synchronous, so no other code runs under it.
 *
 * RE2JS costs microseconds a match where RegExp costs tens of nanoseconds,
 * so a pattern whose backtracking is bounded by its shape (`boundedShape`:
 * the `^[A-Z]{3}$` and `^ord_[0-9a-z]{8,32}$` most schemas hold) runs on
 * RegExp; every other one on RE2.
 * @module
 */
import { RE2JS } from "re2js";

/** What the validator uses of a RegExp. */
interface Tester {
	test(input: string): boolean;
}

const NativeRegExp = globalThis.RegExp;

/**
 * Compiles a schema pattern for both engines: it must be ECMA-262 (what
 * JSON Schema specifies) and inside RE2's linear-time subset (no
 * backreferences, no lookaround). Returns the refusal's reason, or the matcher.
 */
export function compilePattern(pattern: string): Tester | string {
	try {
		new NativeRegExp(pattern, "u");
	} catch (err) {
		return `is not a valid regular expression: ${(err as Error).message}`;
	}
	let re: RE2JS;
	try {
		re = RE2JS.compile(RE2JS.translateRegExp(pattern));
	} catch (err) {
		return `is outside the linear-time subset tidings matches with (no backreferences, no lookaround): ${(err as Error).message}`;
	}
	if (boundedShape(pattern)) return new NativeRegExp(pattern, "u");
	return { test: (input: string) => re.test(input) };
}

/** Most choices the bounded quantifiers of a pattern on RegExp may combine. */
const MAX_CHOICES = 4096;

/**
 * Whether RegExp's backtracking on this pattern is bounded by its shape:
 * anchored at the start (one start position), no groups or alternation
 * (nothing nested to retry), each quantifier on a single character, class
 * or escape, and either one unbounded quantifier and no other that varies
 * (linear: it only gives back characters), or only bounded ones whose
 * choices multiply to at most `MAX_CHOICES`. Anything it cannot read is
 * not bounded.
 */
export function boundedShape(pattern: string): boolean {
	if (!pattern.startsWith("^")) return false;
	let unbounded = 0;
	let varying = 0;
	let choices = 1;
	let i = 1;
	while (i < pattern.length) {
		const c = pattern[i] as string;
		if (c === "(" || c === ")" || c === "|") return false;
		if (c === "\\") {
			const next = pattern[i + 1] ?? "";
			// Backreferences: \1…\9, \k<name>.
			if (/[1-9k]/.test(next)) return false;
			// \p{…}, \P{…}, \u{…}: skip the braces.
			i = /[pPu]/.test(next) && pattern[i + 2] === "{" ? pattern.indexOf("}", i) + 1 : i + 2;
			if (i === 0) return false;
		} else if (c === "[") {
			// A class ends at the first ] not escaped (in u mode, ] must be escaped inside).
			let j = i + 1;
			while (j < pattern.length && pattern[j] !== "]") j += pattern[j] === "\\" ? 2 : 1;
			if (j >= pattern.length) return false;
			i = j + 1;
		} else if (c === "*" || c === "+" || c === "?" || c === "{") {
			return false; // a quantifier with nothing before it to read (handled below, after an atom)
		} else i++;
		// The quantifier of the atom just read, if any.
		const q = /^(?:([*+?])|\{(\d+)(?:(,)(\d*))?\})\??/.exec(pattern.slice(i));
		if (!q) continue;
		i += q[0].length;
		const [, sym, min, comma, max] = q;
		const lo = sym ? (sym === "+" ? 1 : 0) : Number(min);
		const hi = sym
			? sym === "?"
				? 1
				: Number.POSITIVE_INFINITY
			: comma
				? max
					? Number(max)
					: Number.POSITIVE_INFINITY
				: lo;
		if (hi === lo) continue;
		varying++;
		if (hi === Number.POSITIVE_INFINITY) unbounded++;
		else choices *= hi - lo + 1;
	}
	if (unbounded > 0) return unbounded === 1 && varying === 1;
	return choices <= MAX_CHOICES;
}

/** The schema's patterns, by source, while `run` checks a message; `failed` is the last pattern that did not match. */
export function withLinearPatterns<T>(
	patterns: ReadonlyMap<string, Tester>,
	run: (failed: { pattern?: string }) => T,
): T {
	const failed: { pattern?: string } = {};
	function LinearRegExp(source: string, flags?: string): Tester {
		const tester = patterns.get(source);
		if (tester === undefined) return new NativeRegExp(source, flags);
		return {
			test(input: string) {
				const hit = tester.test(input);
				if (!hit) failed.pattern = source;
				return hit;
			},
		};
	}
	globalThis.RegExp = LinearRegExp as unknown as RegExpConstructor;
	try {
		return run(failed);
	} finally {
		globalThis.RegExp = NativeRegExp;
	}
}
