/**
 * The promises of publishes not yet stored, and how they settle. The client
 * that sends an entry is not always the one that published it: tabs share
 * the IndexedDB outbox and take turns sending it, and in Node or a Worker
 * clients may share one outbox object. So whoever sends an entry tells the
 * others how it ended (a BroadcastChannel between tabs, a set of peers per
 * outbox in-process), and each settles the promises it holds.
 * @module
 */
import type { PublishResult } from "../protocol/message.js";
import { TidingsError } from "./errors.js";
import type { Emitter } from "./events.js";
import type { Outbox, OutboxEntry } from "./outbox.js";
import { browser, type Channel, g } from "./platform.js";
import type { Published } from "./types.js";

/**
 * How an entry ended, or that sends fail for the network (`offline`). Tabs
 * post these to each other, so the shape is shared with other versions of
 * this bundle open in the same browser.
 */
export type Settlement = {
	id?: string;
	entry?: OutboxEntry;
	result?: PublishResult;
	error?: [string, string, number?];
	offline?: true;
};

type Waiter = { resolve: (p: Published) => void; reject: (e: TidingsError) => void; wait?: boolean; key: string };

/** Outside browsers, the clients given one outbox object: they hear each other in-process. */
const peers = new WeakMap<Outbox, Set<Pending>>();

export class Pending {
	readonly #waiters = new Map<string, Waiter>();
	readonly #events: Emitter;
	#channel?: Channel<Settlement>;
	#shared?: Outbox;

	constructor(name: string, shared: Outbox | undefined, events: Emitter) {
		this.#events = events;
		if (browser && g.BroadcastChannel) {
			this.#channel = new g.BroadcastChannel<Settlement>(`tidings:${name}`);
			this.#channel.onmessage = ({ data }) => this.settle(data);
		} else if (shared) {
			this.#shared = shared;
			peers.set(shared, (peers.get(shared) ?? new Set()).add(this));
		}
	}

	/** What `publish` answers: settled when the entry is stored or refused, or (without `wait`) queued. */
	add(id: string, key: string, wait: boolean | undefined): Promise<Published> {
		return new Promise((resolve, reject) => this.#waiters.set(id, { resolve, reject, wait, key }));
	}

	/** Resolves a publish without `wait` with `{queued: true}`: it stays in the outbox and is sent later. */
	queued(id: string) {
		const w = this.#waiters.get(id);
		if (w && !w.wait) w.resolve({ queued: true, key: w.key });
	}

	/** Settles a publish's promise; `mine` (sent by this client) tells the other tabs or peers too. */
	settle(s: Settlement, mine = false) {
		if (mine) {
			if (this.#channel) this.#channel.postMessage(s);
			else if (this.#shared) for (const peer of peers.get(this.#shared) ?? []) if (peer !== this) peer.settle(s);
		}
		if (s.offline) for (const [id, w] of this.#waiters) if (!w.wait) this.queued(id);
		const w = s.id ? this.#waiters.get(s.id) : undefined;
		if (s.id) this.#waiters.delete(s.id);
		const entry = s.entry as OutboxEntry;
		if (s.result) {
			w?.resolve({ ...s.result, key: entry.message.key });
			this.#events.emit("published", { entry, result: s.result });
		} else if (s.error) {
			const error = new TidingsError(...(s.error as [TidingsError["code"], string, number?]));
			w?.reject(error);
			this.#events.emit("rejected", { entry, error });
		}
	}

	/** The outbox was cleared: every pending publish rejects with `cancelled`. */
	cancel() {
		for (const w of this.#waiters.values()) w.reject(new TidingsError("cancelled", "removed from the outbox unsent"));
		this.#waiters.clear();
	}

	/**
	 * The client closed: publishes with `wait` reject with `closed` (their
	 * entries stay in the outbox), the others resolve queued; the other tabs
	 * or peers are no longer heard.
	 */
	close() {
		for (const [id, w] of this.#waiters)
			if (w.wait)
				w.reject(
					new TidingsError("closed", "the client was closed before the message was stored; it stays in the outbox"),
				);
			else this.queued(id);
		this.#channel?.close();
		if (this.#shared) peers.get(this.#shared)?.delete(this);
	}
}
