/**
 * A fast path in front of the validator, for the keywords most topic
 * schemas are made of. @cfworker/json-schema interprets the schema on every
 * message (it reads some 45 keywords from every subschema and builds a
 * location string for every value), which costs about as much as the rest
 * of a publish; these closures, built once per revision from the same
 * schema, answer only "valid or not" in a fraction of that.
 *
 * It is only ever trusted to say "valid": anything else goes to the
 * validator, which decides and says why. A schema with a keyword outside
 * `KEYWORDS` anywhere gets no fast path. `test/worker/schema-fuzz.test.ts`
 * holds its verdicts to the validator's on generated schemas and data.
 * @module
 */
import { deepCompareStrict, format, ucs2length } from "@cfworker/json-schema";
import type { Draft } from "./compile.js";

type Verdict = (x: unknown) => boolean;
type SchemaObject = Record<string, unknown>;

/** What the fast path implements; annotations are ignored, as the validator ignores them. */
const KEYWORDS = new Set([
	"$schema",
	"$defs",
	"definitions",
	"$comment",
	"title",
	"description",
	"default",
	"examples",
	"deprecated",
	"readOnly",
	"writeOnly",
	"$ref",
	"type",
	"enum",
	"const",
	"required",
	"properties",
	"additionalProperties",
	"items",
	"minItems",
	"maxItems",
	"minProperties",
	"maxProperties",
	"minimum",
	"maximum",
	"exclusiveMinimum",
	"exclusiveMaximum",
	"minLength",
	"maxLength",
	"pattern",
	"format",
	"allOf",
	"anyOf",
	"oneOf",
	"not",
]);

class Unsupported extends Error {}

const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === "object" && !Array.isArray(x);

function typeIs(t: unknown, x: unknown): boolean {
	switch (t) {
		case "integer":
			return typeof x === "number" && Number.isInteger(x);
		case "number":
			return typeof x === "number";
		case "null":
			return x === null;
		case "array":
			return Array.isArray(x);
		case "object":
			return isObject(x);
		default:
			return typeof x === t;
	}
}

export interface FastPathContext {
	draft: Draft;
	/** The validator's lookup: absolute URI → schema, after it dereferenced the schema. */
	lookup: Record<string, unknown>;
	patterns: ReadonlyMap<string, { test(input: string): boolean }>;
	/** Spends one step of the message's budget (throws past it). */
	tick: () => void;
}

/** The fast path of a schema, or `undefined` when it uses a keyword the fast path does not implement. */
export function compileFastPath(schema: unknown, context: FastPathContext): Verdict | undefined {
	const memo = new Map<unknown, Verdict>();
	try {
		return build(schema, context, memo);
	} catch (err) {
		if (err instanceof Unsupported) return undefined;
		throw err;
	}
}

/**
 * `applying`: the schemas applied to the same instance on the way here
 * ($ref, allOf, anyOf, oneOf, not). Reaching one of them again is a cycle
 * that never descends into the data: the validator, which tries every
 * branch, recurses without end on it (the object's step budget refuses the
 * message), so the fast path, which stops at the first branch that passes,
 * must not answer for it.
 */
