/**
 * Compiling a topic's JSON Schema, once per revision, into a checker for
 * one message's `data`. The validator is @cfworker/json-schema (no `eval`,
 * drafts 7 and 2020-12); it interprets the schema as it goes, so what can be
 * known ahead is checked here and refused with a reason: keyword values of
 * the wrong type (a `"type": "strin"` would otherwise refuse every message),
 * patterns that are not ECMA-262 or not linear-time, `$ref`s that resolve to
 * nothing, keywords the validator would silently skip.
 *
 * What cannot be known ahead is bounded while a message is checked: every
 * subschema evaluation spends one step of a budget that grows with the
 * message's size (a getter on each subschema counts them), patterns run on
 * an automaton (linear-regexp.ts), and `uniqueItems`, quadratic, runs only on
 * arrays of bounded length.
 * @module
 */
import { type OutputUnit, type SchemaDraft, Validator } from "@cfworker/json-schema";
import type { SchemaMismatch } from "../../protocol/errors.js";
import { SCHEMA_LIMITS } from "../../protocol/limits.js";
import type { JsonSchema, TopicSchema } from "../../protocol/message.js";
import { compileFastPath } from "./fast-path.js";
import { compilePattern, withLinearPatterns } from "./linear-regexp.js";

export type Draft = TopicSchema["draft"];

/** A compiled schema: checks one message's parsed data; `undefined` means it matches. */
export type Checker = (data: unknown, bytes: number) => Omit<SchemaMismatch, "index"> | undefined;

const DRAFTS: Record<string, Draft> = {
	"http://json-schema.org/draft-07/schema": "7",
	"https://json-schema.org/draft-07/schema": "7",
	"https://json-schema.org/draft/2020-12/schema": "2020-12",
};

