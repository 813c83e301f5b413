/**
 * The tidings client's façade, `Tidings`: what docs/client.md documents,
 * wired to the parts behind it, which it keeps private. Publishes go over
 * HTTP through an outbox (drainer.ts, pending.ts, http.ts); each
 * subscription or consumer has its own WebSocket (link.ts), because each
 * topic is its own Durable Object; connection.ts makes their states and the
 * network's into the client's one state; events.ts carries the events.
 * @module
 */
import type { GroupDelivery, Message } from "../protocol/message.js";
import { Connection } from "./connection.js";
import { type ConsumeOptions, Consumer } from "./consumer.js";
import { DEFAULTS } from "./defaults.js";
import { Drainer } from "./drainer.js";
import { TidingsError } from "./errors.js";
import { Emitter } from "./events.js";
import { Http } from "./http.js";
import type { SocketClass } from "./link.js";
import { FallbackOutbox, type Outbox, type OutboxEntry } from "./outbox.js";
import { IndexedDbOutbox } from "./outbox-idb.js";
import { Pending } from "./pending.js";
import { browser, g } from "./platform.js";
import { type SubscribeOptions, Subscription } from "./subscription.js";
import type {
	ConnectionState,
	Published,
	PublishOptions,
	TidingsEvents,
	TidingsOptions,
	TopicHandle,
} from "./types.js";

/**
 * The tidings client. One WebSocket per subscription or consumer (each topic
 * is its own Durable Object; see docs/client.md), publishes over HTTP
 * through an outbox.
 */
export class Tidings {
	/** `options.url` without trailing slashes. */
	readonly url: string;
	/** The WebSocket class the sockets are made with. */
	readonly WebSocket: SocketClass;
	/** `options.heartbeatMs`, or its default. */
	readonly heartbeatMs: number;
	readonly #events = new Emitter();
	readonly #box: Outbox;
	readonly #pending: Pending;
	readonly #connection: Connection;
	readonly #drainer: Drainer;
	#closed?: Promise<void>;

	constructor(options: TidingsOptions) {
		this.url = options.url.replace(/\/+$/, "");
		this.heartbeatMs = options.heartbeatMs ?? DEFAULTS.heartbeatMs;
		const WS = options.WebSocket ?? (globalThis.WebSocket as unknown as SocketClass | undefined);
		if (!WS)
			throw new TypeError(
				"this runtime has no WebSocket: in Node 20, import from `tidings/client` (which uses `ws`) or pass `WebSocket`",
			);
		this.WebSocket = WS;
		const name = options.name ?? DEFAULTS.name;
		let durable = options.outbox;
		try {
			if (!durable && g.indexedDB) durable = new IndexedDbOutbox(name);
		} catch {}
		const events = this.#events;
		this.#box = new FallbackOutbox(durable, (cause) =>
			events.emit("warning", {
				code: "outbox_memory",
				message: "the outbox could not be used; publishes are kept in memory until they are sent",
				cause,
			}),
		);
		// After the constructor returns, so that a listener added right after `new` hears it.
		if (!durable && browser)
			queueMicrotask(() =>
				events.emit("warning", { code: "outbox_memory", message: "IndexedDB is not available", cause: undefined }),
			);
		this.#pending = new Pending(name, options.outbox, events);
		const http = new Http(options, this.url, options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs);
		this.#connection = new Connection(this, {
			options,
			http,
			events,
			WebSocket: WS,
			heartbeatMs: this.heartbeatMs,
			onBack: () => this.#drainer.resume(),
		});
		this.#drainer = new Drainer({
			box: this.#box,
			options,
			http,
			connection: this.#connection,
			pending: this.#pending,
			events,
		});
		// A page that finds publishes of an earlier page (or a crash) in the outbox sends them now.
		this.#drainer.flush();
	}

	/** `connecting`, `connected`, `offline` or `closed`: see `ConnectionState`. */
	get state(): ConnectionState {
		return this.#connection.state;
	}

	/** Listens to an event; returns the function that stops listening. */
	on<K extends keyof TidingsEvents>(event: K, fn: (e: TidingsEvents[K]) => void): () => void {
		return this.#events.on(event, fn);
	}

	/** The outbox: publishes not yet acknowledged by the server, oldest first. */
	get outbox() {
		const box = this.#box;
		return {
			size: () => box.size(),
			entries: (limit: number = DEFAULTS.outboxEntries) => box.peek(limit),
			/** Drops every unsent publish; their pending promises reject with `cancelled`. */
			clear: async () => {
				await box.clear();
				this.#pending.cancel();
			},
		};
	}

	/**
	 * Publishes one message. Resolves with the stored message's `id` and `seq`
	 * (or `deliver_at`), or — while offline, unless `wait` — with `{queued: true}`
	 * once the message is safely in the outbox; it is sent when the network returns.
	 */
	async publish<T>(topic: string, data: T, options: PublishOptions = {}): Promise<Published> {
		if (this.#connection.closed) throw new TidingsError("closed", "this client is closed");
		const { attributes, key = crypto.randomUUID(), delayMs, traceparent, baggage, wait } = options;
		const entry: OutboxEntry = {
			id: crypto.randomUUID(),
			topic,
			message: JSON.parse(JSON.stringify({ data, attributes, key, delay_ms: delayMs, traceparent, baggage })),
			at: Date.now(),
		};
		await this.#box.add(entry);
		const done = this.#pending.add(entry.id, key, wait);
		if (!wait && this.#connection.offline) this.#pending.queued(entry.id);
		this.#drainer.flush();
		return done;
	}

	/** Streams a topic's messages to `handler`, from `options.from`, resuming across reconnects. */
	subscribe<T = unknown>(
		topic: string,
		handler: (message: Message<T>) => unknown,
		options: SubscribeOptions = {},
	): Subscription<T> {
		return new Subscription<T>(this, topic, handler, options);
	}

	/** Joins a consumer group: `handler` resolving acks a message, throwing nacks it. */
	consume<T = unknown>(
		topic: string,
		handler: (message: GroupDelivery<T>) => unknown,
		options: ConsumeOptions,
	): Consumer<T> {
		return new Consumer<T>(this, topic, handler, options);
	}

	/** A handle on one topic whose messages are `T`: typed `publish`, `subscribe` and `consume` (see `TopicHandle`). */
	topic<T>(name: string): TopicHandle<T> {
		return {
			name,
			publish: (data, options) => this.publish(name, data, options),
			subscribe: (handler, options) => this.subscribe(name, handler, options),
			consume: (handler, options) => this.consume(name, handler, options),
		};
	}

	/** Stops the consumers (letting running handlers finish), closes every socket. The outbox keeps what is unsent. */
	close(): Promise<void> {
		this.#closed ??= this.#close();
		return this.#closed;
	}

	/** Sends what is in the outbox, in order; one flusher per outbox across tabs (Web Locks). */
	flush(): Promise<void> {
		return this.#drainer.flush();
	}

	async #close() {
		// Publishes still go while the sockets close: a stopping consumer's handlers may publish.
		await this.#connection.closeSockets();
		this.#connection.stop();
		await this.#drainer.stop();
		this.#pending.close();
		this.#connection.end();
	}
}
