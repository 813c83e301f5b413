import type { ServerFrame } from "../protocol/frames.js";
import type { GroupDelivery, Message, PublishInput, PublishResult } from "../protocol/message.js";
import { type ConsumeOptions, Consumer } from "./consumer.js";
import { BATCH, DEFAULTS } from "./defaults.js";
import { TidingsError } from "./errors.js";
import { Link, type SocketClass } from "./link.js";
import { FallbackOutbox, type Outbox, type OutboxEntry } from "./outbox.js";
import { IndexedDbOutbox } from "./outbox-idb.js";
import { type SubscribeOptions, Subscription } from "./subscription.js";

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

export interface PublishOptions {
	attributes?: PublishInput["attributes"];
	/**
	 * Idempotency key (24 h, per topic), so that retries are stored once.
	 * @default a fresh UUID
	 */
	key?: string;
	/** Join the log after this many milliseconds. */
	delayMs?: number;
	traceparent?: string;
	baggage?: string;
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

type LinkArgs = ConstructorParameters<typeof Link> extends [unknown, ...infer Rest] ? Rest : never;
type Waiter = { resolve: (p: Published) => void; reject: (e: TidingsError) => void; wait?: boolean; key: string };
type Broadcast = {
	id?: string;
	entry?: OutboxEntry;
	result?: PublishResult;
	error?: [string, string, number?];
	offline?: true;
};

const g = globalThis as unknown as {
	navigator?: { onLine?: boolean; locks?: { request(name: string, fn: () => Promise<void>): Promise<void> } };
	indexedDB?: unknown;
	addEventListener?: (type: string, fn: () => void) => void;
	removeEventListener?: (type: string, fn: () => void) => void;
	BroadcastChannel?: new (name: string) => Channel;
};
interface Channel {
	postMessage(b: Broadcast): void;
	close(): void;
	onmessage: ((e: { data: Broadcast }) => void) | null;
}
/** Browsers only: Workers and Node have a `navigator` without `onLine`. */
const browser = !!g.navigator && "onLine" in g.navigator;
/**
 * Same-process stand-ins for Web Locks and BroadcastChannel (Node, Workers),
 * per outbox object: clients given one outbox flush one at a time and hear
 * each other; a client with its own outbox waits for nobody.
 */
const chains = new WeakMap<object, Promise<void>>();
const peers = new WeakMap<Outbox, Set<Tidings>>();

/**
 * The tidings client. One WebSocket per subscription or consumer (each topic
 * is its own Durable Object; see docs/client.md), publishes over HTTP
 * through an outbox.
 */
export class Tidings {
	readonly url: string;
	readonly WebSocket: SocketClass;
	readonly heartbeatMs: number;
	/** @internal */
	readonly requestTimeoutMs: number;
	state: ConnectionState = "connecting";
	/** Every open link, and the subscription or consumer that owns it. */
	private links = new Map<Link, { close(): unknown }>();
	private handlers: { [K in keyof TidingsEvents]?: Set<(e: TidingsEvents[K]) => void> } = {};
	private box: Outbox;
	private waiters = new Map<string, Waiter>();
	private channel?: Channel;
	private tokenP?: Promise<string | undefined>;
	private flushing?: Promise<void>;
	private again = false;
	private single = 0;
	private down = false;
	private closed = false;
	private closing = false;
	/** The drain running under the lock, if any. */
	private draining?: Promise<void>;
	private resume?: () => void;
	private online = () => {
		this.down = false;
		this.resume?.();
		for (const link of this.links.keys()) link.wake();
		this.update();
	};
	private offline = () => {
		for (const link of this.links.keys()) link.probe();
		this.update();
	};

