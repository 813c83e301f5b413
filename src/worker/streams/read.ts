/**
 * Reads of a stream: catch-up, long-poll and SSE. The object answers one
 * catch-up page at a time (`streamRead`); waiting happens here, in the
 * Worker, on a waiter socket (waiter.ts), so idle readers cost the object
 * nothing.
 * @module
 */

import { concat, fromBase64 } from "../../durable/streams/bytes.js";
import { TUNING } from "../../protocol/limits.js";
import {
	formatOffset,
	H,
	nextCursor,
	type ParsedOffset,
	type StreamReply,
	sseControlEvent,
	sseDataEvent,
} from "../../protocol/streams.js";
import type { Env } from "../env.js";
import { Follow, type Tail } from "./waiter.js";

export interface ReadStub {
	streamRead(offset: ParsedOffset): Promise<StreamReply>;
	fetch(input: string, init?: RequestInit): Promise<Response>;
}

/** Reads whose range can no longer change (not at the tail, or the stream closed) may be cached. */
const CACHEABLE = "private, max-age=60, stale-while-revalidate=300";

function hasData(r: StreamReply): boolean {
	return typeof r.body === "string" ? r.body !== "[]" : (r.body?.length ?? 0) > 0;
}

/** A reply without a body, or an error, as a Response. */
export function replyResponse(r: StreamReply, body: BodyInit | null = null): Response {
	return new Response(body, { status: r.status, headers: r.headers });
}

export function catchUp(r: StreamReply, offset: ParsedOffset, ifNoneMatch: string | null): Response {
	if (r.status !== 200) return errorFor(r);
	const headers = new Headers(r.headers);
	headers.set("Cache-Control", offset.kind === "now" ? "no-store" : r.upToDate && !r.closed ? "no-cache" : CACHEABLE);
	if (r.etag) {
		headers.set("ETag", r.etag);
		if (ifNoneMatch?.split(",").some((t) => t.trim() === r.etag)) {
			return new Response(null, { status: 304, headers });
		}
	}
	return new Response(r.body ?? null, { status: 200, headers });
}

export async function longPoll(
	stubs: () => ReadStub,
	env: Env,
	offset: ParsedOffset,
	cursor: string | undefined,
): Promise<Response> {
	const follow = new Follow(stubs);
	const timeoutMs = Number(env.TIDINGS_STREAM_LONG_POLL_MS) || TUNING.streamLongPollMs;
	const deadline = Date.now() + timeoutMs;
	let r = await follow.ask((s) => s.streamRead(offset));
	try {
		for (;;) {
			if (r.status !== 200) return errorFor(r);
			if (hasData(r) || r.closed) break;
			const after = r.next ?? 0;
			const left = deadline - Date.now();
			if (left <= 0 || !(await follow.wait(after, left))) break;
			r = await follow.ask((s) => s.streamRead({ kind: "seq", seq: after }));
		}
	} finally {
		follow.close();
	}
	const headers = new Headers(r.headers);
	headers.set(H.cursor, nextCursor(Date.now(), cursor));
	if (!hasData(r)) {
		headers.set(H.upToDate, "true");
		headers.delete("Content-Type");
		headers.set("Cache-Control", "no-store");
		return new Response(null, { status: 204, headers });
	}
	headers.set("Cache-Control", CACHEABLE);
	if (r.etag) headers.set("ETag", r.etag);
	return new Response(r.body ?? null, { status: 200, headers });
}

const encoder = new TextEncoder();

function dataEvent(r: StreamReply): string {
	return sseDataEvent(r.body ?? new Uint8Array(0), r.text === true);
}

function controlEvent(r: StreamReply, cursor: string | undefined): string {
	return sseControlEvent(r.next ?? 0, r.closed === true, r.upToDate === true, nextCursor(Date.now(), cursor));
}

