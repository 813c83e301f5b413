/**
 * Topic schemas under hostile input (fast-check): pathological schemas
 * (backtracking patterns, applicators that multiply, `$ref` cycles,
 * `uniqueItems`) and messages (long strings, long arrays, deep nesting)
 * never hold the object: each check ends, in bounded time, with a verdict.
 * And for ordinary schemas, the verdict is the one an independent reference
 * validator (below, written from the spec) gives.
 */

import { Validator } from "@cfworker/json-schema";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileSchema, type Draft } from "../../src/durable/schema/compile.js";
import { compileFastPath } from "../../src/durable/schema/fast-path.js";
import type { JsonSchema } from "../../src/protocol/message.js";
import { call, publish, uniqueTopic } from "./helpers.js";

/** A check of one message may take at most this (the machine is shared: generous, but far below a stall). */
const MAX_CHECK_MS = 1500;

const EVIL_PATTERNS = [
	"^(a+)+$",
	"^(a|a)*$",
	"^(a|aa)+$",
	"[^@]+@[^@]+$",
	"a*a*a*a*a*!",
	"(\\w+\\s?)+$",
	"^(([a-z])+.)+[A-Z]([a-z])+$",
	"(.*a){12}",
];
const evilString = fc.oneof(
	fc.nat({ max: 60_000 }).map((n) => "a".repeat(n)),
	fc.nat({ max: 30_000 }).map((n) => `${"a".repeat(n)}!`),
	fc.nat({ max: 20_000 }).map((n) => "ab ".repeat(n)),
	fc.string({ maxLength: 40 }),
);

/** Schemas built from the keywords that cost: nested applicators, $refs into $defs (cycles included), patterns. */
function hostileSchema() {
	const leaf = fc.oneof(
		fc.constant<unknown>(true),
		fc.constant<unknown>(false),
		fc.constantFrom(...EVIL_PATTERNS).map((pattern) => ({ type: "string", pattern })),
		fc.constantFrom(...EVIL_PATTERNS).map((p) => ({ patternProperties: { [p]: { type: "number" } } })),
		fc.constantFrom("#", "#/$defs/a", "#/$defs/b").map(($ref) => ({ $ref })),
		fc.constant<unknown>({ type: "array", uniqueItems: true }),
		fc.constantFrom("string", "number", "object", "array").map((type) => ({ type })),
	);
	const { node } = fc.letrec<{ node: unknown }>((tie) => ({
		node: fc.oneof(
			{ depthSize: "small", withCrossShrink: true },
			leaf,
			fc.record({ anyOf: fc.array(tie("node"), { minLength: 1, maxLength: 3 }) }),
			fc.record({ oneOf: fc.array(tie("node"), { minLength: 1, maxLength: 3 }) }),
			fc.record({ allOf: fc.array(tie("node"), { minLength: 1, maxLength: 3 }) }),
			fc.record({ not: tie("node") }),
			fc.record({ items: tie("node") }),
			fc.record({ properties: fc.record({ a: tie("node"), b: tie("node") }, { requiredKeys: [] }) }),
		),
	}));
	return fc.record({ root: node, a: node, b: node }).map(({ root, a, b }) => {
		const base = root !== null && typeof root === "object" ? root : { allOf: [root] };
		return { ...(base as object), $defs: { a, b } };
	});
}

/** `$defs` of `n` levels, each an anyOf of two refs to the next: 2^n evaluations of one value. */
function doubling(n: number) {
	const $defs: Record<string, unknown> = { [`d${n}`]: false };
	for (let i = 0; i < n; i++)
		$defs[`d${i}`] = { anyOf: [{ $ref: `#/$defs/d${i + 1}` }, { $ref: `#/$defs/d${i + 1}` }] };
	return { $ref: "#/$defs/d0", $defs };
}

function timed<T>(run: () => T): { value: T; ms: number } {
	const start = performance.now();
	const value = run();
	return { value, ms: performance.now() - start };
}