	constructor(private options: TidingsOptions) {
		this.url = options.url.replace(/\/+$/, "");
		this.heartbeatMs = options.heartbeatMs ?? DEFAULTS.heartbeatMs;
		this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
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
		this.box = new FallbackOutbox(durable, (cause) =>
			this.emit("warning", {
				code: "outbox_memory",
				message: "the outbox could not be used; publishes are kept in memory until they are sent",
				cause,
			}),
		);
		// After the constructor returns, so that a listener added right after `new` hears it.
		if (!durable && browser)
			queueMicrotask(() =>
				this.emit("warning", { code: "outbox_memory", message: "IndexedDB is not available", cause: undefined }),
			);
		// Tabs tell each other what they flushed; elsewhere, clients given one outbox tell each other in-process.
		if (browser && g.BroadcastChannel) {
			this.channel = new g.BroadcastChannel(`tidings:${name}`);
			this.channel.onmessage = ({ data }) => this.settle(data);
		} else if (options.outbox) peers.set(options.outbox, (peers.get(options.outbox) ?? new Set()).add(this));
		if (browser) {
			g.addEventListener?.("online", this.online);
			g.addEventListener?.("offline", this.offline);
		}
		this.update();
		// A page that finds publishes of an earlier page (or a crash) in the outbox sends them now.
		this.flush();
	}

	/** Listens to an event; returns the function that stops listening. */
	on<K extends keyof TidingsEvents>(event: K, fn: (e: TidingsEvents[K]) => void): () => void {
		const handlers = this.handlers as Record<K, Set<typeof fn> | undefined>;
		const set = handlers[event] ?? new Set();
		handlers[event] = set;
		set.add(fn);
		return () => set.delete(fn);
	}

	/** @internal */
	emit<K extends keyof TidingsEvents>(event: K, e: TidingsEvents[K]) {
		for (const fn of this.handlers[event] ?? [])
			if (event === "error")
				try {
					fn(e);
				} catch (err) {
					console.error("tidings: an error listener threw", err); // reporting it as an event would loop
				}
			else this.call(() => fn(e));
	}

	/** Runs a caller's function: what it throws or rejects with becomes an `error` event. */
	call(fn: () => unknown) {
		const fail = (e: unknown) =>
			e instanceof TidingsError
				? this.emit("error", e)
				: this.emit("error", new TidingsError("internal", String((e as Error)?.message ?? e)));
		try {
			Promise.resolve(fn()).catch(fail);
		} catch (e) {
			fail(e);
		}
	}

	/** The outbox: publishes not yet acknowledged by the server, oldest first. */
	get outbox() {
		const box = this.box;
		return {
			size: () => box.size(),
			entries: (limit: number = DEFAULTS.outboxEntries) => box.peek(limit),
			/** Drops every unsent publish; their pending promises reject with `cancelled`. */
			clear: async () => {
				await box.clear();
				for (const w of this.waiters.values())
					w.reject(new TidingsError("cancelled", "removed from the outbox unsent"));
				this.waiters.clear();
			},
		};
	}

