/**
 * The client's events (`tidings.on`), and where the errors of callers' code
 * go: a listener or handler that throws is reported as an `error` event,
 * since there is no caller to throw to. An `error` listener that throws is
 * only logged: reporting it as another `error` would loop.
 * @module
 */
import { TidingsError } from "./errors.js";
import type { TidingsEvents } from "./types.js";

type Listener<K extends keyof TidingsEvents> = (e: TidingsEvents[K]) => void;

export class Emitter {
	#listeners: { [K in keyof TidingsEvents]?: Set<Listener<K>> } = {};

	/** Listens to an event; returns the function that stops listening. */
	on<K extends keyof TidingsEvents>(event: K, fn: Listener<K>): () => void {
		const listeners = this.#listeners as { [E in K]?: Set<Listener<K>> };
		const set = listeners[event] ?? new Set();
		listeners[event] = set;
		set.add(fn);
		return () => set.delete(fn);
	}

	emit<K extends keyof TidingsEvents>(event: K, e: TidingsEvents[K]): void {
		for (const fn of this.#listeners[event] ?? [])
			if (event === "error")
				try {
					fn(e);
				} catch (err) {
					console.error("tidings: an error listener threw", err);
				}
			else this.call(() => fn(e));
	}

	/** Runs a caller's function: what it throws or rejects with becomes an `error` event. */
	call(fn: () => unknown): void {
		try {
			Promise.resolve(fn()).catch(this.fail);
		} catch (e) {
			this.fail(e);
		}
	}

	/** Reports what went wrong with no caller to throw to, as a `TidingsError`. */
	fail = (e: unknown): void =>
		this.emit(
			"error",
			e instanceof TidingsError ? e : new TidingsError("internal", String((e as Error)?.message ?? e)),
		);
}
