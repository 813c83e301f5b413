/**
 * One polling loop per view: `fn` runs every `ms`, never twice at once.
 * `now()` runs it at once (a change the user made), `soon()` in a moment (a
 * message arrived: once for a burst); asked during a run, the next run comes
 * that much after it. Nothing starts a second loop.
 * @module
 */

export interface Poller {
	/** Runs now, or right after the run in progress. */
	now(): void;
	/** Runs in a moment (once for a burst of calls). */
	soon(ms?: number): void;
	stop(): void;
}

export function poller(fn: () => Promise<void>, ms: number): Poller {
	let timer: ReturnType<typeof setTimeout> | undefined;
	/** When the pending timer fires (Infinity: none). */
	let due = Number.POSITIVE_INFINITY;
	let running = false;
	/** Asked for during a run: the delay of the run after it (0: right away). */
	let next: number | undefined;
	let stopped = false;

	async function run(): Promise<void> {
		clearTimeout(timer);
		due = Number.POSITIVE_INFINITY;
		if (stopped) return;
		if (running) {
			next = 0;
			return;
		}
		running = true;
		try {
			await fn();
		} finally {
			running = false;
		}
		if (stopped) return;
		const delay = next ?? ms;
		next = undefined;
		if (delay === 0) return run();
		schedule(delay);
	}

	function schedule(delay: number): void {
		clearTimeout(timer);
		due = Date.now() + delay;
		timer = setTimeout(run, delay);
	}

	return {
		now: () => void run(),
		soon(delay = 300) {
			if (stopped) return;
			if (running) next = Math.min(next ?? delay, delay);
			// Only ever earlier: a burst of calls does not keep pushing the run back.
			else if (Date.now() + delay < due) schedule(delay);
		},
		stop() {
			stopped = true;
			clearTimeout(timer);
		},
	};
}
