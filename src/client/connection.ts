/**
 * Connection state: where the client is in its life and what it last learned
 * of the network, as one `Phase` changed only by `#setState`, plus the
 * sockets (links) of its subscriptions and consumers. Together they make the
 * public `ConnectionState`, emitted as the `state` event when it changes.
 *
 * The browser's `online` and `offline` events are hints: they change the
 * state, wake or probe the sockets and cut the outbox's backoff short, but
 * sockets and requests are tried whatever they say.
 * @module
 */
import { DEFAULTS } from "./defaults.js";
import { TidingsError } from "./errors.js";
import type { Emitter } from "./events.js";
import type { Http } from "./http.js";
import { Link, type LinkHost, type SocketClass } from "./link.js";
import { browser, g } from "./platform.js";
import type { ConnectionState, TidingsOptions } from "./types.js";

/**
 * - `running`: nothing says the server is unreachable;
 * - `unreachable`: a request failed for the network, and since then no
 *   request succeeded, no socket opened and no `online` event came;
 * - `closing`, `closing unreachable`: `close()` takes no new socket and is
 *   closing those there are (a consumer first lets its handlers finish);
 *   publishes still go, and the network is still tracked;
 * - `stopping`: every socket is closed and publishes are refused, while the
 *   send in flight settles; the public state waits for `closed`;
 * - `closed`.
 */
export type Phase = "running" | "unreachable" | "closing" | "closing unreachable" | "stopping" | "closed";

const MOVES: { readonly [P in Phase]: readonly Phase[] } = {
	running: ["unreachable", "closing"],
	unreachable: ["running", "closing unreachable"],
	closing: ["closing unreachable", "stopping"],
	"closing unreachable": ["closing", "stopping"],
	stopping: ["closed"],
	closed: [],
};

type LinkArgs = ConstructorParameters<typeof Link> extends [unknown, ...infer Rest] ? Rest : never;

/** Subscriptions and consumers reach their client's connection through this, so that `Tidings` shows none of it. */
const connections = new WeakMap<object, Connection>();

export function connectionOf(client: object): Connection {
	const connection = connections.get(client);
	if (!connection) throw new TypeError("not a tidings client");
	return connection;
}

export interface ConnectionParts {
	options: TidingsOptions;
	http: Http;
	events: Emitter;
	WebSocket: SocketClass;
	heartbeatMs: number;
	/** The network is back: the outbox should not wait out its backoff. */
	onBack: () => void;
}

export class Connection implements LinkHost {
	readonly http: Http;
	readonly events: Emitter;
	readonly WebSocket: SocketClass;
	readonly heartbeatMs: number;
	readonly #options: TidingsOptions;
	readonly #onBack: () => void;
	#phase: Phase = "running";
	#state: ConnectionState = "connecting";
	/** Every open link, and the subscription or consumer that owns it. */
	readonly #links = new Map<Link, { close(): unknown }>();

	constructor(client: object, parts: ConnectionParts) {
		this.http = parts.http;
		this.events = parts.events;
		this.WebSocket = parts.WebSocket;
		this.heartbeatMs = parts.heartbeatMs;
		this.#options = parts.options;
		this.#onBack = parts.onBack;
		connections.set(client, this);
		if (browser) {
			g.addEventListener?.("online", this.#online);
			g.addEventListener?.("offline", this.#offline);
		}
		this.update();
	}

	/** The public state, as last emitted. */
	get state(): ConnectionState {
		return this.#state;
	}

	/** Publishes are refused: every socket is closed. */
	get closed(): boolean {
		return this.#phase === "stopping" || this.#phase === "closed";
	}

	/** The network is down, as far as the client knows: a publish without `wait` resolves queued at once. */
	get offline(): boolean {
		return this.#phase === "unreachable" || this.#phase === "closing unreachable" || g.navigator?.onLine === false;
	}

	/** A socket for a subscription or consumer (`owner`, closed by `close()`). */
	open(owner: { close(): unknown }, ...args: LinkArgs): Link {
		if (this.#phase !== "running" && this.#phase !== "unreachable")
			throw new TidingsError("closed", "this client is closed");
		const link = new Link(this, ...args);
		this.#links.set(link, owner);
		this.update();
		return link;
	}

	/** Recomputes the public state; emits it when it changed. */
	update(): void {
		for (const link of this.#links.keys()) if (link.state === "closed") this.#links.delete(link);
		const state = this.#derive();
		if (state === this.#state) return;
		this.#state = state;
		this.events.emit("state", state);
	}

	/** A socket opened: the network is reachable. */
	reachable(): void {
		if (this.#phase === "unreachable" || this.#phase === "closing unreachable") this.#online();
		else this.update();
	}

	/** A request failed for the network. */
	lost(): void {
		if (this.#phase === "running") this.#setState("unreachable");
		else if (this.#phase === "closing") this.#setState("closing unreachable");
		else this.update();
	}

	/** A request succeeded. */
	found(): void {
		if (this.#phase === "unreachable") this.#setState("running");
		else if (this.#phase === "closing unreachable") this.#setState("closing");
	}

	/** Capped exponential backoff with jitter: the wait before retry `failures` (from 0) is in [d/2, d]. */
	backoff(failures: number): number {
		const { minMs = DEFAULTS.backoff.minMs, maxMs = DEFAULTS.backoff.maxMs } = this.#options.backoff ?? {};
		const d = Math.min(maxMs, minMs * 2 ** Math.min(failures, 30));
		return d / 2 + (Math.random() * d) / 2;
	}

	/** Takes no new socket and closes those there are; resolves once they are all closed. */
	closeSockets(): Promise<unknown> {
		if (this.#phase === "running") this.#setState("closing");
		else if (this.#phase === "unreachable") this.#setState("closing unreachable");
		return Promise.all([...this.#links.values()].map((owner) => owner.close()));
	}

	/** Every socket is closed: publishes are refused from now on. */
	stop(): void {
		if (this.#phase === "closing" || this.#phase === "closing unreachable") this.#setState("stopping");
	}

	/** The client is closed: the state becomes `closed`, and browser events are no longer heard. */
	end(): void {
		g.removeEventListener?.("online", this.#online);
		g.removeEventListener?.("offline", this.#offline);
		if (this.#phase === "stopping") this.#setState("closed");
	}

	#setState(next: Phase): void {
		if (!MOVES[this.#phase].includes(next)) throw new Error(`tidings: no move from ${this.#phase} to ${next}`);
		this.#phase = next;
		this.update();
	}

	#derive(): ConnectionState {
		switch (this.#phase) {
			case "closed":
				return "closed";
			case "stopping":
				return this.#state;
			case "unreachable":
			case "closing unreachable":
				return "offline";
			default:
				if (g.navigator?.onLine === false) return "offline";
				return [...this.#links.keys()].some((l) => l.state === "connecting") ? "connecting" : "connected";
		}
	}

	/** The network is back (the browser says so, or a socket opened while it seemed down). */
	#online = () => {
		this.#onBack();
		for (const link of this.#links.keys()) link.wake();
		if (this.#phase === "unreachable") this.#setState("running");
		else if (this.#phase === "closing unreachable") this.#setState("closing");
		else this.update();
	};

	/** The browser says the network is gone: check every socket now instead of at its next heartbeat. */
	#offline = () => {
		for (const link of this.#links.keys()) link.probe();
		this.update();
	};
}