export async function sse(
	stubs: () => ReadStub,
	env: Env,
	offset: ParsedOffset,
	cursor: string | undefined,
): Promise<Response> {
	const follow = new Follow(stubs, true);
	const first = await follow.ask((s) => s.streamRead(offset));
	if (first.status !== 200) return errorFor(first);
	const lifetimeMs = Number(env.TIDINGS_STREAM_SSE_MS) || TUNING.streamSseLifetimeMs;
	const headers = new Headers({ "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
	if (!first.json && !first.text) headers.set(H.sseEncoding, "base64");
	// The object renders events at the current cursor; a client whose cursor is ahead (jitter) needs its own.
	const current = Number(nextCursor(Date.now(), undefined));
	const rendered = cursor === undefined || !/^\d{1,15}$/.test(cursor) || Number(cursor) < current;
	const read = (after: number) => follow.ask((s) => s.streamRead({ kind: "seq", seq: after }));
	return sseResponse(headers, async (write, gone) => {
		const deadline = Date.now() + lifetimeMs;
		let r: StreamReply | undefined = first;
		let announced = false;
		let after = 0;
		try {
			for (;;) {
				if (r) {
					if (r.status !== 200) break;
					const data = hasData(r);
					// One write for the pair: a reader that stops at the first event boundary after "control"
					// (which a payload may contain) still gets the control event that belongs to the data.
					if (data || !announced || r.closed) {
						await write((data ? dataEvent(r) : "") + controlEvent(r, cursor));
					}
					announced = true;
					if (r.closed) break;
					after = r.next ?? 0;
					if (!r.upToDate) {
						r = await read(after);
						continue;
					}
				}
				const left = deadline - Date.now();
				if (left <= 0 || !(await follow.wait(after, left, gone))) break;
				const tail = follow.take(after);
				// Caught up, and the frames chain on: write the events the object rendered once for all readers.
				if (tail?.sse !== undefined && rendered) {
					await write(tail.sse);
					after = tail.head;
					if (tail.closed) break;
					r = undefined;
					continue;
				}
				r = tail && tail.sse === undefined ? fromTail(first, tail, after) : await read(after);
			}
		} finally {
			follow.close();
		}
	});
}

/** A read answered from what the waiter frames carried, as the object would have answered it. */
function fromTail(first: StreamReply, tail: Tail, after: number): StreamReply {
	const next = tail.messages.at(-1)?.seq ?? after;
	const body = first.json
		? `[${tail.messages.map((m) => JSON.stringify(m.data)).join(",")}]`
		: concat(tail.messages.map((m) => fromBase64(m.data as string)));
	const upToDate = next >= tail.head;
	return {
		status: 200,
		headers: { [H.offset]: formatOffset(next) },
		body,
		upToDate,
		closed: upToDate && tail.closed,
		next,
		head: tail.head,
		json: first.json,
		text: first.text,
	};
}

/**
 * A streaming response fed by `pump`; `gone` settles when the reader went
 * away, so a pump waiting for data stops at once rather than at the end of
 * its lifetime. Errors end the response: the client reconnects from its
 * last offset.
 */
export function sseResponse(
	headers: Headers,
	pump: (write: (text: string) => Promise<void>, gone: Promise<unknown>) => Promise<void>,
): Response {
	const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
	const writer = writable.getWriter();
	const gone = writer.closed.then(
		() => true,
		() => true,
	);
	const write = (text: string) => writer.write(encoder.encode(text));
	void pump(write, gone)
		.catch(() => {})
		.finally(() => writer.close().catch(() => {}));
	return new Response(readable, { status: 200, headers });
}

const MESSAGES: Record<number, [string, string]> = {
	400: ["invalid_request", "the request is not valid for this stream (offset, headers or body); see docs/streams.md"],
	403: ["forbidden", "refused: stale producer epoch"],
	404: ["not_found", "no such stream; create it with PUT"],
	409: ["conflict", "the request conflicts with the stream's state or configuration"],
	410: ["gone", "the stream was deleted (its forks still read it), or the offset was trimmed by retention"],
	413: ["payload_too_large", "the request is over a stream limit; see docs/streams.md"],
};

/** A refusal: the protocol's status and headers, with a body in the error contract. */
export function errorFor(r: StreamReply, message?: string): Response {
	const [code, text] = MESSAGES[r.status] ?? ["invalid_request", "refused"];
	if (r.status < 400) return replyResponse(r);
	// The object already wrote the error (a schema_mismatch naming the message): pass it on.
	if (typeof r.body === "string" && r.headers["Content-Type"] === "application/json") return replyResponse(r, r.body);
	return Response.json(
		{ error: { code, message: message ?? text } },
		{ status: r.status, headers: { ...r.headers, "Content-Type": "application/json" } },
	);
}
