/** Shared helpers for the suites that run inside workerd. */
import { abortAllDurableObjects, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { expect, vi } from "vitest";
import { app } from "../../src/worker/app.js";
import { eventually } from "../shared/eventually.js";

export { eventually };

let counter = 0;
/** A topic name no other test in this file uses (storage is shared within a file). */
export function uniqueTopic(prefix = "t"): string {
	counter++;
	return `${prefix}.${Date.now().toString(36)}-${counter}`;
}

export function api(path: string, init?: RequestInit): Promise<Response> {
	return exports.default.fetch(`http://tidings.test${path}`, init);
}

export type Json = Record<string, unknown>;

/** Who sends a request, and to which Worker. */
export interface As {
	/** An admin key or a token, sent as `Authorization: Bearer` (or as the socket's `?token=` or subprotocol). */
	token?: string | undefined;
	/**
	 * The Worker's env. Given, the request goes to the Hono app with it: a
	 * production-like configuration (keys, no anonymous access). Else it goes
	 * to the Worker as the workerd project configures it (anonymous access on).
	 */
	env?: object;
	headers?: Record<string, string>;
}

function request(method: string, path: string, body: unknown, as: As, headers: Record<string, string> = {}) {
	const init: RequestInit = { method, headers: { ...headers, ...as.headers } };
	if (as.token) (init.headers as Record<string, string>).Authorization = `Bearer ${as.token}`;
	if (body !== undefined) {
		(init.headers as Record<string, string>)["Content-Type"] = "application/json";
		init.body = JSON.stringify(body);
	}
	return as.env ? app.fetch(new Request(`http://tidings.test${path}`, init), as.env) : api(path, init);
}

/**
 * A request with `body` as JSON. Answers the status, the headers and the body,
 * read in full: as `text`, and parsed as `body` (`{}` when empty). An answer
 * that is not JSON fails the test.
 */
export async function call(method: string, path: string, body?: unknown, as: As = {}) {
	const res = await request(method, path, body, as);
	const text = await res.text();
	let json: Json = {};
	try {
		if (text) json = JSON.parse(text) as Json;
	} catch {
		throw new Error(`${method} ${path} answered ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
	}
	return { status: res.status, headers: res.headers, text, body: json };
}

/**
 * The upgrade request for a topic's socket, its token (if any) in the
 * `Authorization` header, in `?token=`, or in the `bearer.` subprotocol.
 */
export function upgrade(topic: string, query = "", as: As & { via?: "header" | "query" | "subprotocol" } = {}) {
	const { token, via = "header" } = as;
	// The query as given, byte for byte (tests send odd ones on purpose); a token is a URL-safe string.
	const qs = [query, token && via === "query" ? `token=${token}` : ""].filter(Boolean).join("&");
	const headers: Record<string, string> = { Upgrade: "websocket" };
	if (token && via === "subprotocol") headers["Sec-WebSocket-Protocol"] = `tidings, bearer.${token}`;
	const path = `/v1/topics/${topic}/ws${qs ? `?${qs}` : ""}`;
	return request("GET", path, undefined, { ...as, token: via === "header" ? token : undefined }, headers);
}

export async function publish(topic: string, body: unknown, headers: Record<string, string> = {}) {
	const res = await call("POST", `/v1/topics/${topic}/messages`, body, { headers });
	return { status: res.status, body: res.body as Json & { error?: { code: string } } };
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

/**
 * A topic's stats. A topic never written answers 404, read here as what it
 * holds: nothing (`exists: false`, head 0), so "nothing was stored" checks
 * read the same before and after the topic's first write.
 */
export async function stats(topic: string) {
	const res = await api(`/v1/topics/${topic}`);
	if (res.status === 404) {
		const body = (await res.json()) as { error: { code: string } };
		expect(body.error.code).toBe("not_found");
		return { exists: false, head_seq: 0, first_seq: 1, retained: 0, delayed: 0, subscribers: 0 } as Awaited<
			ReturnType<typeof existingStats>
		> & { exists: boolean };
	}
	return { exists: true, ...(await existingStats(res)) };
}

async function existingStats(res: Response) {
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

	/** Opens a topic's socket (see `upgrade` for `as`); throws unless it is upgraded. */
	static async open(topic: string, query = "", as: Parameters<typeof upgrade>[2] = {}): Promise<TestSocket> {
		return TestSocket.accept(await upgrade(topic, query, as));
	}

	/** Accepts the socket of an upgrade answer; throws unless it is one. */
	static async accept(res: Response): Promise<TestSocket> {
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

	waitFor<T>(check: () => T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
		return eventually(check, () => `${what}; got ${JSON.stringify(this.frames).slice(0, 2000)}`, timeoutMs, 5);
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

export const groupPath = (topic: string, group: string, rest = "") => `/v1/topics/${topic}/groups/${group}${rest}`;

/** Creates a consumer group; fails the test unless it is new (201). */
export async function createGroup(topic: string, group: string, settings: Json = {}) {
	const res = await call("PUT", groupPath(topic, group), settings);
	expect(res.status, JSON.stringify(res.body)).toBe(201);
	return res.body;
}

/** Pulls until a pull leases something (a lease ran out, a retry came due), then answers its messages. */
export function pulledEventually(topic: string, group: string, body: Json, what: string, timeoutMs: number) {
	return eventually(
		async () => {
			const r = (await call("POST", groupPath(topic, group, "/pull"), body)).body.messages as Json[];
			return r.length > 0 ? r : undefined;
		},
		what,
		timeoutMs,
	);
}
