/**
 * HTTP load on keep-alive connections with node:http, which costs the shared
 * CPU less per request than fetch.
 * @module
 */
import http from "node:http";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { Histogram } from "./stats.js";

export interface Reply {
	status: number;
	body: string;
}

export class HttpClient {
	readonly #agent: http.Agent;
	readonly #url: URL;

	constructor(base: string, maxSockets: number) {
		this.#url = new URL(base);
		this.#agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
	}

	request(method: "GET" | "POST" | "PUT", path: string, body?: string, timeoutMs = 10_000): Promise<Reply> {
		return new Promise((resolve, reject) => {
			const req = http.request(
				{
					agent: this.#agent,
					host: this.#url.hostname,
					port: this.#url.port,
					method,
					path,
					headers:
						body === undefined ? {} : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
				},
				(res) => {
					const chunks: Buffer[] = [];
					res.on("data", (c: Buffer) => chunks.push(c));
					res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
					res.on("error", reject);
				},
			);
			req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)));
			req.on("error", reject);
			req.end(body);
		});
	}

	post(path: string, body: string): Promise<Reply> {
		return this.request("POST", path, body);
	}

	close(): void {
		this.#agent.destroy();
	}
}

/** Answers other than the expected one, by status, with the first body of each kind. */
export class Outcomes {
	ok = 0;
	readonly failures: Record<string, { count: number; sample: string }> = {};

	add(reply: Reply | Error, okStatus: number): boolean {
		if (!(reply instanceof Error) && reply.status === okStatus) {
			this.ok++;
			return true;
		}
		const key = reply instanceof Error ? "network" : String(reply.status);
		const sample = reply instanceof Error ? reply.message : reply.body.slice(0, 200);
		const f = this.failures[key];
		if (f) f.count++;
		else this.failures[key] = { count: 1, sample };
		return false;
	}

	get failed(): number {
		return Object.values(this.failures).reduce((n, f) => n + f.count, 0);
	}
}

export interface ClosedLoop {
	concurrency: number;
	warmupMs: number;
	durationMs: number;
	/** The i-th request's body. */
	body: (i: number) => string;
	/** Records each measured request's round trip, in ms (one subtraction and a bucket increment: cheap). */
	latency?: Histogram;
}

export interface Throughput {
	requestsPerSecond: number;
	/** Successful requests that completed inside the measured window. */
	measured: number;
	outcomes: Outcomes;
	/**
	 * With `latency`: how long each request still unanswered when the window
	 * closed had waited by then, in ms (a lower bound on its latency; a server
	 * that answers nothing shows up here, not as an empty histogram).
	 */
	unansweredAtEnd: number[];
}

/**
 * `concurrency` lanes each keep one request in flight; only answers that
 * arrive after the warmup and before the end count.
 */
export async function closedLoop(client: HttpClient, path: string, opts: ClosedLoop): Promise<Throughput> {
	const start = performance.now() + opts.warmupMs;
	const end = start + opts.durationMs;
	const outcomes = new Outcomes();
	const inFlight = new Map<number, number>();
	const unansweredAtEnd: number[] = [];
	const snapshot = opts.latency
		? setTimeout(() => {
				for (const sent of inFlight.values()) unansweredAtEnd.push(end - sent);
			}, end - performance.now())
		: undefined;
	let measured = 0;
	let i = 0;
	const lane = async (n: number) => {
		while (performance.now() < end) {
			const sent = performance.now();
			inFlight.set(n, sent);
			const reply = await client.post(path, opts.body(i++)).catch((e: Error) => e);
			inFlight.delete(n);
			const at = performance.now();
			if (outcomes.add(reply, 201) && at >= start && at <= end) {
				measured++;
				opts.latency?.record(at - sent);
			}
		}
	};
	await Promise.all(Array.from({ length: opts.concurrency }, (_, n) => lane(n)));
	clearTimeout(snapshot);
	return { requestsPerSecond: measured / (opts.durationMs / 1000), measured, outcomes, unansweredAtEnd };
}

export interface FixedRate {
	ratePerSecond: number;
	durationMs: number;
	/** Sends are skipped, and counted, rather than queued past this many in flight. */
	maxInFlight: number;
	/** The body, given the send time (performance.now()). */
	body: (sentAt: number) => string;
}

export interface RateResult {
	sent: number;
	skipped: number;
	outcomes: Outcomes;
	achievedPerSecond: number;
}

/**
 * Open loop: sends follow the clock, not the answers, so a slow server shows
 * up as latency (and skipped sends) instead of quietly lowering the rate.
 */
export async function fixedRate(client: HttpClient, path: string, opts: FixedRate): Promise<RateResult> {
	const total = Math.round((opts.ratePerSecond * opts.durationMs) / 1000);
	const outcomes = new Outcomes();
	const pending = new Set<Promise<void>>();
	let sent = 0;
	let skipped = 0;
	let next = 0;
	const t0 = performance.now();
	while (next < total) {
		const due = Math.min(total, Math.floor(((performance.now() - t0) * opts.ratePerSecond) / 1000) + 1);
		for (; next < due; next++) {
			if (pending.size >= opts.maxInFlight) {
				skipped++;
				continue;
			}
			sent++;
			const p: Promise<void> = client
				.post(path, opts.body(performance.now()))
				.catch((e: Error) => e)
				.then((r) => {
					outcomes.add(r, 201);
					pending.delete(p);
				});
			pending.add(p);
		}
		// Timers fire at ~1 ms granularity; each tick sends everything that fell due.
		await sleep(1);
	}
	const elapsed = performance.now() - t0;
	await Promise.all(pending);
	return { sent, skipped, outcomes, achievedPerSecond: (sent / elapsed) * 1000 };
}
