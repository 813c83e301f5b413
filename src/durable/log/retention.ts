/**
 * Retention: the log is trimmed to the topic's `max_messages` and
 * `max_age_ms`, and expired publish keys are forgotten, by one timer in the
 * background, in chunks, never on the publish path.
 * @module
 */
import { LIMITS, TUNING } from "../../protocol/limits.js";
import type { TopicSettings } from "../../protocol/message.js";
import type { Scheduler } from "../storage/scheduler.js";
import type { Dedupe } from "./dedupe.js";
import type { TopicLog } from "./topic-log.js";

export const TIMER_RETENTION = "retention";
const KEY = "log";

export class Retention {
	/** Due time of the retention timer, mirrored from the timers table. */
	#due: number | undefined;

	constructor(
		private readonly log: TopicLog,
		private readonly dedupe: Dedupe,
		private readonly scheduler: Scheduler,
		private readonly settings: () => TopicSettings,
		/** Called before log rows up to a seq are deleted, so groups can keep what they still owe. */
		private readonly beforeTrim: (upTo: number) => void,
	) {
		this.reload();
	}

	/** Reads the timer back, after a wake or a rolled-back transaction. */
	reload(): void {
		this.#due = this.scheduler.dueAt(TIMER_RETENTION, KEY);
	}

	/** The settings changed: trim soon. */
	settingsChanged(now: number): void {
		this.#schedule(now + TUNING.retentionDelayMs);
	}

	/**
	 * Makes sure a retention timer covers what was just written: soon when the
	 * log is over its count, else when the oldest message or key expires.
	 * Cheap on the hot path: it writes only when the timer must move sooner.
	 */
	afterAppend(now: number, keyed: boolean): void {
		const { max_messages, max_age_ms } = this.settings();
		if (this.log.retained > max_messages) {
			this.#schedule(now + TUNING.retentionDelayMs);
		} else if (this.#due === undefined) {
			const oldest = this.log.oldestTs();
			const due = Math.min(
				oldest === undefined ? Number.POSITIVE_INFINITY : oldest + max_age_ms,
				keyed ? now + LIMITS.dedupeWindowMs : Number.POSITIVE_INFINITY,
			);
			if (Number.isFinite(due)) this.#schedule(due);
		}
	}

	/** The retention timer: trims the log and forgets expired keys, a chunk at a time. */
	run(now: number): undefined {
		this.#due = undefined;
		const { max_messages, max_age_ms } = this.settings();
		const trimmed = this.log.trim(max_messages, max_age_ms, now, TUNING.retentionChunk, this.beforeTrim);
		const purged = this.dedupe.purge(now, TUNING.retentionChunk);
		if (trimmed.more || purged >= TUNING.retentionChunk) {
			this.#schedule(now + 1);
			return undefined;
		}
		const oldest = this.log.oldestTs();
		const due = Math.min(
			oldest === undefined ? Number.POSITIVE_INFINITY : oldest + max_age_ms,
			this.dedupe.nextExpiry() ?? Number.POSITIVE_INFINITY,
		);
		if (Number.isFinite(due)) this.#schedule(due);
		return undefined;
	}

	#schedule(due: number): void {
		if (this.#due !== undefined && this.#due <= due) return;
		this.scheduler.schedule(TIMER_RETENTION, KEY, due, null, true);
		this.#due = due;
	}
}
