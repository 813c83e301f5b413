/**
 * The client's public types: what `new Tidings(…)` and `publish` take, what
 * they answer, and the events. Kept apart from the classes so that the
 * modules behind the façade share them without importing it.
 * @module
 */
import type {
	GroupDelivery,
	Message,
	PublishResult,
	PublishOptions as WirePublishOptions,
} from "../protocol/message.js";
import type { ConsumeOptions, Consumer } from "./consumer.js";
import type { TidingsError } from "./errors.js";
import type { SocketClass } from "./link.js";
import type { Outbox, OutboxEntry } from "./outbox.js";
import type { SubscribeOptions, Subscription } from "./subscription.js";

export interface TidingsOptions {
	/** Where tidings runs: `https://tidings.example.com` (or `http://localhost:8787`). */
	url: string;
	/** The admin key or a token. */
	token?: string;
	/** Called for a token before connecting and again when one was refused or expired; cache in it. */
	getToken?: () => string | Promise<string>;
	/**
	 * Where publishes wait for the server.
	 * @default IndexedDB in browsers, memory elsewhere
	 */
	outbox?: Outbox;
	/**
	 * Name of the IndexedDB database, of the cross-tab lock and of the BroadcastChannel.
	 * @default "tidings"
	 */
	name?: string;
	/** A WebSocket class, where the runtime has none (Node 20: the `tidings/client` Node build passes `ws`). */
	WebSocket?: SocketClass;
	/** The fetch to use: a service binding's `fetch` in a Worker, say. */
	fetch?: (input: string, init?: RequestInit) => Promise<Response>;
	/**
	 * A socket whose `ping` is not answered within this is dropped and reconnected.
	 * @default 4000
	 */
	heartbeatMs?: number;
	/**
	 * Reconnect and retry delays: from `minMs`, doubling, at most `maxMs`, with jitter.
	 * @default { minMs: 500, maxMs: 30000 }
	 */
	backoff?: { minMs?: number; maxMs?: number };
	/**
	 * An HTTP request not answered within this counts as a network failure.
	 * @default 10000
	 */
	requestTimeoutMs?: number;
}

/** The publish fields beside `data` (as the RPC entrypoint takes them too), and how to wait. */
export interface PublishOptions extends WirePublishOptions {
	/**
	 * Idempotency key (24 h, per topic), so that retries are stored once.
	 * @default a fresh UUID
	 */
	key?: string;
	/**
	 * Resolve only once the server stored the message, even while offline.
	 * @default false
	 */
	wait?: boolean;
}

export type Published = (PublishResult & { key: string }) | { queued: true; key: string };

/** `connected`: every socket open; `connecting`: some socket (re)connecting; `offline`: the network is down. */
export type ConnectionState = "connecting" | "connected" | "offline" | "closed";

export interface TidingsEvents {
	state: ConnectionState;
	/** An outbox entry was stored by the server (whichever page or tab published it). */
	published: { entry: OutboxEntry; result: PublishResult };
	/** An outbox entry was refused for good (bad input, no right) and removed from the outbox. */
	rejected: { entry: OutboxEntry; error: TidingsError };
	/** Something degraded but nothing failed: `outbox_memory` when the durable outbox could not be used. */
	warning: { code: "outbox_memory"; message: string; cause: unknown };
	/** Errors with no caller to throw to: error frames, a handler that threw, a refused credential. */
	error: TidingsError;
}

/**
 * One topic whose messages are `T`: what `tidings.topic<T>(name)` gives. The
 * same calls as on `Tidings`, typed; the server enforces the topic's JSON
 * Schema, this only says what the code means to send and expects to read
 * (docs/client.md#typed-topics derives `T` from the schema).
 * @example
 * const orders = tidings.topic<Order>("orders");
 * await orders.publish({ id: "ord_1", currency: "EUR", lines: [] });
 * orders.subscribe((msg) => total(msg.data.lines));
 */
export interface TopicHandle<T> {
	readonly name: string;
	publish(data: T, options?: PublishOptions): Promise<Published>;
	subscribe(handler: (message: Message<T>) => unknown, options?: SubscribeOptions): Subscription<T>;
	consume(handler: (message: GroupDelivery<T>) => unknown, options: ConsumeOptions): Consumer<T>;
}
