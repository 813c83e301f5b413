/**
 * Example: the job-finished pattern, worker side. A process consumes the
 * `jobs` topic as a member of the `runners` group, with the client library
 * (it reconnects and re-joins by itself); for each job it publishes progress
 * and then the result to `jobs.<jobId>`, where the page that started the job
 * is subscribed live (page.ts), and the job is acked only when the handler
 * resolves, after the result is stored. If the process dies midway, the job
 * is delivered again (the keys keep progress messages from doubling).
 *
 * The group is created at `earliest`, so jobs published before this worker
 * first ran are processed too. `npm start` runs it beside the Worker; alone:
 *   TIDINGS_URL=http://localhost:8787 npx tsx examples/job-finished/consumer.ts
 */
import { Tidings, TidingsAdmin } from "../../src/client/node.js";

export interface Job {
	jobId: string;
	steps: number;
	/** How long each step takes (the work itself); the demo page asks for a visible pace. */
	stepMs?: number;
}

/** What a job's topic carries: progress after each step, then the result. */
export type JobUpdate =
	| { status: "progress"; step: number; steps: number; percent: number }
	| { status: "done"; result: string };

export const JOBS_TOPIC = "jobs";
export const jobTopic = (jobId: string) => `jobs.${jobId}`;

/** Runs one job: progress after each step, then the result, each stored before the next. */
export async function runJob(tidings: Tidings, job: Job): Promise<void> {
	const topic = jobTopic(job.jobId);
	const steps = Math.max(1, Math.min(100, Math.floor(job.steps)));
	for (let step = 1; step <= steps; step++) {
		await new Promise((r) => setTimeout(r, Math.min(job.stepMs ?? 20, 5000))); // the work itself
		const update: JobUpdate = { status: "progress", step, steps, percent: Math.round((step / steps) * 100) };
		await tidings.publish(topic, update, { key: `${job.jobId}:${step}`, wait: true });
	}
	const done: JobUpdate = { status: "done", result: `job ${job.jobId} finished` };
	await tidings.publish(topic, done, { key: `${job.jobId}:done`, wait: true });
}

/**
 * Creates the group (at `earliest`; a no-op when it exists) and consumes
 * `jobs` in it until `stop()`. `ready` resolves once the worker has joined.
 */
export async function startConsumer(
	url: string,
	{ group = "runners", token }: { group?: string; token?: string } = {},
): Promise<{ ready: Promise<void>; stop: () => Promise<void> }> {
	await new TidingsAdmin({ url, token }).putGroup(JOBS_TOPIC, group, { start: "earliest", max_retries: 3 });
	const tidings = new Tidings({ url, token });
	tidings.on("error", (e) => console.error(`job-finished worker: ${e.code}: ${e.message}`));
	const worker = tidings.consume<Job>(JOBS_TOPIC, (msg) => runJob(tidings, msg.data), { group, concurrency: 4 });
	const ready = new Promise<void>((resolve) => {
		const check = setInterval(() => {
			if (worker.state === "open") {
				clearInterval(check);
				resolve();
			}
		}, 25);
	});
	return {
		ready,
		async stop() {
			await worker.stop();
			await tidings.close();
		},
	};
}

if (import.meta.url === `file://${process.argv[1]}`) {
	const url = process.env.TIDINGS_URL ?? "http://localhost:8787";
	const token = process.env.TIDINGS_KEY;
	// The Worker may still be starting (npm start runs both at once): try again until it answers.
	let consumer: Awaited<ReturnType<typeof startConsumer>> | undefined;
	for (let tries = 0; !consumer; tries++) {
		try {
			consumer = await startConsumer(url, { token });
		} catch (err) {
			if (tries === 120) throw err;
			await new Promise((r) => setTimeout(r, 500));
		}
	}
	await consumer.ready;
	console.log(`job-finished worker: consuming "${JOBS_TOPIC}" in group "runners" at ${url}`);
	for (const sig of ["SIGINT", "SIGTERM"] as const)
		process.on(sig, () => void consumer?.stop().then(() => process.exit(0)));
}
