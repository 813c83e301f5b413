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
	try {
		const re = RE2JS.compile(RE2JS.translateRegExp(pattern));
		return { test: (input: string) => re.test(input) };
	} catch (err) {
		return `is outside the linear-time subset tidings matches with (no backreferences, no lookaround): ${(err as Error).message}`;
	}
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
