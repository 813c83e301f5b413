/**
 * Every limit and default of tidings, in one place. The Worker, the Topic
 * Durable Object and the client all import these; docs/limits.md lists them.
 * @module
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/**
 * A table the browser bundle leaves out when it does not use it. esbuild
 * keeps an unused object literal whose values multiply named units (it
 * cannot prove `7 * DAY` free of side effects); a pure call it can drop.
 */
function table<T>(build: () => T): T {
	return build();
}

export const LIMITS = {
	/** Topic name length in characters. */
	topicNameMaxLength: 128,
	/** A message's `data`, serialized as JSON, in bytes (UTF-8). */
	messageDataMaxBytes: 128 * KiB,
	/** Messages in one batch publish. */
	batchMaxMessages: 100,
	/** A whole publish request or frame, in bytes. */
	publishMaxBytes: 1 * MiB,
	/** Longest `delay_ms` of a delayed message. */
	delayMaxMs: 12 * HOUR,
	/** Attributes on one message. */
	attributesMaxCount: 50,
	/** Length of an attribute name. */
	attributeNameMaxLength: 128,
	/** Length of a string attribute value. */
	attributeValueMaxLength: 1024,
	/** Length of an idempotency key. */
	idempotencyKeyMaxLength: 256,
	/** How long a publish key is remembered. */
	dedupeWindowMs: 24 * HOUR,
	/** Length of a W3C `baggage` header (the W3C limit). */
	baggageMaxLength: 8192,
	/** `limit` of a history read. */
	historyMaxLimit: 1000,
	/** Default `limit` of a history read. */
	historyDefaultLimit: 100,
	/** A history page (and a dead-letter listing) stops near this much message data, whatever its `limit`. */
	pageMaxBytes: 4 * MiB,
	/** Retention: the largest `max_messages` a topic may be given. */
	retentionMaxMessagesCeiling: 1_000_000,
	/** The most sockets a topic may allow (the runtime's hibernation limit is 32,768). */
	socketsPerTopicCeiling: 32_000,
	/** Retention: the longest `max_age_ms` a topic may be given. */
	retentionMaxAgeCeilingMs: 30 * DAY,
	/** Keys in one filter. */
	filterMaxKeys: 10,
	/** Values across all keys of one filter (the ORed alternatives). */
	filterMaxValues: 100,
	/** A filter serialized as JSON, in bytes. */
	filterMaxBytes: 4 * KiB,
	/**
	 * A live socket that confirms what it read (`received` frames) may fall this
	 * far behind, in characters of message text sent but not yet confirmed,
	 * before it is closed with `slowConsumer` (4408). A replay waits instead.
	 */
	liveUnreadMaxChars: 8 * MiB,
	/** A replay waiting for `received` frames gives up (4408) after this long without one. */
	liveUnreadStallMs: 30 * SECOND,
	/** Length of a WebSocket `ref`. */
	refMaxLength: 128,
	/** Length of a consumer group name (A-Z a-z 0-9 _ -). */
	groupNameMaxLength: 64,
	/** Consumer groups on one topic. */
	groupsPerTopicMax: 100,
	/** `max_retries` of a group: 0 to this. */
	maxRetriesCeiling: 100,
	/** Longest retry delay (`retry_delay_ms`, `max_retry_delay_ms`, a nack's `delay_ms`). */
	retryDelayMaxMs: 12 * HOUR,
	/** `ack_timeout_ms` bounds. */
	ackTimeoutMinMs: 1 * SECOND,
	ackTimeoutMaxMs: 12 * HOUR,
	/** Unacknowledged messages one group member may hold. */
	prefetchMax: 1000,
	/** Messages one pull may lease. */
	pullMaxMessages: 100,
	/** Seqs one ack, nack or redrive may name (a range counts every seq in it): a member's largest prefetch. */
	settleMaxSeqs: 1000,
	/** Length of the `error` text a nack records. */
	errorMaxLength: 1024,
	/** Failed attempts whose errors a message keeps (the newest), into its dead letter. */
	attemptErrorsKept: 20,
	/** Push: secret length bounds, request timeout bounds, requests in flight per group. */
	pushSecretMinLength: 16,
	pushSecretMaxLength: 256,
	pushTimeoutMinMs: 1 * SECOND,
	pushTimeoutMaxMs: 30 * SECOND,
	/** Workers keep at most 6 outbound connections waiting per invocation; more would queue and time out unsent. */
	pushConcurrencyMax: 6,
	/** Length of a push URL. */
	pushUrlMaxLength: 2048,
	/**
	 * Frames one token-authenticated socket may send per second (sustained),
	 * and in a burst; acks count. Sockets opened with the admin key are not limited.
	 */
	socketFramesPerSecond: 1000,
	socketFramesBurst: 2000,
	/** Frames refused within the window, past which the socket is closed (4429). */
	socketRefusedBeforeClose: 1000,
	socketRefusedWindowMs: 10 * SECOND,
	/** Messages one token may publish per second to one topic (sustained), and in a burst. The admin key is not limited. */
	tokenPublishesPerSecond: 1000,
	tokenPublishesBurst: 2000,
	/** Tokens: patterns per token, longest and default lifetime, length of `sub`. */
	tokenPatternsMax: 50,
	tokenTtlMaxS: 30 * 24 * 3600,
	tokenTtlDefaultS: 3600,
	tokenSubMaxLength: 256,
	/** Topics per page of the topic list (`GET /v1/topics?limit=`), and the default. */
	topicListMax: 1000,
	topicListDefault: 100,
	/** Durable Streams: one append (POST or PUT body), in bytes; JSON appends hold at most this many messages. */
	streamAppendMaxBytes: 1 * MiB,
	streamAppendMaxMessages: 1000,
	/** Durable Streams: a catch-up read stops near this much data (the next read goes on from its offset). */
	streamReadMaxBytes: 1 * MiB,
	/** Durable Streams: a fork copies at most this much of its source. */
	streamForkMaxBytes: 16 * MiB,
} as const;

