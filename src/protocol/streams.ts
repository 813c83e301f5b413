/**
 * The Durable Streams protocol as tidings speaks it at `/v1/stream/:name`:
 * header names, the offset format, cursors, content types, and what the
 * object answers the Worker (`StreamReply`). Shared by worker and durable;
 * imports nothing from either. See docs/streams.md.
 * @module
 */
import type { Message } from "./message.js";

export const H = {
	offset: "Stream-Next-Offset",
	upToDate: "Stream-Up-To-Date",
	cursor: "Stream-Cursor",
	closed: "Stream-Closed",
	ttl: "Stream-TTL",
	expiresAt: "Stream-Expires-At",
	seq: "Stream-Seq",
	sseEncoding: "Stream-SSE-Data-Encoding",
	forkedFrom: "Stream-Forked-From",
	forkOffset: "Stream-Fork-Offset",
	forkSubOffset: "Stream-Fork-Sub-Offset",
	producerId: "Producer-Id",
	producerEpoch: "Producer-Epoch",
	producerSeq: "Producer-Seq",
	producerExpected: "Producer-Expected-Seq",
	producerReceived: "Producer-Received-Seq",
} as const;

/** Headers a browser on another origin may send and read (CORS). */
export const STREAM_REQUEST_HEADERS = [
	"If-None-Match",
	H.ttl,
	H.expiresAt,
	H.seq,
	H.closed,
	H.forkedFrom,
	H.forkOffset,
	H.forkSubOffset,
	H.producerId,
	H.producerEpoch,
	H.producerSeq,
];
export const STREAM_RESPONSE_HEADERS = [
	H.offset,
	H.upToDate,
	H.cursor,
	H.closed,
	H.ttl,
	H.expiresAt,
	H.sseEncoding,
	H.producerEpoch,
	H.producerSeq,
	H.producerExpected,
	H.producerReceived,
	"ETag",
	"Location",
];

// --- Offsets ------------------------------------------------------------------------

/**
 * An offset is the seq of the last message before it, as 16 digits, then
 * `_` and 16 zeros: fixed width, so byte-wise order is log order, and the
 * zero offset (`0000000000000000_0000000000000000`) is the stream's start,
 * as the protocol's clients and conformance suite expect. The second half is
 * reserved (always zero): a message is the smallest unit tidings addresses.
 */
const OFFSET_RE = /^(\d{16})_(\d{16})$/;
const ZERO16 = "0000000000000000";

export function formatOffset(seq: number): string {
	return `${String(seq).padStart(16, "0")}_${ZERO16}`;
}

export type ParsedOffset = { kind: "start" } | { kind: "now" } | { kind: "seq"; seq: number };

/** `-1`, `now`, or an offset this server wrote; anything else is undefined (a 400). */
export function parseOffset(raw: string): ParsedOffset | undefined {
	if (raw === "-1") return { kind: "start" };
	if (raw === "now") return { kind: "now" };
	const m = OFFSET_RE.exec(raw);
	if (!m || m[2] !== ZERO16) return undefined;
	const seq = Number(m[1]);
	return Number.isSafeInteger(seq) ? { kind: "seq", seq } : undefined;
}

// --- Cursors (protocol §8.1) ----------------------------------------------------------

const CURSOR_EPOCH_MS = Date.UTC(2024, 9, 9);
const CURSOR_INTERVAL_MS = 20_000;

/** The current interval number; strictly past the client's cursor when it is not behind, so caches never loop. */
export function nextCursor(now: number, client: string | undefined): string {
	const current = Math.floor((now - CURSOR_EPOCH_MS) / CURSOR_INTERVAL_MS);
	const theirs = client !== undefined && /^\d{1,15}$/.test(client) ? Number(client) : undefined;
	if (theirs === undefined || theirs < current) return String(current);
	// 1–3600 s of jitter, in whole intervals (at least one).
	const jitter = 1 + Math.floor((Math.random() * 3600_000) / CURSOR_INTERVAL_MS);
	return String(theirs + jitter);
}

// --- SSE events (protocol §5.7) ----------------------------------------------------------