describe("pathological schemas and messages", () => {
	it.each([
		["a backtracking pattern (exponential in JavaScript)", { pattern: "^(a+)+$" }, `${"a".repeat(100_000)}!`],
		["a quadratic pattern on 128 KiB", { pattern: "[^@]+@[^@]+$" }, "a".repeat(130_000)],
		["anyOf doubling 40 levels deep", doubling(40), { any: "thing" }],
		["a $ref cycle that never descends", { allOf: [{ $ref: "#" }] }, 1],
		["uniqueItems on a long array", { uniqueItems: true }, Array.from({ length: 30_000 }, (_, i) => i)],
		["recursion as deep as the data", { items: { $ref: "#" } }, JSON.parse(`${"[".repeat(3000)}${"]".repeat(3000)}`)],
	])("%s: the check ends quickly with a verdict", (_what, schema, data) => {
		const compiled = compileSchema(schema);
		if (!compiled.ok) throw new Error(compiled.reason);
		const json = JSON.stringify(data);
		const { value, ms } = timed(() => compiled.check(data, json.length));
		expect(ms).toBeLessThan(MAX_CHECK_MS);
		// Either verdict is fine for the backtracking ones; the point is that there is one.
		if (value) expect(value.expected).toEqual(expect.any(String));
	});

	it("through the object: a publish against a backtracking pattern is answered at once, and the socket of the object stays usable", async () => {
		const topic = uniqueTopic();
		expect((await call("PUT", `/v1/topics/${topic}`, { schema: { pattern: "^(a+)+$" } })).status).toBe(200);
		const start = Date.now();
		const res = await publish(topic, { data: `${"a".repeat(120_000)}!` });
		expect(res.status).toBe(400);
		expect(Date.now() - start).toBeLessThan(5000);
		expect((await publish(topic, { data: "aaaa" })).status).toBe(201);
	});

	it("fuzz: any hostile schema either compiles or is refused with a reason, and every check of any message ends in bounded time", () => {
		let checks = 0;
		let refused = 0;
		const reasons = new Set<string>();
		fc.assert(
			fc.property(
				hostileSchema(),
				fc.array(fc.oneof(fc.jsonValue({ maxDepth: 4 }), evilString, fc.array(evilString, { maxLength: 4 })), {
					minLength: 1,
					maxLength: 3,
				}),
				(schema, messages) => {
					const compiled = compileSchema(schema as JsonSchema);
					if (!compiled.ok) {
						refused++;
						reasons.add(compiled.reason.replace(/\d+/g, "N").slice(0, 100));
						expect(compiled.reason).toMatch(/\S/);
						return;
					}
					for (const data of messages) {
						const json = JSON.stringify(data);
						const { ms } = timed(() => compiled.check(data, json.length));
						checks++;
						expect(ms).toBeLessThan(MAX_CHECK_MS);
					}
				},
			),
			{ numRuns: 150 },
		);
		console.log(`schema fuzz: ${checks} checks, ${refused} schemas refused (${[...reasons].join("; ")})`);
	});
});

// --- Agreement with a reference validator ------------------------------------------------

type Schema = Record<string, unknown>;

/** Written from the JSON Schema spec for this subset only; shares no code with the object's checker. */
function reference(schema: Schema, x: unknown): boolean {
	const kind =
		x === null
			? "null"
			: Array.isArray(x)
				? "array"
				: typeof x === "number" && Number.isInteger(x)
					? "integer"
					: typeof x;
	if (schema.type !== undefined) {
		const ok = schema.type === kind || (schema.type === "number" && kind === "integer");
		if (!ok) return false;
	}
	if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(x))) return false;
	if (typeof x === "number") {
		if (typeof schema.minimum === "number" && x < schema.minimum) return false;
		if (typeof schema.maximum === "number" && x > schema.maximum) return false;
	}
	if (typeof x === "string") {
		const length = [...x].length;
		if (typeof schema.minLength === "number" && length < schema.minLength) return false;
		if (typeof schema.maxLength === "number" && length > schema.maxLength) return false;
		if (typeof schema.pattern === "string" && !new RegExp(schema.pattern, "u").test(x)) return false;
	}
	if (Array.isArray(x) && schema.items !== undefined) {
		if (!x.every((item) => reference(schema.items as Schema, item))) return false;
	}
	if (kind === "object") {
		const o = x as Record<string, unknown>;
		const required = (schema.required as string[] | undefined) ?? [];
		if (!required.every((k) => Object.hasOwn(o, k))) return false;
		const props = (schema.properties as Record<string, Schema> | undefined) ?? {};
		for (const [k, v] of Object.entries(o)) {
			if (Object.hasOwn(props, k)) {
				if (!reference(props[k] as Schema, v)) return false;
			} else if (schema.additionalProperties === false) return false;
		}
	}
	return true;
}

const PATTERNS = ["^[A-Z]{3}$", "^ord_[0-9a-z]+$", "@", "^\\d{4}-\\d{2}-\\d{2}$", "é|ß"];

function plainSchema() {
	const { node } = fc.letrec<{ node: Schema }>((tie) => ({
		node: fc.oneof(
			{ depthSize: "small", withCrossShrink: true },
			fc.record({ type: fc.constantFrom("string", "number", "integer", "boolean", "null") }),
			fc.record(
				{
					type: fc.constantFrom("number", "integer"),
					minimum: fc.integer({ min: -5, max: 5 }),
					maximum: fc.integer({ min: -5, max: 50 }),
				},
				{ requiredKeys: [] },
			),
			fc.record({ type: fc.constant("string"), minLength: fc.nat(3), maxLength: fc.nat(12) }, { requiredKeys: [] }),
			fc.record({ type: fc.constant("string"), pattern: fc.constantFrom(...PATTERNS) }, { requiredKeys: ["pattern"] }),
			fc.record({
				enum: fc.array(fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom("EUR", "USD", "a")), {
					minLength: 1,
					maxLength: 3,
				}),
			}),
			fc.record({ type: fc.constant("array"), items: tie("node") }, { requiredKeys: ["type"] }),
			fc.record(
				{
					type: fc.constant("object"),
					properties: fc.record({ a: tie("node"), b: tie("node") }, { requiredKeys: [] }),
					required: fc.subarray(["a", "b"]),
					additionalProperties: fc.boolean(),
				},
				{ requiredKeys: ["type"] },
			),
		),
	}));
	return node;
}

