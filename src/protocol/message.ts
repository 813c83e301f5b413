/**
 * The message as stored and delivered. The wire shape is the same over HTTP
 * history, WebSocket `message` frames, pulls and push requests.
 * @module
 */
import type { SeqOrRange } from "./seq-list.js";

/** A flat map used by filters. */
export type Attributes = Record<string, string | number | boolean>;

export interface Message<T = unknown> {
	/** Unique, time-ordered id (UUIDv7) assigned at publish. */
	id: string;
	/** Position in the topic's log: strictly increasing, never reused. */
	seq: number;
	topic: string;
	data: T;
	attributes: Attributes;
	/** Milliseconds since the epoch when the message joined the log. */
	ts: number;
	/** The publisher's idempotency key, when it gave one. */
	key?: string;
	/** W3C trace context given at publish, delivered unchanged. */
	traceparent?: string;
	baggage?: string;
}

/**
 * One message to publish: an HTTP body or batch item, a WebSocket `publish`
 * frame, an outbox entry. Its schema is `PublishItemSchema`, which a
 * compile-time assertion there ties to this type.
 */
export interface PublishInput<T = unknown> {
	data: T;
	attributes?: Attributes;
	/** Join the log after this many milliseconds (at most 12 h). */
	delay_ms?: number;
	/** Idempotency key: a repeat within 24 h stores nothing and answers the original. */
	key?: string;
	traceparent?: string;
	baggage?: string;
}

/** The same fields beside `data`, as the RPC entrypoint and the client take them (camelCase). */
export type PublishOptions = Omit<PublishInput, "data" | "delay_ms"> & {
	/** Join the log after this many milliseconds (at most 12 h). */
	delayMs?: number;
};

/** The answer to one published message. */
export type PublishResult =
	| { id: string; seq: number; duplicate?: true }
	| { id: string; deliver_at: number; duplicate?: true };

/** Settings of a topic: retention, and how many sockets it takes. */
export interface TopicSettings {
	max_messages: number;
	max_age_ms: number;
	max_sockets: number;
}

export interface TopicStats {
	topic: string;
	/** Seq of the newest message; 0 before the first. */
	head_seq: number;
	/** Seq of the oldest retained message; `head_seq + 1` when none is retained. */
	first_seq: number;
	retained: number;
	/** Delayed messages waiting to join the log. */
	delayed: number;
	/** Live WebSocket subscribers. */
	subscribers: number;
	settings: TopicSettings;
	groups: GroupInfo[];
}

/** A topic as the catalog lists it (`GET /v1/topics`): a few seconds behind the topic itself. */
export interface TopicSummary {
	topic: string;
	head_seq: number;
	retained: number;
	/** Open WebSockets: live subscribers and group members. */
	sockets: number;
	groups: number;
	/** Dead letters over all the topic's groups. */
	dead_letters: number;
	/** When the newest message joined the log (ms since the epoch); null before the first. */
	last_publish_at: number | null;
	/** When the topic was first written (a publish, its settings, a group). */
	created_at: number;
	/** When the topic sent this summary: the listing is at most `TUNING.catalogReportMs` and a round trip behind. */
	reported_at: number;
}

/** A page of the topic list, by name. */
export interface TopicList {
	topics: TopicSummary[];
	/** Pass as `after` to read on; null when there is nothing after this page. A page may be empty and still have one. */
	next_after: string | null;
}

export interface HistoryPage {
	messages: Message[];
	/** Pass as `after` to read on. */
	next_after: number;
	head_seq: number;
	first_seq: number;
}

/** Settings of a consumer group. */
export interface GroupSettings {
	/** Failed attempts retried before the message is dead-lettered (0–100). */
	max_retries: number;
	/** Delay before a retry; the base of exponential backoff. */
	retry_delay_ms: number;
	backoff: "fixed" | "exponential";
	/** Cap of exponential backoff. */
	max_retry_delay_ms: number;
	/** Exponential delays are drawn from [d/2, d] so retries of a burst spread out. */
	jitter: boolean;
	/** A delivery not acknowledged within this counts as a failed attempt. */
	ack_timeout_ms: number;
	/** Where a new group starts reading: the next message, or the oldest retained. */
	start: "latest" | "earliest";
	/** Only messages whose attributes match are delivered; others are counted as filtered. */
	filter?: import("./filter.js").Filter;
	/** Also publish every dead letter to this topic. */
	dead_letter_topic?: string;
	/** Deliver by HTTP POST from the object, signed; 2xx acks. */
	push?: PushSettings;
}

export interface PushSettings {
	url: string;
	/** HMAC key of the `tidings-signature` header; never shown back (answers show `"***"`). */
	secret: string;
	/** A request not answered within this is a failed attempt. */
	timeout_ms: number;
	/** Requests in flight at once for the group. */
	concurrency: number;
}

export interface GroupCounts {
	/** Retained messages the group has not taken yet, plus retries waiting. */
	pending: number;
	in_flight: number;
	acked: number;
	retried: number;
	dead: number;
	filtered: number;
	/** Messages retention removed before the group took them. */
	expired: number;
}

export interface GroupInfo {
	group: string;
	settings: GroupSettings;
	/** The group has taken every message up to this seq from the log. */
	cursor: number;
	counts: GroupCounts;
	/** Connected WebSocket members. */
	members: number;
}

/**
 * What `data` holds, as seen through RPC. (A recursive JSON type is exact but
 * too deep for the RPC type mapping of workers-types.)
 */
export type JsonData = string | number | boolean | null | object;

/** A message as delivered to a group member or a pull. */
export type GroupDelivery<T = JsonData> = Message<T> & { group: string; attempt: number };

export interface DeadLetter {
	seq: number;
	attempts: number;
	last_error: string | null;
	/** Each failed attempt, oldest first; the last `LIMITS.attemptErrorsKept` of them. */
	errors: AttemptError[];
	dead_at: number;
	message: Message;
}

/** One failed attempt of a group message: when, why, and who held it. */
export interface AttemptError {
	attempt: number;
	/** When the attempt ended (ms since the epoch). */
	at: number;
	/** The nack's error, `"ack timeout"`, `"consumer disconnected"`, a push failure, or null (a nack without one). */
	error: string | null;
	/** Who held the lease: `member:<id>` (a socket), `pull:<lease id>`, or `push:<id>`. */
	by: string | null;
}

/** Seqs to settle: single seqs and inclusive `[first, last]` ranges (contiguous acks travel as two numbers). */
export type SeqList = SeqOrRange[];
