/**
 * Where publishes wait until the server has stored them: the `Outbox`
 * contract that custom outboxes implement, the memory outbox, and the
 * wrapper that lets a failing durable outbox degrade to memory instead of
 * failing a publish.
 * @module
 */
import type { PublishInput } from "../protocol/message.js";

/** One publish waiting for the server's acknowledgement. */
export interface OutboxEntry {
	/** Local id of the entry (unique per publish call). */
	id: string;
	topic: string;
	/** The message as sent; `message.key` is its idempotency key, always set. */
	message: PublishInput & { key: string };
	/** When `publish` was called (ms since the epoch). */
	at: number;
}

/**
 * Where publishes wait until the server has stored them. An entry is added
 * before the first send and removed only after a `2xx`; a send lost in
 * flight is therefore repeated with the same key and stored once.
 *
 * Implementations must keep entries in insertion order and make `add`
 * durable before it resolves (for an outbox that is meant to survive a
 * crash). The client calls `peek`/`remove` from one flusher at a time.
 */
export interface Outbox {
	add(entry: OutboxEntry): Promise<void>;
	/** Up to `limit` entries, oldest first. */
	peek(limit: number): Promise<OutboxEntry[]>;
	/** Removes the entries with these ids. */
	remove(ids: string[]): Promise<void>;
	size(): Promise<number>;
	clear(): Promise<void>;
}

/** The default outbox outside browsers: fast, and gone with the process. */
export class MemoryOutbox implements Outbox {
	#entries: OutboxEntry[] = [];
	async add(entry: OutboxEntry) {
		this.#entries.push(entry);
	}
	async peek(limit: number) {
		return this.#entries.slice(0, limit);
	}
	async remove(ids: string[]) {
		const gone = new Set(ids);
		this.#entries = this.#entries.filter((e) => !gone.has(e.id));
	}
	async size() {
		return this.#entries.length;
	}
	async clear() {
		this.#entries = [];
	}
}

/**
 * Wraps a durable outbox so that a failure of it (IndexedDB missing, private
 * mode, a full quota) degrades to memory instead of failing the publish.
 * Entries already in the durable outbox are still read and sent first, so
 * the order is kept; `onDegrade` is called once, with the cause.
 */
export class FallbackOutbox implements Outbox {
	readonly #durable: Outbox | undefined;
	readonly #onDegrade: (cause: unknown) => void;
	readonly #memory = new MemoryOutbox();
	#full = false;
	constructor(durable: Outbox | undefined, onDegrade: (cause: unknown) => void) {
		this.#durable = durable;
		this.#onDegrade = onDegrade;
	}
	#degrade(cause: unknown) {
		if (!this.#full) this.#onDegrade(cause);
		this.#full = true;
	}
	async #both<R>(op: (o: Outbox) => Promise<R>, fallback: R): Promise<[R, R]> {
		const d = this.#durable
			? await op(this.#durable).catch((e) => {
					this.#degrade(e);
					return fallback;
				})
			: fallback;
		return [d, await op(this.#memory)];
	}
	async add(entry: OutboxEntry) {
		if (this.#durable && !this.#full)
			try {
				return await this.#durable.add(entry);
			} catch (e) {
				this.#degrade(e);
			}
		await this.#memory.add(entry);
	}
	async peek(limit: number) {
		const [d, m] = await this.#both((o) => o.peek(limit), []);
		return [...d, ...m].slice(0, limit);
	}
	async remove(ids: string[]) {
		await this.#both((o) => o.remove(ids), undefined);
	}
	async size() {
		const [d, m] = await this.#both((o) => o.size(), 0);
		return d + m;
	}
	async clear() {
		await this.#both((o) => o.clear(), undefined);
	}
}
