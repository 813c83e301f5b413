/**
 * The client's defaults, in one object, so that a value and its `@default`
 * in `TidingsOptions` (and docs/client.md) are checked against one place.
 * Limits the server enforces are not here: they come from
 * `src/protocol/limits.ts`, which the server imports too.
 * @module
 */
import { LIMITS } from "../protocol/limits.js";

export const DEFAULTS = {
	/** Name of the IndexedDB database, the Web Locks lock and the BroadcastChannel. */
	name: "tidings",
	/** How often an open socket sends `ping`; an unanswered one is dropped after the next. */
	heartbeatMs: 4000,
	/** An HTTP request (or a socket's handshake) not answered within this counts as a network failure. */
	requestTimeoutMs: 10_000,
	/** Reconnect and retry delays: from `minMs`, doubling, at most `maxMs`. */
	backoff: { minMs: 500, maxMs: 30_000 },
	/** How long closing a socket waits for the server to answer the close. */
	closeWaitMs: 2000,
	/** A subscription sends a `received` frame at most this often while messages arrive. */
	receivedEveryMs: 100,
	/** Entries `tidings.outbox.entries()` returns without a limit. */
	outboxEntries: 1000,
	/** Handlers a consumer runs at once. */
	concurrency: 1,
	/**
	 * While other handlers still run, a consumer's acks wait at most this long
	 * to go as one frame: the server settles a frame in one statement,
	 * whatever its size. With no handler running they go at once.
	 */
	ackBatchMs: 5,
} as const;

/** How the outbox is sent: consecutive entries for one topic go as one batch request. */
export const BATCH = {
	maxMessages: LIMITS.batchMaxMessages,
	/**
	 * Entries are sized at 3 bytes a character of their JSON (UTF-8's most for
	 * one UTF-16 unit). The bound stays well under the request limit: a batch
	 * over it would be refused (413) and resent one by one, where a batch cut
	 * early costs one more request. A first entry goes whatever its size.
	 */
	maxBytes: Math.round(LIMITS.publishMaxBytes * 0.85),
} as const;
