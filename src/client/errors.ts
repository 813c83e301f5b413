/**
 * The client's errors: one class with a stable `code`, so that callers
 * switch on codes rather than classes. `retryable` is where the client
 * decides what it retries, for publishes and sockets alike.
 * @module
 */
import type { ErrorCode } from "../protocol/errors.js";

/** What can go wrong in the client: the server's codes, plus the client's own. */
export type TidingsErrorCode = ErrorCode | "network" | "closed" | "cancelled";

/**
 * Every error the client throws or emits. `code` is stable; `status` is the
 * HTTP status when the server answered. `retryable` errors are retried by the
 * client itself (a publish stays in the outbox); the others are final.
 */
export class TidingsError extends Error {
	override name = "TidingsError";
	constructor(
		readonly code: TidingsErrorCode,
		message: string,
		readonly status?: number,
	) {
		super(message);
	}
	get retryable(): boolean {
		// `internal` includes answers that are not tidings' (a proxy's error page): worth another try, never a reason to drop a publish.
		return (
			this.code === "network" ||
			this.code === "rate_limited" ||
			this.code === "unauthorized" ||
			this.code === "internal" ||
			(this.status ?? 0) >= 500
		);
	}
}
