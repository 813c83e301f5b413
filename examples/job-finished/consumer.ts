/**
 * Example: the job-finished pattern. A worker process consumes the `jobs`
 * topic as a member of the `runners` group; for each job it publishes
 * progress and then the result to `jobs.<jobId>`, where the page that
 * started the job is subscribed live, and acks the job only after the result
 * is stored. If it dies midway, the job is retried (keys keep the progress
 * messages from doubling).
 *
 * Run against `npm start`:  npx tsx examples/job-finished/consumer.ts
 */
import WebSocket from "ws";

export interface Job {
	jobId: string;
	steps: number;
}

async function publish(base: string, topic: string, data: unknown, key: string): Promise<void> {
	const res = await fetch(`${base}/v1/topics/${topic}/messages`, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ data, key }),
	});
	if (!res.ok) throw new Error(`publish to ${topic} failed: ${res.status} ${await res.text()}`);
}

/** Runs one job: progress after each step, then the result. */
export async function runJob(base: string, job: Job): Promise<void> {
	const topic = `jobs.${job.jobId}`;
	for (let step = 1; step <= job.steps; step++) {
		await new Promise((r) => setTimeout(r, 20)); // the work itself
		await publish(
			base,
			topic,
			{ status: "progress", percent: Math.round((step / job.steps) * 100) },
			`${job.jobId}:${step}`,
		);
	}
	await publish(base, topic, { status: "done", result: `job ${job.jobId} finished` }, `${job.jobId}:done`);
}

/** Consumes `jobs` in group `runners` until `stop()` is called. */
export function startConsumer(base: string, group = "runners"): { ready: Promise<void>; stop: () => void } {
	const ws = new WebSocket(`${base.replace(/^http/, "ws")}/v1/topics/jobs/ws?group=${group}&prefetch=4`);
	let resolveReady: () => void = () => {};
	const ready = new Promise<void>((r) => {
		resolveReady = r;
	});
	ws.on("message", (raw) => {
		for (const line of raw.toString().split("\n")) {
			if (line === "pong") continue;
			const frame = JSON.parse(line) as { type: string; message?: { seq: number; data: Job } };
			if (frame.type === "ready") resolveReady();
			if (frame.type !== "message" || !frame.message) continue;
			const { seq, data } = frame.message;
			runJob(base, data).then(
				() => ws.send(JSON.stringify({ type: "ack", seq })),
				(err: Error) => ws.send(JSON.stringify({ type: "nack", seq, error: err.message })),
			);
		}
	});
	return { ready, stop: () => ws.close(1000) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
	const base = process.env.TIDINGS_URL ?? "http://localhost:8787";
	await fetch(`${base}/v1/topics/jobs/groups/runners`, {
		method: "PUT",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ max_retries: 3 }),
	});
	startConsumer(base);
	console.log(`consuming jobs from ${base}; publish one with:
  curl -X POST ${base}/v1/topics/jobs/messages -H 'Content-Type: application/json' -d '{"data":{"jobId":"42","steps":3}}'
and watch it with:  npx wscat -c '${base.replace(/^http/, "ws")}/v1/topics/jobs.42/ws?from=earliest'`);
}