/** Defaults a topic starts with; `PUT /v1/topics/:topic` changes them. */
export const DEFAULT_TOPIC_SETTINGS = /* @__PURE__ */ table(
	() =>
		({
			/** Retained messages, counted from the newest. */
			max_messages: 10_000,
			/** Retained age of a message, from the time it joined the log. */
			max_age_ms: 7 * DAY,
			/** Open WebSockets (live and group) on the topic; more are refused with 429. */
			max_sockets: 10_000,
		}) as const,
);

/** Defaults a consumer group starts with; `PUT …/groups/:group` changes them. */
export const DEFAULT_GROUP_SETTINGS = /* @__PURE__ */ table(
	() =>
		({
			max_retries: 3,
			retry_delay_ms: 1 * SECOND,
			backoff: "fixed",
			max_retry_delay_ms: 5 * MINUTE,
			jitter: true,
			ack_timeout_ms: 30 * SECOND,
			start: "latest",
		}) as const,
);

export const DEFAULT_PUSH = /* @__PURE__ */ table(
	() =>
		({
			timeout_ms: 10 * SECOND,
			concurrency: 4,
		}) as const,
);

/** Internal pacing, not part of the contract but kept beside it. */
export const TUNING = /* @__PURE__ */ table(
	() =>
		({
			/** How long after a publish the background trim runs when the log is over its count. */
			retentionDelayMs: 1 * SECOND,
			/** Messages rows deleted per trim statement, so one trim never blocks the object for long. */
			retentionChunk: 5000,
			/** Messages per page while replaying a resumed stream, and the most data one page holds. */
			replayPageSize: 500,
			replayPageMaxBytes: 1 * MiB,
			/** Message frames packed into one WebSocket message, up to about this many characters. */
			packMaxChars: 64 * KiB,
			/**
			 * A publish within this long of the last fan-out, with enough sockets
			 * packing, leaves its fan-out to run once the object is idle, so that
			 * the publishes queued meanwhile share one packed message per socket;
			 * past it, a publish fans out by itself, however busy the object.
			 */
			coalesceMs: 2,
			/** Below this many live sockets that read packed messages, fan-out never waits: it would save little. */
			coalesceMinSockets: 16,
			/** A timer whose handler throws is retried after this, doubling, capped below. */
			timerRetryBaseMs: 1 * SECOND,
			timerRetryMaxMs: 5 * MINUTE,
			/** A push lease outlives the request timeout by this, so a lost object retries the delivery. */
			pushLeaseMarginMs: 5 * SECOND,
			/** A dead letter whose forward to its dead-letter topic has not succeeded is tried again after this. */
			forwardRetryMs: 30 * SECOND,
			/** Timers run per alarm invocation before yielding to a fresh alarm. */
			timersPerAlarm: 1000,
			/**
			 * A topic reports its summary to the catalog at most this often, this
			 * long after the first change since its last report: the topic listing
			 * is that much behind, and a busy topic costs the catalog one write per period.
			 */
			catalogReportMs: 2 * SECOND,
			/** Catalog objects the topic list is spread over, by a hash of the name; a listing asks each. */
			catalogShards: 8,
			/** Catalog rows one shard reads for one listing page, matching the caller's rights or not. */
			catalogScanMax: 5000,
			/** A byte-stream append is stored in rows of at most this many bytes (base64 in the row stays under the message limit). */
			streamRowBytes: 48 * KiB,
			/** Durable Streams: how long a long-poll waits before answering 204 (TIDINGS_STREAM_LONG_POLL_MS overrides). */
			streamLongPollMs: 20 * SECOND,
			/** Durable Streams: an SSE response ends after this long; the client reconnects from its offset (protocol §8.2). */
			streamSseLifetimeMs: 60 * SECOND,
		}) as const,
);
