/**
 * A topic's reports to the catalog. A change (a publish, a socket, a group)
 * stores one timer `TUNING.catalogReportMs` ahead unless one is already
 * waiting, so a busy topic reports once per period and an idle one not at
 * all; the report goes from the alarm, after the timer's transaction.
 * A report that fails is tried again a period later.
 * @module
 */
import { TUNING } from "../../protocol/limits.js";
import type { TopicSummary } from "../../protocol/message.js";
import type { Scheduler, TimerHandler } from "../storage/scheduler.js";

export const TIMER_CATALOG = "catalog";

export class CatalogReporter {
	/** Whether this instance stored the report timer and it has not run yet (false after a wake: one extra write). */
	#waiting = false;
	#sending: Promise<void> | undefined;

	constructor(
		private readonly scheduler: Scheduler,
		/** The topic's summary now; undefined while the topic does not exist. */
		private readonly summary: () => TopicSummary | undefined,
		private readonly send: (summary: TopicSummary) => Promise<void>,
	) {}

	/** Something the listing shows changed: report it within a period. */
	changed(now = Date.now()): void {
		if (this.#waiting) return;
		this.scheduler.schedule(TIMER_CATALOG, "", now + TUNING.catalogReportMs, null, true);
		this.#waiting = true;
	}

	/** The timer's handler: the summary is read in the timer's transaction and sent after it commits. */
	readonly run: TimerHandler = () => {
		this.#waiting = false;
		const summary = this.summary();
		if (!summary) return undefined;
		return () => {
			this.#sending = this.send(summary).catch(() => this.changed());
		};
	};

	/** Waits for a report in flight, so the alarm that sent it outlives it. */
	async flush(): Promise<void> {
		await this.#sending;
		this.#sending = undefined;
	}

	/** After a rolled-back transaction: the timer may not be stored. */
	forget(): void {
		this.#waiting = false;
	}
}
