/**
 * The outbox drainer: sends what is in the outbox, oldest first, and removes
 * an entry only after the server's `2xx`. One drainer at a time sends an
 * outbox: across tabs by the Web Locks lock `tidings:<name>`, elsewhere by
 * an in-process chain per outbox object. A retryable failure waits out a
 * backoff and sends the same entries again, so nothing behind them overtakes
 * them; the network coming back cuts the wait short. Consecutive entries for
 * one topic go as one batch; a batch refused for good is sent again one
 * entry at a time, so that only the entry at fault is dropped.
 * @module
 */
import type { PublishResult } from "../protocol/message.js";
import type { Connection } from "./connection.js";
import { BATCH, DEFAULTS } from "./defaults.js";
import { TidingsError } from "./errors.js";
import type { Emitter } from "./events.js";
import type { Http } from "./http.js";
import type { Outbox, OutboxEntry } from "./outbox.js";
import type { Pending } from "./pending.js";
import { browser, g } from "./platform.js";
import type { TidingsOptions } from "./types.js";

/** The in-process stand-in for Web Locks: the last flush queued per outbox object (or per client, without a shared one). */
const chains = new WeakMap<object, Promise<void>>();

/**
 * - `idle`: no flush is running;
 * - `asked`: a flush is running or waiting for the lock, and must make one more pass;
 * - `passing`: a flush is making what is, so far, its last pass;
 * - `stopped`: the client closed; a flush sends nothing more.
 */
type FlushState = "idle" | "asked" | "passing" | "stopped";

export interface DrainerParts {
	box: Outbox;
	options: TidingsOptions;
	http: Http;
	connection: Pick<Connection, "found" | "lost" | "backoff">;
	pending: Pending;
	events: Emitter;
}

export class Drainer {
	readonly #parts: DrainerParts;
	#state: FlushState = "idle";
	/** Entries still to send one at a time, to find the one for which a batch was refused. */
	#oneByOne = 0;
	#flushing?: Promise<void>;
	/** The drain running under the lock, if any. */
	#draining?: Promise<void>;
	#resume?: () => void;

	constructor(parts: DrainerParts) {
		this.#parts = parts;
	}

	/** Sends what is in the outbox; resolves when it is empty or the client closed. */
	flush(): Promise<void> {
		if (this.#state !== "stopped") this.#state = "asked";
		this.#flushing ??= this.#lock(async () => {
			while (this.#state === "asked") {
				this.#state = "passing";
				// Never a rejection nobody handles: flushes start from the constructor and from publish.
				this.#draining = this.#drain().catch(this.#parts.events.fail);
				await this.#draining;
				this.#draining = undefined;
			}
		}).finally(() => {
			this.#flushing = undefined;
			if (this.#state === "asked") this.flush();
			else if (this.#state === "passing") this.#state = "idle";
		});
		return this.#flushing;
	}

	/** The network may be back: retry now instead of at the end of the backoff. */
	resume() {
		this.#resume?.();
	}

	/**
	 * Sends nothing more. Resolves once the send in flight, if any, settled
	 * (so that the tabs or clients waiting on it hear of it), or after the
	 * request timeout.
	 */
	async stop(): Promise<void> {
		this.#state = "stopped";
		this.#resume?.();
		let timer: ReturnType<typeof setTimeout> | undefined;
		await Promise.race([
			this.#draining,
			new Promise((resolve) => {
				timer = setTimeout(resolve, this.#parts.http.timeoutMs);
			}),
		]);
		clearTimeout(timer);
	}

	#lock(fn: () => Promise<void>): Promise<void> {
		// Web Locks refuse opaque origins (sandboxed frames): then tabs cannot be coordinated, but this page still sends.
		if (browser && g.navigator?.locks)
			return g.navigator.locks
				.request(`tidings:${this.#parts.options.name ?? DEFAULTS.name}`, fn)
				.catch(() => this.#chain(fn));
		return this.#chain(fn);
	}

	#chain(fn: () => Promise<void>): Promise<void> {
		const key = this.#parts.options.outbox ?? this;
		const next = (chains.get(key) ?? Promise.resolve()).then(fn);
		chains.set(
			key,
			next.catch(() => {}),
		);
		return next;
	}

	async #drain() {
		const { box, http, connection, pending, events } = this.#parts;
		let failures = 0;
		while (this.#state !== "stopped") {
			const batch = nextBatch(await box.peek(BATCH.maxMessages), this.#oneByOne > 0);
			const first = batch[0];
			if (!first) return;
			try {
				const res = await http.request("POST", `/v1/topics/${encodeURIComponent(first.topic)}/messages`, {
					messages: batch.map((e) => e.message),
				});
				const { messages } = (await res.json().catch((e: unknown) => {
					// Stored, most likely, but unconfirmed: resending with the same keys is safe.
					throw new TidingsError("network", `reading the answer failed: ${(e as Error)?.message ?? e}`);
				})) as { messages: PublishResult[] };
				await box.remove(batch.map((e) => e.id));
				if (this.#oneByOne) this.#oneByOne--;
				failures = 0;
				connection.found();
				for (const [i, entry] of batch.entries()) pending.settle({ id: entry.id, entry, result: messages[i] }, true);
			} catch (e) {
				const error = e as TidingsError;
				if (error.retryable) {
					if (error.code === "network") {
						pending.settle({ offline: true }, true);
						connection.lost();
					} else if (error.code === "unauthorized") events.emit("error", error);
					await this.#backoff(connection.backoff(failures++));
				} else if (batch.length > 1) this.#oneByOne = batch.length;
				else {
					if (this.#oneByOne) this.#oneByOne--;
					await box.remove([first.id]);
					pending.settle({ id: first.id, entry: first, error: [error.code, error.message, error.status] }, true);
				}
			}
		}
	}

	/** Waits `ms`, or less if `resume()` is called. */
	#backoff(ms: number) {
		return new Promise<void>((resolve) => {
			const timer = setTimeout(resolve, ms);
			this.#resume = () => {
				clearTimeout(timer);
				resolve();
			};
		});
	}
}

/** The oldest entry and those right after it for the same topic, within the batch bounds (one, if `alone`). */
function nextBatch(head: OutboxEntry[], alone: boolean): OutboxEntry[] {
	const topic = head[0]?.topic;
	let bytes = 0;
	const batch: OutboxEntry[] = [];
	for (const e of head) {
		bytes += JSON.stringify(e.message).length * 3;
		if (e.topic !== topic || (batch.length && (bytes > BATCH.maxBytes || alone))) break;
		batch.push(e);
	}
	return batch;
}
