/**
 * Every error leaves the Worker as `{error: {code, message}}` with the status
 * its code implies (see src/protocol/errors.ts): refusals from the object
 * arrive as a `Failure` and are unwrapped here; handlers and middleware throw
 * `ApiError`; runtime faults are mapped by `onError`.
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { ERROR_STATUS, type ErrorCode } from "../protocol/errors.js";
import { type Failure, fail, failureResponse, type Result } from "../protocol/internal.js";

export function errorResponse(code: ErrorCode, message: string, retryAfterS?: number): Response {
	return failureResponse(fail(code, message, retryAfterS));
}

/** Thrown by handlers and middleware (a code and message, or an object's refusal); rendered by `onError`. */
export class ApiError extends Error {
	readonly failure: Failure;
	constructor(...args: [code: ErrorCode, message: string] | [failure: Failure]) {
		const failure = args.length === 1 ? args[0] : fail(...args);
		super(failure.error.message);
		this.failure = failure;
	}
}

/** The value of an object's answer, or its refusal thrown, to be answered as HTTP by `onError`. */
export function orHttpError<T>(result: Result<T>): T {
	if (result.ok) return result.value;
	throw new ApiError(result);
}

export function onError(err: Error, _c: Context): Response {
	if (err instanceof ApiError) return failureResponse(err.failure);
	if (err instanceof HTTPException) {
		if (err.status === 400 && /json/i.test(err.message))
			return errorResponse("invalid_json", "the body is not valid JSON");
		const code = (Object.keys(ERROR_STATUS) as ErrorCode[]).find((k) => ERROR_STATUS[k] === err.status);
		return errorResponse(code ?? "invalid_request", err.message || "bad request");
	}
	// Durable Object errors carry these flags: an overloaded object asks for
	// back-off (429), a transient failure for a retry (503).
	const flags = err as { overloaded?: boolean; retryable?: boolean };
	if (flags.overloaded) {
		return errorResponse(
			"rate_limited",
			"this topic is overloaded; retry with back-off, or spread load over topics",
			1,
		);
	}
	if (flags.retryable) {
		return errorResponse("unavailable", "the topic is briefly unavailable; retry (with the same key, if any)", 1);
	}
	// Never echo internals (they may hold request data); the log has the details.
	console.error("tidings: unhandled error", err);
	return errorResponse("internal", "internal error; try again");
}