const value = fc.letrec<{ v: unknown }>((tie) => ({
	v: fc.oneof(
		{ depthSize: "small" },
		fc.integer({ min: -6, max: 60 }),
		fc.double({ min: -10, max: 10, noNaN: true }),
		fc.constantFrom("EUR", "USD", "ord_12ab", "2026-11-30", "a@b", "éé", "", "abcdefghijklmnop"),
		fc.string({ maxLength: 8 }),
		fc.boolean(),
		fc.constant(null),
		fc.array(tie("v"), { maxLength: 3 }),
		fc.record({ a: tie("v"), b: tie("v"), c: tie("v") }, { requiredKeys: [] }),
	),
})).v;

describe("verdicts", () => {
	it("property: an ordinary schema accepts exactly what the reference validator accepts (drafts 7 and 2020-12)", () => {
		let matched = 0;
		let mismatched = 0;
		fc.assert(
			fc.property(
				plainSchema(),
				fc.constantFrom(undefined, "http://json-schema.org/draft-07/schema#"),
				value,
				(schema, $schema, data) => {
					const compiled = compileSchema(($schema ? { ...schema, $schema } : schema) as JsonSchema);
					if (!compiled.ok) throw new Error(compiled.reason);
					const verdict = compiled.check(data, JSON.stringify(data).length) === undefined;
					if (verdict) matched++;
					else mismatched++;
					expect(verdict).toBe(reference(schema, data));
				},
			),
			{ numRuns: 1000 },
		);
		console.log(`schema verdicts: ${matched} accepted, ${mismatched} refused`);
	});
});

function outcome(run: () => boolean): boolean | "threw" {
	try {
		return run();
	} catch {
		return "threw";
	}
}

describe("the fast path", () => {
	/** Plain schemas, combined with the applicators and keywords the fast path implements, and some it does not. */
	function mixedSchema() {
		const { node } = fc.letrec<{ node: unknown }>((tie) => ({
			node: fc.oneof(
				{ depthSize: "small", withCrossShrink: true },
				plainSchema(),
				fc.constantFrom<unknown>(true, false, { $ref: "#/$defs/a" }, { format: "email" }, { format: "date-time" }),
				fc.record({ const: value }),
				fc.record({ anyOf: fc.array(tie("node"), { minLength: 1, maxLength: 3 }) }),
				fc.record({ oneOf: fc.array(tie("node"), { minLength: 1, maxLength: 3 }) }),
				fc.record({ allOf: fc.array(tie("node"), { minLength: 1, maxLength: 3 }) }),
				fc.record({ not: tie("node") }),
				fc.record({ minProperties: fc.nat(3), maxProperties: fc.nat(3) }, { requiredKeys: [] }),
				fc.record(
					{ exclusiveMinimum: fc.integer({ min: -5, max: 5 }), exclusiveMaximum: fc.integer({ min: -5, max: 50 }) },
					{ requiredKeys: [] },
				),
				// Not in the fast path: the whole schema goes to the validator.
				fc.record({ uniqueItems: fc.boolean(), contains: tie("node") }, { requiredKeys: [] }),
			),
		}));
		return fc
			.record({ root: node, a: node })
			.map(({ root, a }) =>
				root !== null && typeof root === "object"
					? { ...(root as object), $defs: { a } }
					: { allOf: [root], $defs: { a } },
			);
	}

	it("property: says what the validator says, on every schema it takes (drafts 7 and 2020-12)", () => {
		let compared = 0;
		let skipped = 0;
		fc.assert(
			fc.property(
				mixedSchema(),
				fc.constantFrom<Draft>("7", "2020-12"),
				fc.array(value, { minLength: 1, maxLength: 4 }),
				(schema, draft, values) => {
					const copy = structuredClone(schema) as object;
					const validator = new Validator(copy, draft, true);
					const lookup = (validator as unknown as { lookup: Record<string, unknown> }).lookup;
					const patterns = new Map(PATTERNS.map((p) => [p, new RegExp(p, "u")]));
					const fast = compileFastPath(copy, { draft, lookup, patterns, tick: () => {} });
					if (!fast) {
						skipped++;
						return;
					}
					for (const data of values) {
						compared++;
						const verdict = outcome(() => validator.validate(data).valid);
						const quick = outcome(() => fast(data));
						// A $ref cycle that never descends overflows the validator's stack (in the object the step
						// budget ends it first, a refusal): the fast path must not accept what it could not check.
						if (verdict === "threw") expect(quick).not.toBe(true);
						else expect(quick).toBe(verdict);
					}
				},
			),
			{
				numRuns: 1500,
				// Found by a run: a $ref cycle through anyOf that never descends (the fast path stopped at `true`).
				examples: [
					[
						{ $ref: "#/$defs/a", $defs: { a: { anyOf: [true, { $ref: "#/$defs/a" }, { type: "string" }] } } } as never,
						"7",
						[[]],
					],
				],
			},
		);
		console.log(`fast path: ${compared} verdicts compared, ${skipped} schemas left to the validator`);
	});
});
