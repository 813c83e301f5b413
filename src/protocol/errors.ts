/**
 * Error codes and WebSocket close codes: the names a client can rely on.
 * HTTP errors are `{error: {code, message}}`; WebSocket errors are
 * `{type: "error", code, message, ref?}`.
 * @module
 */

export const ERROR_STATUS = {
	invalid_request: 400,
	invalid_json: 400,
	invalid_frame: 400,
	unknown_frame: 400,
	limit_exceeded: 400,
	payload_too_large: 413,
	unauthorized: 401,
	forbidden: 403,
	not_found: 404,
	conflict: 409,
	gone: 410,
	unsupported_media_type: 415,
	upgrade_required: 426,
	rate_limited: 429,
	internal: 500,
	unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ErrorBody {
	error: { code: ErrorCode; message: string };
}

/**
 * Close codes. Any close other than `normal` may be answered by reconnecting
 * with `from=<last seq>`: an object restart (deploy, eviction) closes sockets
 * abnormally (1006) and nothing is lost. Application codes (4000–4999) say
 * why the server closed a socket, and what the client should do.
 */
export const CLOSE_CODES = {
	/** Normal close by either side. */
	normal: 1000,
	/** The socket's token expired: reconnect with a fresh token and resume from the last seq. */
	tokenExpired: 4401,
	/** The consumer group of this socket was deleted: do not reconnect to it. */
	groupDeleted: 4404,
	/**
	 * The topic was deleted (`DELETE /v1/topics/:topic`): do not resume. The
	 * name may be used again, as a new topic from seq 1, so a resume from an
	 * old seq would skip the new topic's first messages.
	 */
	topicDeleted: 4410,
	/**
	 * A live socket that confirms what it read (`received` frames) fell more
	 * than `LIMITS.liveUnreadMaxChars` behind: reconnect with `from=<last seq>`.
	 */
	slowConsumer: 4408,
	/** The socket kept sending past its frame rate limit after `rate_limited` errors. Back off before reconnecting. */
	rateLimited: 4429,
} as const;
