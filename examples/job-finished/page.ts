/**
 * Example: the job-finished pattern, page side (the demo at `/` uses it,
 * bundled to /job-finished.js). The page subscribes to the job's own topic
 * first, from the earliest message, then publishes the job; so no update can
 * be missed, even one sent before the socket was open, and a reload that
 * subscribes again sees the whole story.
 */
import type { Tidings } from "../../src/client/browser.js";
import type { Job, JobUpdate } from "./consumer.js";

export type { Job, JobUpdate };

export interface JobWatch {
	jobId: string;
	/** Resolves with the result when the worker says the job is done. */
	done: Promise<string>;
	/** Stops listening (the job goes on). */
	close(): void;
}

/** Starts a job of `steps` steps and reports its updates to `onUpdate`. */
export function startJob(
	tidings: Tidings,
	{
		steps = 5,
		stepMs = 600,
		jobId = crypto.randomUUID().slice(0, 8),
	}: { steps?: number; stepMs?: number; jobId?: string },
	onUpdate: (update: JobUpdate) => void,
): JobWatch {
	let resolve: (result: string) => void = () => {};
	let reject: (err: Error) => void = () => {};
	const done = new Promise<string>((res, rej) => {
		resolve = res;
		reject = rej;
	});
	const sub = tidings.subscribe<JobUpdate>(
		`jobs.${jobId}`,
		(msg) => {
			onUpdate(msg.data);
			if (msg.data.status === "done") {
				resolve(msg.data.result);
				void sub.close();
			}
		},
		{ from: "earliest" },
	);
	const job: Job = { jobId, steps, stepMs };
	tidings.publish("jobs", job, { key: `job-${jobId}` }).catch((err: Error) => {
		reject(err);
		void sub.close();
	});
	return { jobId, done, close: () => void sub.close() };
}
