/**
 * The message as stored and delivered. The wire shape is the same over HTTP
 * history, WebSocket `message` frames and (later) pull and push.
 * @module
 */

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

/** One message to publish (HTTP body item or WebSocket frame). */
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

/** The answer to one published message. */
export type PublishResult =
	| { id: string; seq: number; duplicate?: true }
	| { id: string; deliver_at: number; duplicate?: true };

/** Retention settings of a topic. */
export interface TopicSettings {
	max_messages: number;
	max_age_ms: number;
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
	groups: unknown[];
}

export interface HistoryPage {
	messages: Message[];
	/** Pass as `after` to read on. */
	next_after: number;
	head_seq: number;
	first_seq: number;
}