/** The draft a schema declares (`$schema`), 2020-12 when it declares none; a string is the refusal. */
export function draftOf(schema: JsonSchema): Draft | string {
	const declared = typeof schema === "object" ? schema.$schema : undefined;
	if (declared === undefined) return "2020-12";
	const draft = typeof declared === "string" ? DRAFTS[declared.replace(/#$/, "")] : undefined;
	return (
		draft ??
		`$schema ${JSON.stringify(declared)} is not supported; use http://json-schema.org/draft-07/schema# or https://json-schema.org/draft/2020-12/schema`
	);
}

/** Keyword families, by what their value must be. */
const ONE_SCHEMA = [
	"additionalProperties",
	"unevaluatedProperties",
	"additionalItems",
	"unevaluatedItems",
	"contains",
	"propertyNames",
	"not",
	"if",
	"then",
	"else",
];
const SCHEMA_LISTS = ["allOf", "anyOf", "oneOf", "prefixItems"];
const SCHEMA_MAPS = ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"];
const COUNTS = [
	"minLength",
	"maxLength",
	"minItems",
	"maxItems",
	"minProperties",
	"maxProperties",
	"minContains",
	"maxContains",
];
const NUMBERS = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"];
const TYPES = new Set(["null", "boolean", "object", "array", "number", "string", "integer"]);
/** The validator does not implement these, or tidings uses the name itself (the step counter). */
const UNSUPPORTED = ["$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor"];
/** Formats the validator checks with a backtracking regular expression that is not linear (`url`: 15 s on 128 KiB). */
const UNSAFE_FORMATS = new Set(["url"]);

type SchemaObject = Record<string, unknown>;

const isSchema = (x: unknown): x is JsonSchema =>
	typeof x === "boolean" || (x !== null && typeof x === "object" && !Array.isArray(x));
const isCount = (x: unknown) => typeof x === "number" && Number.isInteger(x) && x >= 0;

class Refusal extends Error {}
class OutOfSteps extends Error {}

interface Walk {
	draft: Draft;
	patterns: Map<string, { test(input: string): boolean }>;
	/** A Set: a schema built in code (not parsed JSON) may hold one object in two places. */
	objects: Set<SchemaObject>;
	uniqueItems: boolean;
}

/** Checks one subschema's keywords and walks into its subschemas. */
function walk(schema: JsonSchema, at: string, w: Walk): void {
	if (typeof schema === "boolean" || w.objects.has(schema)) return;
	w.objects.add(schema);
	const refuse = (keyword: string, why: string): never => {
		throw new Refusal(`${at}/${keyword} ${why}`);
	};
	const sub = (value: unknown, where: string) => {
		if (!isSchema(value)) throw new Refusal(`${where} must be a schema (an object, or true/false)`);
		walk(value, where, w);
	};
	for (const k of UNSUPPORTED) if (k in schema) refuse(k, "is not supported by the validator");
	for (const k of ONE_SCHEMA) if (k in schema) sub(schema[k], `${at}/${k}`);
	for (const k of SCHEMA_LISTS) {
		if (!(k in schema)) continue;
		const list = schema[k];
		if (!Array.isArray(list) || list.length === 0) refuse(k, "must be a non-empty array of schemas");
		(list as unknown[]).forEach((s, i) => {
			sub(s, `${at}/${k}/${i}`);
		});
	}
	for (const k of SCHEMA_MAPS) {
		if (!(k in schema)) continue;
		const map = schema[k];
		if (map === null || typeof map !== "object" || Array.isArray(map)) refuse(k, "must be an object of schemas");
		for (const [name, s] of Object.entries(map as SchemaObject)) sub(s, `${at}/${k}/${pointerToken(name)}`);
	}
	if ("items" in schema) {
		const items = schema.items;
		if (Array.isArray(items)) {
			if (w.draft === "2020-12") refuse("items", "is one schema in 2020-12; tuples use prefixItems");
			items.forEach((s, i) => {
				sub(s, `${at}/items/${i}`);
			});
		} else sub(items, `${at}/items`);
	}
	if ("dependencies" in schema) {
		const deps = schema.dependencies;
		if (deps === null || typeof deps !== "object" || Array.isArray(deps)) refuse("dependencies", "must be an object");
		for (const [name, d] of Object.entries(deps as SchemaObject))
			if (!Array.isArray(d)) sub(d, `${at}/dependencies/${pointerToken(name)}`);
	}
	if ("type" in schema) {
		const t = schema.type;
		const list = Array.isArray(t) ? t : [t];
		if (list.length === 0 || !list.every((x) => typeof x === "string" && TYPES.has(x)))
			refuse("type", `must be one of ${[...TYPES].join(", ")}, or an array of them`);
	}
	for (const k of COUNTS) if (k in schema && !isCount(schema[k])) refuse(k, "must be a whole number ≥ 0");
	for (const k of NUMBERS)
		if (k in schema && !(typeof schema[k] === "number" || (w.draft === "7" && typeof schema[k] === "boolean")))
			refuse(k, "must be a number");
	if ("multipleOf" in schema && !((schema.multipleOf as number) > 0)) refuse("multipleOf", "must be greater than 0");
	if ("required" in schema) {
		const r = schema.required;
		if (!Array.isArray(r) || !r.every((x) => typeof x === "string")) refuse("required", "must be an array of strings");
	}
	if ("enum" in schema && !Array.isArray(schema.enum)) refuse("enum", "must be an array");
	if ("uniqueItems" in schema) {
		if (typeof schema.uniqueItems !== "boolean") refuse("uniqueItems", "must be true or false");
		if (schema.uniqueItems) w.uniqueItems = true;
	}
	if ("$ref" in schema && typeof schema.$ref !== "string") refuse("$ref", "must be a string");
	if ("format" in schema) {
		if (typeof schema.format !== "string") refuse("format", "must be a string");
		if (UNSAFE_FORMATS.has(schema.format as string))
			refuse("format", `"${schema.format}" is not supported (its check is not linear-time); use "uri"`);
	}
	const patterns: Array<[string, unknown]> = [];
	if ("pattern" in schema) patterns.push([`${at}/pattern`, schema.pattern]);
	if (isSchema(schema.patternProperties) && typeof schema.patternProperties === "object")
		for (const p of Object.keys(schema.patternProperties))
			patterns.push([`${at}/patternProperties/${pointerToken(p)}`, p]);
	for (const [where, p] of patterns) {
		if (typeof p !== "string") throw new Refusal(`${where} must be a string`);
		if (p.length > SCHEMA_LIMITS.patternMaxLength)
			throw new Refusal(`${where} is longer than ${SCHEMA_LIMITS.patternMaxLength} characters`);
		if (w.patterns.has(p)) continue;
		const compiled = compilePattern(p);
		if (typeof compiled === "string") throw new Refusal(`${where} ${JSON.stringify(p)} ${compiled}`);
		w.patterns.set(p, compiled);
	}
}

function pointerToken(token: string): string {
	return token.replace(/~/g, "~0").replace(/\//g, "~1");
}

/** Every `$ref` must land on a schema the document holds: remote documents are never fetched. */
function checkRefs(objects: Iterable<SchemaObject>, lookup: Record<string, unknown>): void {
	for (const o of objects) {
		if (typeof o.$ref !== "string") continue;
		const absolute = (o as { __absolute_ref__?: string }).__absolute_ref__ ?? o.$ref;
		if (lookup[absolute] === undefined)
			throw new Refusal(
				`$ref ${JSON.stringify(o.$ref)} resolves to no schema in this document (remote schemas are not fetched; put it under $defs)`,
			);
	}
}

/** A refusal's reason, or the checker. */
export function compileSchema(
	original: JsonSchema,
): { ok: true; check: Checker; draft: Draft } | { ok: false; reason: string } {
	const draft = draftOf(original);
	if (draft.length > 7) return { ok: false, reason: draft };
	// The validator annotates the schema it is given (and we add the step counters): keep the stored one clean.
	const schema = structuredClone(original);
	const w: Walk = { draft: draft as Draft, patterns: new Map(), objects: new Set(), uniqueItems: false };
	let validator: Validator;
	const budget = { left: Number.POSITIVE_INFINITY };
	const tick = () => {
		if (--budget.left < 0) throw new OutOfSteps();
	};
	let fast: ((x: unknown) => boolean) | undefined;
	/** The patterns that must run on an automaton (the others are of a bounded shape). */
	const automata = new Map<string, { test(input: string): boolean }>();
	try {
		walk(schema, "", w);
		for (const o of w.objects)
			Object.defineProperty(o, "$recursiveRef", {
				enumerable: false,
				get() {
					tick();
					return undefined;
				},
			});
		validator = new Validator(schema as object, draft as SchemaDraft, true);
		checkRefs(w.objects, (validator as unknown as { lookup: Record<string, unknown> }).lookup);
		for (const [p, tester] of w.patterns) if (!(tester instanceof RegExp)) automata.set(p, tester);
		const lookup = (validator as unknown as { lookup: Record<string, unknown> }).lookup;
		fast = compileFastPath(schema, { draft: draft as Draft, lookup, patterns: w.patterns, tick });
	} catch (err) {
		return {
			ok: false,
			reason: err instanceof Refusal ? err.message : `the schema does not compile: ${(err as Error).message}`,
		};
	}

	const check: Checker = (data, bytes) => {
		if (w.uniqueItems) {
			const long = longArray(data);
			if (long !== undefined)
				return {
					pointer: long,
					schema_pointer: "",
					expected: `at most ${SCHEMA_LIMITS.uniqueItemsMaxArray} items (the schema uses uniqueItems, whose check is quadratic)`,
				};
		}
		const steps = SCHEMA_LIMITS.stepsBase + SCHEMA_LIMITS.stepsPerByte * bytes;
		try {
			budget.left = steps;
			// The fast path may only say "valid"; a "no" (or a keyword it lacks) is the validator's to decide and explain.
			if (fast?.(data)) return undefined;
			budget.left = steps;
			// Patterns of a bounded shape are RegExps already: swap the constructor only when some are not.
			const result =
				automata.size === 0 ? validator.validate(data) : withLinearPatterns(automata, () => validator.validate(data));
			if (result.valid) return undefined;
			let failedPattern: string | undefined;
			if (result.errors.at(-1)?.keyword === "pattern") {
				// A refusal only: check again with every pattern watched, to name the one that failed.
				budget.left = steps;
				withLinearPatterns(w.patterns, (failed) => {
					validator.validate(data);
					failedPattern = failed.pattern;
				});
			}
			return mismatch(result.errors, failedPattern);
		} catch (err) {
			const why =
				err instanceof OutOfSteps
					? `a check within ${SCHEMA_LIMITS.stepsBase} + ${SCHEMA_LIMITS.stepsPerByte} per byte subschema evaluations (this schema multiplies them: anyOf, oneOf or $ref over the same value)`
					: `a check that completes (${(err as Error).message})`;
			return { pointer: "", schema_pointer: "", expected: why };
		} finally {
			budget.left = Number.POSITIVE_INFINITY;
		}
	};
	return { ok: true, check, draft: draft as Draft };
}

/** The deepest error names the place and the expectation; the outer ones only say "a subschema had errors". */
function mismatch(errors: OutputUnit[], failedPattern: string | undefined): Omit<SchemaMismatch, "index"> {
	const last = errors[errors.length - 1] as OutputUnit | undefined;
	const pointer = (last?.instanceLocation ?? "#").replace(/^#/, "");
	let expected = last?.error ?? "the schema refuses it";
	if (last?.keyword === "pattern" && failedPattern !== undefined)
		expected = `String does not match pattern ${JSON.stringify(failedPattern)}.`;
	if (last?.keyword === "false") expected = "nothing here (the schema is false)";
	return { pointer, schema_pointer: (last?.keywordLocation ?? "#").replace(/^#/, ""), expected };
}

/** The pointer of the first array longer than uniqueItems allows, without recursion. */
function longArray(data: unknown): string | undefined {
	const stack: Array<[unknown, string]> = [[data, ""]];
	while (stack.length > 0) {
		const [x, at] = stack.pop() as [unknown, string];
		if (x === null || typeof x !== "object") continue;
		if (Array.isArray(x) && x.length > SCHEMA_LIMITS.uniqueItemsMaxArray) return at;
		for (const [k, child] of Object.entries(x)) stack.push([child, `${at}/${pointerToken(k)}`]);
	}
	return undefined;
}
