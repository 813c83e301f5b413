/**
 * Hono's validator driven by valibot schemas, answering failures in the
 * error contract: which field, what is wrong, and which limit when one was
 * passed (413 for sizes, 400 `limit_exceeded` for counts and ranges).
 * @module
 */
import type { Context, MiddlewareHandler, Next, ValidationTargets } from "hono";
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

/** Refuses what is not UTF-8 instead of replacing it with U+FFFD. */
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * JSON bodies only: a form post or a missing Content-Type gets a message that
 * says so. Reads the body once and decodes it as strict UTF-8: Hono's
 * `c.req.json()` decodes leniently, so bytes that are not UTF-8 would be
 * stored as U+FFFD. Runs after any `bodyLimit`, so an oversized body is a 413
 * before it is read here.
 */
export const requireJson: MiddlewareHandler = (c, next) => readJson(c, next, false);

/**
 * For bodies whose fields are all optional (pull, redrive): an empty body, as
 * `curl -X POST` with no `-d` sends, reads as `{}` whatever its Content-Type;
 * anything else must be JSON, as with `requireJson`.
 */
export const jsonOrEmpty: MiddlewareHandler = (c, next) => readJson(c, next, true);

async function readJson(c: Context, next: Next, emptyIsObject: boolean): Promise<Response | undefined> {
	const type = (c.req.header("Content-Type") ?? "").split(";")[0]?.trim().toLowerCase();
	if (emptyIsObject && type !== "application/json") {
		const bytes = await c.req.raw.arrayBuffer();
		if (bytes.byteLength === 0) {
			// Hono's validator reads a body without a JSON Content-Type as `{}`.
			await next();
			return;
		}
		return errorResponse("unsupported_media_type", "send JSON with Content-Type: application/json, or no body");
	}
	if (type !== "application/json") {
		return errorResponse("unsupported_media_type", "send JSON with Content-Type: application/json");
	}
	const bytes = await c.req.raw.arrayBuffer();
	let text: string;
	try {
		text = utf8.decode(bytes);
	} catch {
		return errorResponse("invalid_json", "the body is not valid UTF-8; send JSON text encoded in UTF-8");
	}
	if (emptyIsObject && text.trim() === "") text = "{}";
	// Hono's validator parses `c.req.json()`, which (Hono 4.13, src/request.ts) is JSON.parse of the
	// cached "text" entry: so the body is decoded once, here, and parsed once, there. (A cached
	// "json" entry would be stringified and parsed again.) The cache holds promises; its type says string.
	c.req.bodyCache.text = Promise.resolve(text) as unknown as string;
	await next();
	return;
}
