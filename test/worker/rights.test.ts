import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isPattern, matchesPattern, rightsOn } from "../../src/protocol/rights.js";

describe("topic patterns", () => {
	it("match `*` as exactly one segment and `>` as one or more", () => {
		const cases: Array<[string, string, boolean]> = [
			["jobs.42", "jobs.42", true],
			["jobs.42", "jobs.43", false],
			["jobs.*", "jobs.42", true],
			["jobs.*", "jobs", false],
			["jobs.*", "jobs.42.log", false],
			["jobs.>", "jobs.42", true],
			["jobs.>", "jobs.42.log", true],
			["jobs.>", "jobs", false],
			["*.created", "user.created", true],
			["*.created", "user.deleted", false],
			["*.*", "a.b", true],
			["*.*", "a", false],
			[">", "anything", true],
			[">", "a.b.c", true],
			["*", "a", true],
			["*", "a.b", false],
			["a.*.c", "a.b.c", true],
			["a.*.c", "a.b.d", false],
		];
		for (const [pattern, topic, expected] of cases)
			expect(matchesPattern(pattern, topic), `${pattern} ~ ${topic}`).toBe(expected);
	});

	it("are well formed only with non-empty segments and `>` last", () => {
		for (const ok of ["a", "a.b", "*", ">", "a.*", "a.>", "*.b.>", "x_y-z.*"]) expect(isPattern(ok), ok).toBe(true);
		for (const bad of ["", ".", "a.", ".a", "a..b", ">.a", "a.>.b", "a b", "a/b", "a*", "**", "x".repeat(129)]) {
			expect(isPattern(bad), bad).toBe(false);
		}
	});

	it("agree with a regular-expression reference (fast-check)", () => {
		const seg = fc.constantFrom("a", "b", "c");
		const topic = fc.array(seg, { minLength: 1, maxLength: 4 }).map((s) => s.join("."));
		const pattern = fc
			.tuple(fc.array(fc.constantFrom("a", "b", "c", "*"), { minLength: 0, maxLength: 4 }), fc.boolean())
			.filter(([segs, tail]) => segs.length > 0 || tail)
			.map(([segs, tail]) => [...segs, ...(tail ? [">"] : [])].join("."));
		const reference = (p: string, t: string) =>
			new RegExp(
				`^${p
					.split(".")
					.map((s) => (s === "*" ? "[^.]+" : s === ">" ? "[^.]+(\\.[^.]+)*" : s))
					.join("\\.")}$`,
			).test(t);
		fc.assert(
			fc.property(pattern, topic, (p, t) => {
				expect(matchesPattern(p, t)).toBe(reference(p, t));
			}),
			{ numRuns: 2000 },
		);
	});

	it("collect rights from every matching pattern", () => {
		const grants = { "jobs.*": ["subscribe" as const], "jobs.42": ["publish" as const], ">": [] };
		expect([...rightsOn(grants, "jobs.42")].sort()).toEqual(["publish", "subscribe"]);
		expect([...rightsOn(grants, "jobs.7")]).toEqual(["subscribe"]);
		expect([...rightsOn(grants, "orders")]).toEqual([]);
	});
});
