/**
 * Abuse limits of one topic: how many frames a token socket may send, how
 * many messages a token may publish, and when a socket that keeps pushing
 * past either is closed (4429). Admin-key sockets and requests carry no
 * limit key and are never limited.
 * @module
 */
import { CLOSE_CODES } from "../../protocol/errors.js";
import { LIMITS } from "../../protocol/limits.js";
import { closeQuietly, send } from "./attachments.js";
import { BucketMap, TokenBucket } from "./rate-limit.js";

export const PUBLISH_LIMIT_MESSAGE = `at most ${LIMITS.tokenPublishesPerSecond} messages a second per token on one topic; retry with back-off`;

export class AbuseLimits {
	readonly #frames = new BucketMap<WebSocket>(
		() => new TokenBucket(LIMITS.socketFramesPerSecond, LIMITS.socketFramesBurst),
	);
	/** Per token (its `sub`, or the token itself when it has none), over HTTP and sockets alike. */
	readonly #publishes = new BucketMap<string>(
		() => new TokenBucket(LIMITS.tokenPublishesPerSecond, LIMITS.tokenPublishesBurst),
	);
	/** Frames refused per socket within the current window. */
	readonly #refused = new WeakMap<WebSocket, { count: number; since: number }>();

	/**
	 * The per-socket frame limit: false means drop the frame. The client
	 * hears of it on the first drop and every tenth after, not on each.
	 */
	admitFrame(ws: WebSocket, limitKey: string | undefined): boolean {
		if (limitKey === undefined || this.#frames.get(ws).take()) return true;
		const refused = this.#refuse(ws);
		if (refused === 1 || (refused > 0 && refused % 10 === 0)) {
			send(ws, {
				type: "error",
				code: "rate_limited",
				message: `at most ${LIMITS.socketFramesPerSecond} frames a second per socket; frames are being dropped`,
			});
		}
		return false;
	}

	/** Spends `n` of the token's publish budget; false when it is spent (nothing is taken). */
	takePublishes(limitKey: string | undefined, n: number): boolean {
		return limitKey === undefined || this.#publishes.get(limitKey).take(n);
	}

	/** A publish frame over the token's budget: refused like a flooded frame, answered by its `ref`. */
	refusePublish(ws: WebSocket, ref: string): void {
		if (this.#refuse(ws) > 0) send(ws, { type: "error", code: "rate_limited", message: PUBLISH_LIMIT_MESSAGE, ref });
	}

	forget(ws: WebSocket): void {
		this.#frames.delete(ws);
		this.#refused.delete(ws);
	}

	/** Counts a refusal; a socket with too many in a window is closed. Answers the count, or 0 once closed. */
	#refuse(ws: WebSocket): number {
		const now = Date.now();
		const window = this.#refused.get(ws);
		const fresh = !window || now - window.since > LIMITS.socketRefusedWindowMs;
		const refused = fresh ? 1 : window.count + 1;
		this.#refused.set(ws, { count: refused, since: fresh ? now : window.since });
		if (refused < LIMITS.socketRefusedBeforeClose) return refused;
		closeQuietly(ws, CLOSE_CODES.rateLimited, "rate limited");
		return 0;
	}
}
