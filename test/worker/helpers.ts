/** Shared helpers for the suites that run inside workerd. */
import { abortAllDurableObjects, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { expect, vi } from "vitest";

let counter = 0;
/** A topic name no other test in this file uses (storage is shared within a file). */
export function uniqueTopic(prefix = "t"): string {
	counter++;
	return `${prefix}.${Date.now().toString(36)}-${counter}`;
}

export function api(path: string, init?: RequestInit): Promise<Response> {
	return exports.default.fetch(`http://tidings.test${path}`, init);
}

export async function publish(topic: string, body: unknown, headers: Record<string, string> = {}) {
	const res = await api(`/v1/topics/${topic}/messages`, {
		method: "POST",
		headers: { "Content-Type": "application/json", ...headers },
		body: JSON.stringify(body),
	});
	return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string } } };
}

export interface StoredMessage {
	id: string;
	seq: number;
	topic: string;
	data: unknown;
	attributes: Record<string, unknown>;
	ts: number;
	key?: string;
	traceparent?: string;
	baggage?: string;
}

export async function history(topic: string, query = "") {
	const res = await api(`/v1/topics/${topic}/messages${query ? `?${query}` : ""}`);
	expect(res.status).toBe(200);
	return (await res.json()) as { messages: StoredMessage[]; next_after: number; head_seq: number; first_seq: number };
}

export async function stats(topic: string) {
	const res = await api(`/v1/topics/${topic}`);
	expect(res.status).toBe(200);
	return (await res.json()) as {
		head_seq: number;
		first_seq: number;
		retained: number;
		delayed: number;
		subscribers: number;
		settings: { max_messages: number; max_age_ms: number };
	};
}

export function topicStub(topic: string) {
	return exports.Topic.get(exports.Topic.idFromName(topic));
}

// biome-ignore lint/suspicious/noExplicitAny: frames are checked field by field in tests
export type Frame = Record<string, any>;

/** A test WebSocket client: collects frames, waits for conditions with a timeout. */
export class TestSocket {
	readonly frames: Frame[] = [];
	readonly raw: string[] = [];
	closed: { code: number; reason: string } | undefined;

	constructor(readonly ws: WebSocket) {
		ws.addEventListener("message", (e) => {
			const text = typeof e.data === "string" ? e.data : "";
			this.raw.push(text);
			if (text === "pong") return;
			// One WebSocket message may carry several frames, one per line.
			for (const line of text.split("\n")) this.frames.push(JSON.parse(line) as Frame);
		});
		ws.addEventListener("close", (e) => {
			this.closed = { code: e.code, reason: e.reason };
		});
	}

	static async open(topic: string, query = ""): Promise<TestSocket> {
		const res = await api(`/v1/topics/${topic}/ws${query ? `?${query}` : ""}`, { headers: { Upgrade: "websocket" } });
		if (res.status !== 101 || !res.webSocket) {
			throw new Error(`upgrade failed: ${res.status} ${await res.text()}`);
		}
		res.webSocket.accept();
		return new TestSocket(res.webSocket);
	}

	send(frame: unknown): void {
		this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
	}

	messages(): Frame[] {
		return this.frames.filter((f) => f.type === "message").map((f) => f.message);
	}

	async waitFor<T>(check: () => T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
		const deadline = Date.now() + timeoutMs;
		for (;;) {
			const v = check();
			if (v !== undefined && v !== false) return v;
			if (Date.now() > deadline)
				throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.frames).slice(0, 2000)}`);
			await new Promise((r) => setTimeout(r, 5));
		}
	}

	waitForFrame(pred: (f: Frame) => boolean, what: string, timeoutMs?: number): Promise<Frame> {
		return this.waitFor(() => this.frames.find(pred), what, timeoutMs);
	}

	waitForMessages(n: number, timeoutMs?: number): Promise<Frame[]> {
		return this.waitFor(
			() => {
				const m = this.messages();
				return m.length >= n ? m : undefined;
			},
			`${n} messages`,
			timeoutMs,
		);
	}

	close(): void {
		try {
			this.ws.close(1000, "done");
		} catch {
			// already closed
		}
	}
}

/** Resolves once `ws` is closed (at once if it already is). */
export function whenClosed(ws: WebSocket): Promise<void> {
	if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
	return new Promise((resolve) => ws.addEventListener("close", () => resolve(), { once: true }));
}

export function expectConsecutive(seqs: number[], from: number): void {
	expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => from + i));
}

/**
 * Restarts a topic's object as a crash of the runtime would: in-memory state
 * is gone, storage stays, its sockets drop. The other objects of this test
 * file restart with it. (`state.abort()` would restart only this one, but
 * workerd then logs the broken output gate with a native stack trace.)
 */
export async function restartObject(topic: string): Promise<void> {
	const before = await runInDurableObject(topicStub(topic), (instance) => instance);
	await abortAllDurableObjects();
	// Stubs from before the restart are broken; a new one reaches the new instance.
	const after = await runInDurableObject(topicStub(topic), (instance) => instance);
	expect(after === before, "the object restarted").toBe(false);
}

/** Polls `check` until it returns a value (not undefined/false) or the timeout passes. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = 10_000) {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const v = await check();
		if (v !== undefined && v !== false) return v;
		if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
		await new Promise((r) => setTimeout(r, 25));
	}
}

/**
 * Captures the console.error calls whose first argument matches `pattern`: the
 * ones a test provokes on purpose, which would otherwise print their stack
 * traces on a green run. Any other console.error still prints. Call
 * `restore()` when the test ends.
 */
export function captureConsoleErrors(pattern: RegExp) {
	const original = console.error;
	const caught: unknown[][] = [];
	const spy = vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => {
		if (pattern.test(String(args[0]))) caught.push(args);
		else original.apply(console, args);
	});
	return { caught, restore: () => spy.mockRestore() };
}

/** The object's armed alarm time, read from inside it. */
export function alarmOf(topic: string): Promise<number | null> {
	return runInDurableObject(topicStub(topic), (_i, state) => state.storage.getAlarm());
}