function build(
	schema: unknown,
	c: FastPathContext,
	memo: Map<unknown, Verdict>,
	applying: ReadonlySet<unknown> = new Set(),
): Verdict {
	if (schema === true) return () => true;
	if (schema === false) return () => false;
	if (!isObject(schema)) throw new Unsupported();
	if (applying.has(schema)) throw new Unsupported();
	const known = memo.get(schema);
	if (known) return known;
	// Through a thunk, so a $ref cycle resolves to the verdict being built.
	let impl: Verdict = () => false;
	const self: Verdict = (x) => impl(x);
	memo.set(schema, self);
	const s = schema as SchemaObject;
	for (const k in s) if (!KEYWORDS.has(k)) throw new Unsupported();
	// Keywords that apply to a part of the instance (properties, items) descend; the others apply to it whole.
	const sub = (x: unknown) => build(x, c, memo);
	const same = (x: unknown) => build(x, c, memo, new Set([...applying, schema]));
	const checks: Verdict[] = [];
	const { tick } = c;

	if (typeof s.$ref === "string") {
		const target = c.lookup[(s as { __absolute_ref__?: string }).__absolute_ref__ ?? s.$ref];
		if (target === undefined) throw new Unsupported();
		const ref = same(target);
		// Draft 7 ignores the keywords beside $ref.
		if (c.draft === "7") {
			impl = (x) => {
				tick();
				return ref(x);
			};
			return self;
		}
		checks.push(ref);
	}
	if (s.type !== undefined) {
		const types = Array.isArray(s.type) ? s.type : [s.type];
		checks.push((x) => types.some((t) => typeIs(t, x)));
	}
	if (s.const !== undefined) {
		const v = s.const;
		checks.push((x) => (x !== null && typeof x === "object" ? deepCompareStrict(x, v) : x === v));
	}
	if (Array.isArray(s.enum)) {
		const values = s.enum;
		checks.push((x) =>
			x !== null && typeof x === "object" ? values.some((v) => deepCompareStrict(x, v)) : values.includes(x),
		);
	}
	for (const k of ["allOf", "anyOf", "oneOf"] as const) {
		if (!Array.isArray(s[k])) continue;
		const parts = (s[k] as unknown[]).map(same);
		if (k === "allOf") checks.push((x) => parts.every((p) => p(x)));
		else if (k === "anyOf") checks.push((x) => parts.some((p) => p(x)));
		else checks.push((x) => parts.filter((p) => p(x)).length === 1);
	}
	if (s.not !== undefined) {
		const not = same(s.not);
		checks.push((x) => !not(x));
	}

	// Object keywords.
	const required = Array.isArray(s.required) ? (s.required as string[]) : [];
	const properties = isObject(s.properties) ? Object.entries(s.properties).map(([k, v]) => [k, sub(v)] as const) : [];
	const names = new Set(properties.map(([k]) => k));
	const additional = s.additionalProperties === undefined ? undefined : sub(s.additionalProperties);
	const { minProperties, maxProperties } = s as { minProperties?: number; maxProperties?: number };
	if (required.length || properties.length || additional || minProperties !== undefined || maxProperties !== undefined)
		checks.push((x) => {
			if (!isObject(x)) return true;
			for (const k of required) if (!Object.hasOwn(x, k)) return false;
			for (const [k, verdict] of properties) if (Object.hasOwn(x, k) && !verdict(x[k])) return false;
			if (additional || minProperties !== undefined || maxProperties !== undefined) {
				const keys = Object.keys(x);
				if (minProperties !== undefined && keys.length < minProperties) return false;
				if (maxProperties !== undefined && keys.length > maxProperties) return false;
				if (additional) for (const k of keys) if (!names.has(k) && !additional(x[k])) return false;
			}
			return true;
		});

	// Array keywords (2020-12's `items`, and draft 7's when it is one schema).
	if (Array.isArray(s.items)) throw new Unsupported();
	const items = s.items === undefined ? undefined : sub(s.items);
	const { minItems, maxItems } = s as { minItems?: number; maxItems?: number };
	if (items || minItems !== undefined || maxItems !== undefined)
		checks.push((x) => {
			if (!Array.isArray(x)) return true;
			if (minItems !== undefined && x.length < minItems) return false;
			if (maxItems !== undefined && x.length > maxItems) return false;
			return !items || x.every((item) => items(item));
		});

	// Number keywords.
	const { minimum, maximum, exclusiveMinimum, exclusiveMaximum } = s;
	if ([exclusiveMinimum, exclusiveMaximum].some((v) => v !== undefined && typeof v !== "number"))
		throw new Unsupported();
	if ([minimum, maximum, exclusiveMinimum, exclusiveMaximum].some((v) => v !== undefined))
		checks.push(
			(x) =>
				typeof x !== "number" ||
				!(
					(typeof minimum === "number" && x < minimum) ||
					(typeof maximum === "number" && x > maximum) ||
					(typeof exclusiveMinimum === "number" && x <= exclusiveMinimum) ||
					(typeof exclusiveMaximum === "number" && x >= exclusiveMaximum)
				),
		);

	// String keywords.
	const { minLength, maxLength } = s as { minLength?: number; maxLength?: number };
	const pattern = typeof s.pattern === "string" ? c.patterns.get(s.pattern) : undefined;
	if (typeof s.pattern === "string" && !pattern) throw new Unsupported();
	const formatCheck =
		typeof s.format === "string" ? (format as Record<string, (v: string) => boolean>)[s.format] : undefined;
	if (minLength !== undefined || maxLength !== undefined || pattern || formatCheck)
		checks.push((x) => {
			if (typeof x !== "string") return true;
			if (minLength !== undefined || maxLength !== undefined) {
				const n = ucs2length(x);
				if ((minLength !== undefined && n < minLength) || (maxLength !== undefined && n > maxLength)) return false;
			}
			return (!pattern || pattern.test(x)) && (!formatCheck || formatCheck(x));
		});

	impl = (x) => {
		tick();
		for (const check of checks) if (!check(x)) return false;
		return true;
	};
	return self;
}
