/**
 * The console's polling loop (src/console/poller.ts): one loop however it is
 * poked, never two runs at once, and a burst of `soon()` runs it once, soon.
 */
import { afterEach, expect, it, vi } from "vitest";
import { poller } from "../../src/console/poller.js";

afterEach(() => {
	vi.useRealTimers();
});

/** A poll that takes `ms` and counts its runs and how many overlapped. */
function slowPoll(ms: number) {
	const stats = { runs: 0, active: 0, maxActive: 0 };
	const fn = async () => {
		stats.runs++;
		stats.active++;
		stats.maxActive = Math.max(stats.maxActive, stats.active);
		await new Promise((r) => setTimeout(r, ms));
		stats.active--;
	};
	return { fn, stats };
}

it("runs every `ms`, and pokes during a run neither overlap it nor start a second loop", async () => {
	vi.useFakeTimers();
	const { fn, stats } = slowPoll(100);
	const loop = poller(fn, 1000);
	loop.now();
	loop.now(); // during the first run: one more right after it
	loop.soon();
	await vi.advanceTimersByTimeAsync(250);
	expect(stats).toMatchObject({ runs: 2, maxActive: 1 });
	await vi.advanceTimersByTimeAsync(10_000);
	// One loop: a run every 1000 ms plus its 100 ms, not two interleaved loops.
	expect(stats.runs).toBeGreaterThanOrEqual(10);
	expect(stats.runs).toBeLessThanOrEqual(11);
	expect(stats.maxActive).toBe(1);
	loop.stop();
	const runs = stats.runs;
	await vi.advanceTimersByTimeAsync(5000);
	expect(stats.runs).toBe(runs);
});

it("a steady stream of soon() runs it every ~300 ms, not never and not back to back", async () => {
	vi.useFakeTimers();
	const { fn, stats } = slowPoll(10);
	const loop = poller(fn, 3000);
	loop.now();
	for (let t = 0; t < 3000; t += 50) {
		loop.soon(300);
		await vi.advanceTimersByTimeAsync(50);
	}
	expect(stats.runs).toBeGreaterThanOrEqual(8);
	expect(stats.runs).toBeLessThanOrEqual(12);
	loop.stop();
});