/** One `data` event: JSON as its array text, text line by line, anything else base64. */
export function sseDataEvent(body: string | Uint8Array, text: boolean): string {
	if (typeof body === "string") return `event: data\ndata:${body}\n\n`;
	if (text) {
		// Every line break becomes its own `data:` line, so a payload can never end an event early.
		const lines = new TextDecoder().decode(body).split(/\r\n|\r|\n/);
		return `event: data\n${lines.map((l) => `data:${l}`).join("\n")}\n\n`;
	}
	let bin = "";
	for (let i = 0; i < body.length; i += 0x8000) bin += String.fromCharCode(...body.subarray(i, i + 0x8000));
	return `event: data\ndata:${btoa(bin)}\n\n`;
}

/** The `control` event after data: the next offset, and the cursor (none once closed). */
export function sseControlEvent(next: number, closed: boolean, upToDate: boolean, cursor: string): string {
	const control: Record<string, unknown> = { streamNextOffset: formatOffset(next) };
	if (closed) control.streamClosed = true;
	else control.streamCursor = cursor;
	if (upToDate) control.upToDate = true;
	return `event: control\ndata:${JSON.stringify(control)}\n\n`;
}

// --- Content types ---------------------------------------------------------------------

/** The media type without parameters, lower case: `Application/JSON; charset=utf-8` → `application/json`. */
export function mediaType(contentType: string): string {
	return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

export function isJsonType(contentType: string): boolean {
	return mediaType(contentType) === "application/json";
}

/** SSE carries text as it is; every other non-JSON type goes base64-encoded. */
export function isTextType(contentType: string): boolean {
	return mediaType(contentType).startsWith("text/");
}

export const DEFAULT_STREAM_CONTENT_TYPE = "application/octet-stream";

// --- Between the Worker and the object ------------------------------------------------

/** How the object answers a stream operation: the protocol's status and headers, and a body. */
export interface StreamReply {
	status: number;
	headers: Record<string, string>;
	/** JSON streams: the JSON array text; byte streams: the bytes. */
	body?: string | Uint8Array;
	/** Reads: whether the answer reached the tail (and the cursor the stream will need). */
	upToDate?: boolean;
	closed?: boolean;
	/** Reads: the seq after which the next read starts. */
	next?: number;
	/** Reads: the log's head when answered (the waiter compares against it). */
	head?: number;
	json?: boolean;
	text?: boolean;
	/** An ETag for reads, which the Worker compares with If-None-Match. */
	etag?: string;
}

export interface ProducerHeaders {
	id: string;
	epoch: number;
	seq: number;
}

export interface StreamCreate {
	contentType: string;
	ttlS?: number | undefined;
	expiresAt?: number | undefined;
	closed: boolean;
	/** JSON messages (each one JSON text) or bytes of the initial content. */
	messages?: string[] | undefined;
	bytes?: Uint8Array | undefined;
	location: string;
	/** Set when the stream is created as a fork: what the source handed over. */
	fork?: ForkSeed | undefined;
}

export interface StreamAppend {
	/** The request's media type; undefined when it sent none. */
	contentType?: string | undefined;
	messages?: string[] | undefined;
	bytes?: Uint8Array | undefined;
	close: boolean;
	producer?: ProducerHeaders | undefined;
	writerSeq?: string | undefined;
}

/** What a fork's source hands the new stream: its config and the inherited messages' stored text. */
export interface ForkSeed {
	source: string;
	/** The fork's request, for an idempotent re-create. */
	offset: string;
	sub: number;
	contentType: string;
	ttlS?: number | undefined;
	expiresAt?: number | undefined;
	rows: string[];
}

/**
 * Frames a stream waiter socket receives: the log's head moved (from
 * `prev`; with the new messages when they are small), or the stream closed
 * or went away.
 */
export interface WaiterFrame {
	type: "tail";
	head: number;
	prev: number;
	closed?: boolean;
	gone?: boolean;
	messages?: Message[];
	/** An SSE waiter's frame: the events, rendered (sent after the JSON and a newline, not in it). */
	sse?: string;
}

/** The request header that makes an upgrade to the object a stream waiter (its value: the seq the reader has). */
export const WAITER_HEADER = "x-tidings-stream-wait";
export const WAITER_TAG = "stream-wait";
/**
 * A waiter of a stream's SSE reader, which takes its events rendered: after
 * the frame's JSON, a newline and the SSE text (data, then control, at the
 * current cursor) that a reader which had everything up to `prev` writes as
 * it is. Rendered once in the object for every such reader.
 */
export const WAITER_SSE_HEADER = "x-tidings-stream-wait-sse";
export const WAITER_SSE_TAG = "stream-wait-sse";
