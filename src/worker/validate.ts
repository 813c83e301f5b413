/**
 * Hono's validator driven by valibot schemas, answering failures in the
 * error contract: which field, what is wrong, and which limit when one was
 * passed (413 for sizes, 400 `limit_exceeded` for counts and ranges).
 * @module
 */
import type { MiddlewareHandler, ValidationTargets } from "hono";
import { validator } from "hono/validator";
import * as v from "valibot";
import { describeIssues } from "../protocol/schema.js";
import { errorResponse } from "./errors.js";

type AnySchema = v.GenericSchema<unknown, unknown>;

const LABEL: Record<string, string> = { json: "body", query: "query", param: "path", header: "header" };

/**
 * Validates one part of the request. `schema` may be a function of the raw
 * value, for bodies whose schema depends on their shape.
 */
export function validate<T extends keyof ValidationTargets, S extends AnySchema>(
	target: T,
	schema: S | ((value: unknown) => S),
) {
	return validator(target, (value) => {
		const s = typeof schema === "function" ? schema(value) : schema;
		const result = v.safeParse(s, value);
		if (result.success) return result.output as v.InferOutput<S>;
		const e = describeIssues(result.issues, `${LABEL[target] ?? target}: `);
		return errorResponse(e.code, e.message);
	});
}

/** JSON bodies only: a form post or a missing Content-Type gets a message that says so. */
export const requireJson: MiddlewareHandler = async (c, next) => {
	const type = (c.req.header("Content-Type") ?? "").split(";")[0]?.trim().toLowerCase();
	if (type !== "application/json") {
		return errorResponse("unsupported_media_type", "send JSON with Content-Type: application/json");
	}
	await next();
};
