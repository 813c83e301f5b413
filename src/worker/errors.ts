/**
 * Every error leaves the Worker as `{error: {code, message}}` with the status
 * its code implies (see src/protocol/errors.ts).
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ERROR_STATUS, type ErrorBody, type ErrorCode } from "../protocol/errors.js";

export function errorResponse(c: Context, code: ErrorCode, message: string): Response {
	return c.json({ error: { code, message } } satisfies ErrorBody, ERROR_STATUS[code] as ContentfulStatusCode);
}

/** Thrown by handlers and middleware; rendered by `onError`. */
export class ApiError extends Error {
	constructor(
		readonly code: ErrorCode,
		message: string,
	) {
		super(message);
	}
}

export function onError(err: Error, c: Context): Response {
	if (err instanceof ApiError) return errorResponse(c, err.code, err.message);
	if (err instanceof HTTPException) {
		if (err.status === 400 && /json/i.test(err.message)) {
			return errorResponse(c, "invalid_json", "the body is not valid JSON");
		}
		const code = (Object.keys(ERROR_STATUS) as ErrorCode[]).find((k) => ERROR_STATUS[k] === err.status);
		return errorResponse(c, code ?? "invalid_request", err.message || "bad request");
	}
	// Durable Object errors carry these flags: an overloaded object asks for
	// back-off (429), a transient failure for a retry (503).
	const flags = err as { overloaded?: boolean; retryable?: boolean };
	if (flags.overloaded) {
		c.header("Retry-After", "1");
		return errorResponse(
			c,
			"rate_limited",
			"this topic is overloaded; retry with back-off, or spread load over topics",
		);
	}
	if (flags.retryable) {
		c.header("Retry-After", "1");
		return errorResponse(c, "unavailable", "the topic is briefly unavailable; retry (with the same key, if any)");
	}
	// Never echo internals (they may hold request data); the log has the details.
	console.error("tidings: unhandled error", err);
	return errorResponse(c, "internal", "internal error; try again");
}
