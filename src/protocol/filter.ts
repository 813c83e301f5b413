/**
 * The SNS-style filter subset: keys are attribute names and are ANDed; each
 * key lists alternatives that are ORed. An alternative is an exact value, or
 * `{prefix}`, `{"anything-but"}`, `{numeric}` or `{exists}`. As in SNS, every
 * condition but `{exists: false}` needs the attribute to be present.
 * The schema that validates filters is in `schema.ts`.
 * @module
 */
import type { Attributes } from "./message.js";

export type Scalar = string | number | boolean;
export type NumericOp = "=" | "<" | "<=" | ">" | ">=";
export type Condition =
	| Scalar
	| { prefix: string }
	| { "anything-but": Scalar | Scalar[] | { prefix: string } }
	| { numeric: [NumericOp, number] | [NumericOp, number, NumericOp, number] }
	| { exists: boolean };
export type Filter = Record<string, Condition | Condition[]>;

function compare(op: NumericOp, a: number, b: number): boolean {
	switch (op) {
		case "=":
			return a === b;
		case "<":
			return a < b;
		case "<=":
			return a <= b;
		case ">":
			return a > b;
		case ">=":
			return a >= b;
	}
}

function matchesCondition(cond: Condition, value: Scalar | undefined): boolean {
	if (typeof cond !== "object") return value === cond;
	if ("exists" in cond) return (value !== undefined) === cond.exists;
	if (value === undefined) return false;
	if ("prefix" in cond) return typeof value === "string" && value.startsWith(cond.prefix);
	if ("numeric" in cond) {
		if (typeof value !== "number") return false;
		const n = cond.numeric;
		if (!compare(n[0], value, n[1])) return false;
		return n.length === 2 || compare(n[2], value, n[3]);
	}
	const but = cond["anything-but"];
	if (Array.isArray(but)) return !but.includes(value);
	if (typeof but === "object") return !(typeof value === "string" && value.startsWith(but.prefix));
	return value !== but;
}

/** True when the attributes satisfy every key of the filter. */
export function matchesFilter(filter: Filter, attributes: Attributes): boolean {
	for (const key in filter) {
		const value = Object.hasOwn(attributes, key) ? attributes[key] : undefined;
		const conds = filter[key] as Condition | Condition[];
		const alternatives = Array.isArray(conds) ? conds : [conds];
		if (!alternatives.some((c) => matchesCondition(c, value))) return false;
	}
	return true;
}
