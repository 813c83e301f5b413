/**
 * One alarm for every timer of a topic. Timers are rows in `timers`
 * (kind, key, due_at, payload); the object's single alarm is kept at the
 * earliest due time. Each module registers the handlers of its own kinds
 * (delayed messages, retention, lease sweeps, retries, dead-letter forwards).
 *
 * Alarms are at-least-once, so a timer is deleted in the same transaction
 * as its handler's writes: a second run finds nothing to do. A handler that
 * throws rolls back, and its timer alone is pushed back with a growing delay,
 * so one bad timer never blocks the others.
 * @module
 */
import { TUNING } from "../../protocol/limits.js";
import type { Transaction } from "./transaction.js";

export type Timer = {
	kind: string;
	key: string;
	due_at: number;
	payload: string | null;
	attempts: number;
};

/** Runs inside the timer's transaction; may return work to do after commit (sends). */
export type TimerHandler = (timer: Timer, now: number) => (() => void) | undefined;

export class Scheduler {
	/** The alarm time last set by this instance; undefined after a wake. */
	#alarmAt: number | undefined;
	#setting: Promise<void> = Promise.resolve();

	/** Handlers by timer kind; each module registers its own with `handle`. */
	readonly #handlers: Record<string, TimerHandler> = {};

	constructor(
		private readonly storage: DurableObjectStorage,
		/** The object's transaction: a handler that throws rolls back, and the mirrors in memory reload. */
		private readonly transaction: Transaction,
	) {}

	/** Registers the handlers of some timer kinds. */
	handle(handlers: Record<string, TimerHandler>): void {
		Object.assign(this.#handlers, handlers);
	}

	/** A rolled-back transaction may have undone a `setAlarm`: learn it again on the next schedule. */
	forgetAlarm(): void {
		this.#alarmAt = undefined;
	}

	/**
	 * Call once after construction (inside blockConcurrencyWhile): learns the
	 * armed time, and re-arms if timers exist without an alarm.
	 */
	async restore(): Promise<void> {
		const next = this.nextDue();
		if (next === undefined) return;
		const armed = await this.storage.getAlarm();
		if (armed === null || armed > next) this.#setAlarm(next);
		else this.#alarmAt = armed;
	}

	private get sql(): SqlStorage {
		return this.storage.sql;
	}

	/** Creates or moves a timer. With `earliest`, an existing timer is only moved sooner. */
	schedule(kind: string, key: string, dueAt: number, payload: string | null = null, earliest = false): void {
		this.sql.exec(
			`INSERT INTO timers (kind, key, due_at, payload) VALUES (?, ?, ?, ?)
			 ON CONFLICT (kind, key) DO UPDATE SET
			   due_at = ${earliest ? "MIN(due_at, excluded.due_at)" : "excluded.due_at"},
			   payload = excluded.payload, attempts = 0`,
			kind,
			key,
			dueAt,
			payload,
		);
		if (this.#alarmAt === undefined || dueAt < this.#alarmAt) this.#setAlarm(dueAt);
	}

	cancel(kind: string, key: string): void {
		this.sql.exec("DELETE FROM timers WHERE kind = ? AND key = ?", kind, key);
	}

	dueAt(kind: string, key: string): number | undefined {
		return this.sql
			.exec<{ due_at: number }>("SELECT due_at FROM timers WHERE kind = ? AND key = ?", kind, key)
			.toArray()[0]?.due_at;
	}

	count(kind: string): number {
		return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM timers WHERE kind = ?", kind).one().n;
	}

	nextDue(): number | undefined {
		const row = this.sql.exec<{ t: number | null }>("SELECT MIN(due_at) AS t FROM timers").one();
		return row.t ?? undefined;
	}

	/** Re-arms the alarm from the table: call after a wake or after running timers. */
	arm(): void {
		const next = this.nextDue();
		if (next !== undefined) this.#setAlarm(next);
	}

	/**
	 * Runs every due timer, each in its own transaction, then re-arms.
	 * Returns how many ran.
	 */
	runDue(now = Date.now()): number {
		this.#alarmAt = undefined;
		// Payloads (a delayed message: up to 128 KiB) are read one timer at a
		// time, so a burst of due timers never needs them all in memory.
		const due = this.sql
			.exec<Omit<Timer, "payload">>(
				"SELECT kind, key, due_at, attempts FROM timers WHERE due_at <= ? ORDER BY due_at, rowid LIMIT ?",
				now,
				TUNING.timersPerAlarm,
			)
			.toArray();
		const after: Array<() => void> = [];
		for (const head of due) {
			const handler = this.#handlers[head.kind];
			const timer = head as Timer;
			try {
				const effect = this.transaction(() => {
					timer.payload =
						this.sql
							.exec<{ payload: string | null }>(
								"SELECT payload FROM timers WHERE kind = ? AND key = ?",
								head.kind,
								head.key,
							)
							.toArray()[0]?.payload ?? null;
					// Delete first: a handler may schedule the same (kind, key) again.
					this.cancel(timer.kind, timer.key);
					return handler ? handler(timer, now) : undefined;
				});
				if (effect) after.push(effect);
			} catch (err) {
				const delay = Math.min(TUNING.timerRetryBaseMs * 2 ** timer.attempts, TUNING.timerRetryMaxMs);
				console.error(`tidings: timer ${timer.kind}/${timer.key} failed (attempt ${timer.attempts + 1})`, err);
				this.sql.exec(
					"UPDATE timers SET due_at = ?, attempts = attempts + 1 WHERE kind = ? AND key = ?",
					now + delay,
					timer.kind,
					timer.key,
				);
			}
		}
		try {
			for (const effect of after) {
				// One failing effect (a send, a dispatch) must not keep the others from running.
				try {
					effect();
				} catch (err) {
					console.error("tidings: a timer's follow-up failed", err);
				}
			}
		} finally {
			this.arm();
		}
		return due.length;
	}

	/** Resolves once the last alarm this instance set is stored: `alarm()` waits for it before it returns. */
	settled(): Promise<void> {
		return this.#setting;
	}

	#setAlarm(at: number): void {
		// An alarm set to "now" from inside alarm() is dropped locally; keep it in the future.
		const when = Math.max(at, Date.now() + 1);
		this.#alarmAt = when;
		this.#setting = this.storage.setAlarm(when).catch((err: unknown) => console.error("tidings: setAlarm failed", err));
	}
}
