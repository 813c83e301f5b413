/**
 * Error codes and WebSocket close codes: the names a client can rely on.
 * HTTP errors are `{error: {code, message}}`; WebSocket errors are
 * `{type: "error", code, message, ref?}`.
 * @module
 */

export const ERROR_STATUS = {
	invalid_request: 400,
	invalid_json: 400,
	invalid_topic: 400,
	invalid_filter: 400,
	invalid_frame: 400,
	unknown_frame: 400,
	limit_exceeded: 400,
	payload_too_large: 413,
	unauthorized: 401,
	forbidden: 403,
	not_found: 404,
	method_not_allowed: 405,
	unsupported_media_type: 415,
	upgrade_required: 426,
	rate_limited: 429,
	internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ErrorBody {
	error: { code: ErrorCode; message: string };
}

/** Close codes the server uses (4000–4999 is the application range). */
export const CLOSE_CODES = {
	/** Normal close by either side. */
	normal: 1000,
	/** The server is going away (deploy, eviction): reconnect and resume. */
	goingAway: 1001,
	/** The subscription parameters were invalid; do not retry unchanged. */
	badRequest: 4400,
} as const;