	/**
	 * Publishes one message. Resolves with the stored message's `id` and `seq`
	 * (or `deliver_at`), or — while offline, unless `wait` — with `{queued: true}`
	 * once the message is safely in the outbox; it is sent when the network returns.
	 */
	async publish<T>(topic: string, data: T, options: PublishOptions = {}): Promise<Published> {
		if (this.closed) throw new TidingsError("closed", "this client is closed");
		const { attributes, key = crypto.randomUUID(), delayMs, traceparent, baggage, wait } = options;
		const entry: OutboxEntry = {
			id: crypto.randomUUID(),
			topic,
			message: JSON.parse(JSON.stringify({ data, attributes, key, delay_ms: delayMs, traceparent, baggage })),
			at: Date.now(),
		};
		await this.box.add(entry);
		const done = new Promise<Published>((resolve, reject) =>
			this.waiters.set(entry.id, { resolve, reject, wait, key }),
		);
		if (!wait && this.isOffline()) this.queued(entry.id);
		this.flush();
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

	/** Stops the consumers (letting running handlers finish), closes every socket. The outbox keeps what is unsent. */
	async close() {
		// No new sockets from here; publishes still go (a stopping consumer's handlers may publish).
		this.closing = true;
		await Promise.all([...this.links.values()].map((o) => o.close()));
		this.closed = true;
		this.resume?.();
		// A send in flight settles first (within the request timeout), so the tabs or clients waiting on it hear of it.
		let timer: ReturnType<typeof setTimeout> | undefined;
		await Promise.race([
			this.draining,
			new Promise((resolve) => {
				timer = setTimeout(resolve, this.requestTimeoutMs);
			}),
		]);
		clearTimeout(timer);
		for (const [id, w] of this.waiters)
			if (w.wait)
				w.reject(
					new TidingsError("closed", "the client was closed before the message was stored; it stays in the outbox"),
				);
			else this.queued(id);
		this.channel?.close();
		if (this.options.outbox) peers.get(this.options.outbox)?.delete(this);
		g.removeEventListener?.("online", this.online);
		g.removeEventListener?.("offline", this.offline);
		this.update();
	}

	/** Sends what is in the outbox, in order; one flusher per outbox across tabs (Web Locks). */
	flush(): Promise<void> {
		this.again = true;
		this.flushing ??= this.lock(async () => {
			while (this.again && !this.closed) {
				this.again = false;
				// Never a rejection nobody handles: flushes start from the constructor and from publish.
				this.draining = this.drain().catch((e) => this.call(() => Promise.reject(e)));
				await this.draining;
				this.draining = undefined;
			}
		}).finally(() => {
			this.flushing = undefined;
			if (this.again && !this.closed) this.flush();
		});
		return this.flushing;
	}

	/** @internal */
	link(owner: { close(): unknown }, ...args: LinkArgs) {
		if (this.closing) throw new TidingsError("closed", "this client is closed");
		const link = new Link(this, ...args);
		this.links.set(link, owner);
		this.update();
		return link;
	}

	/** @internal Recomputes the connection state. */
	update() {
		for (const link of this.links.keys()) if (link.state === "closed") this.links.delete(link);
		const state: ConnectionState = this.closed
			? "closed"
			: this.isOffline()
				? "offline"
				: [...this.links.keys()].some((l) => l.state === "connecting")
					? "connecting"
					: "connected";
		if (state === this.state) return;
		this.state = state;
		this.emit("state", state);
	}

	/** @internal A socket opened: the network is back, so the outbox need not wait out its backoff. */
	reachable() {
		if (this.down) this.online();
		else this.update();
	}

	/** @internal The credential for the next request; `fresh` asks `getToken` again. */
	token(fresh = false): Promise<string | undefined> {
		const { token, getToken } = this.options;
		if (!getToken) return Promise.resolve(token);
		if (fresh || !this.tokenP) this.tokenP = Promise.resolve(getToken()).catch(() => undefined);
		return this.tokenP;
	}

	/** @internal Capped exponential backoff with jitter: [d/2, d]. */
	backoff(failures: number) {
		const { minMs = DEFAULTS.backoff.minMs, maxMs = DEFAULTS.backoff.maxMs } = this.options.backoff ?? {};
		const d = Math.min(maxMs, minMs * 2 ** Math.min(failures, 30));
		return d / 2 + (Math.random() * d) / 2;
	}

	private isOffline() {
		return this.down || g.navigator?.onLine === false;
	}

	private lock(fn: () => Promise<void>): Promise<void> {
		// Web Locks refuse opaque origins (sandboxed frames): then tabs cannot be coordinated, but this page still sends.
		if (browser && g.navigator?.locks)
			return g.navigator.locks.request(`tidings:${this.options.name ?? DEFAULTS.name}`, fn).catch(() => this.chain(fn));
		return this.chain(fn);
	}

	private chain(fn: () => Promise<void>): Promise<void> {
		const key = this.options.outbox ?? this;
		const next = (chains.get(key) ?? Promise.resolve()).then(fn);
		chains.set(
			key,
			next.catch(() => {}),
		);
		return next;
	}

	private async drain() {
		let failures = 0;
		while (!this.closed) {
			const head = await this.box.peek(BATCH.maxMessages);
			const topic = head[0]?.topic;
			let bytes = 0;
			const batch: OutboxEntry[] = [];
			for (const e of head) {
				bytes += JSON.stringify(e.message).length * 3;
				if (e.topic !== topic || (batch.length && (bytes > BATCH.maxBytes || this.single))) break;
				batch.push(e);
			}
			if (!batch.length) return;
			try {
				const res = await this.request("POST", `/v1/topics/${encodeURIComponent(topic as string)}/messages`, {
					messages: batch.map((e) => e.message),
				});
				const { messages } = (await res.json().catch((e: unknown) => {
					// Stored, most likely, but unconfirmed: resending with the same keys is safe.
					throw new TidingsError("network", `reading the answer failed: ${(e as Error)?.message ?? e}`);
				})) as { messages: PublishResult[] };
				await this.box.remove(batch.map((e) => e.id));
				if (this.single) this.single--;
				failures = 0;
				if (this.down) {
					this.down = false;
					this.update();
				}
				for (const [i, entry] of batch.entries()) this.settle({ id: entry.id, entry, result: messages[i] }, true);
			} catch (e) {
				const error = e as TidingsError;
				if (error.retryable) {
					if (error.code === "network") {
						this.down = true;
						this.settle({ offline: true }, true);
						this.update();
					} else if (error.code === "unauthorized") this.emit("error", error);
					await new Promise<void>((resolve) => {
						const timer = setTimeout(resolve, this.backoff(failures++));
						this.resume = () => {
							clearTimeout(timer);
							resolve();
						};
					});
				} else if (batch.length > 1)
					this.single = batch.length; // find the refused one: one by one
				else {
					if (this.single) this.single--;
					await this.box.remove([(batch[0] as OutboxEntry).id]);
					this.settle({ id: batch[0]?.id, entry: batch[0], error: [error.code, error.message, error.status] }, true);
				}
			}
		}
	}

	/** Settles a publish's promise and tells the other tabs, which may be waiting on it. */
	private settle(b: Broadcast, mine = false) {
		if (mine) {
			if (this.channel) this.channel.postMessage(b);
			else if (this.options.outbox)
				for (const peer of peers.get(this.options.outbox) ?? []) if (peer !== this) peer.settle(b);
		}
		if (b.offline) for (const [id, w] of this.waiters) if (!w.wait) this.queued(id);
		const w = b.id ? this.waiters.get(b.id) : undefined;
		if (b.id) this.waiters.delete(b.id);
		const entry = b.entry as OutboxEntry;
		if (b.result) {
			w?.resolve({ ...b.result, key: entry.message.key });
			this.emit("published", { entry, result: b.result });
		} else if (b.error) {
			const error = new TidingsError(...(b.error as [TidingsError["code"], string, number?]));
			w?.reject(error);
			this.emit("rejected", { entry, error });
		}
	}

	private queued(id: string) {
		const w = this.waiters.get(id);
		if (w && !w.wait) w.resolve({ queued: true, key: w.key });
	}

	/** @internal An HTTP request with the credential; refused tokens are fetched again once. */
	async request(method: string, path: string, body?: unknown, retried = false): Promise<Response> {
		const token = await this.token(retried);
		const headers: Record<string, string> = { "content-type": "application/json" };
		if (token) headers.authorization = `Bearer ${token}`;
		let res: Response;
		try {
			res = await (this.options.fetch ?? fetch)(this.url + path, {
				method,
				headers,
				body: body === undefined ? undefined : JSON.stringify(body),
				signal: AbortSignal.timeout(this.requestTimeoutMs),
			});
		} catch (e) {
			throw new TidingsError("network", `${method} ${path} failed: ${(e as Error)?.message ?? e}`);
		}
		if (res.ok) return res;
		const { error } = (await res.json().catch(() => ({}))) as {
			error?: { code: TidingsError["code"]; message: string };
		};
		if (res.status === 401 && !retried && this.options.getToken) return this.request(method, path, body, true);
		throw new TidingsError(error?.code ?? "internal", error?.message ?? `HTTP ${res.status}`, res.status);
	}
}

export type { ServerFrame };
