/**
 * Parsing of Durable Streams request headers and bodies. Each parser answers
 * a value or a `Bad` (the protocol's status and why); nothing here touches
 * storage, so bad input never reaches the object.
 * @module
 */
import { LIMITS } from "../../protocol/limits.js";
import { H, isJsonType, type ProducerHeaders } from "../../protocol/streams.js";

export interface Bad {
	bad: number;
	message: string;
}

export function isBad(x: unknown): x is Bad {
	return typeof x === "object" && x !== null && "bad" in x;
}

const bad = (status: number, message: string): Bad => ({ bad: status, message });

/** Non-negative decimal integers without leading zeros, signs, points or exponents (the protocol's rule). */
const UINT_RE = /^(0|[1-9]\d*)$/;

export function parseUint(raw: string, name: string): number | Bad {
	if (!UINT_RE.test(raw)) return bad(400, `${name} must be a non-negative integer without leading zeros`);
	const n = Number(raw);
	return Number.isSafeInteger(n) ? n : bad(400, `${name} is at most 2^53-1`);
}

const RFC3339_RE = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

export function parseExpiry(headers: Headers): { ttlS?: number; expiresAt?: number } | Bad {
	const ttl = headers.get(H.ttl);
	const at = headers.get(H.expiresAt);
	if (ttl !== null && at !== null) return bad(400, `send ${H.ttl} or ${H.expiresAt}, not both`);
	if (ttl !== null) {
		const n = parseUint(ttl, H.ttl);
		return isBad(n) ? n : { ttlS: n };
	}
	if (at !== null) {
		const ms = RFC3339_RE.test(at) ? Date.parse(at) : Number.NaN;
		if (!Number.isFinite(ms)) return bad(400, `${H.expiresAt} must be an RFC 3339 timestamp`);
		return { expiresAt: ms };
	}
	return {};
}

/** The three producer headers, all or none. */
export function parseProducer(headers: Headers): ProducerHeaders | undefined | Bad {
	const id = headers.get(H.producerId);
	const epoch = headers.get(H.producerEpoch);
	const seq = headers.get(H.producerSeq);
	if (id === null && epoch === null && seq === null) return undefined;
	if (id === null || epoch === null || seq === null) {
		return bad(400, `${H.producerId}, ${H.producerEpoch} and ${H.producerSeq} go together`);
	}
	if (id === "") return bad(400, `${H.producerId} must not be empty`);
	const e = parseUint(epoch, H.producerEpoch);
	if (isBad(e)) return e;
	const s = parseUint(seq, H.producerSeq);
	if (isBad(s)) return s;
	return { id, epoch: e, seq: s };
}

/** A request body, refused past the append limit before it is read whole where the length is known. */
export async function readBody(req: Request): Promise<Uint8Array | Bad> {
	const max = LIMITS.streamAppendMaxBytes;
	const tooLarge = bad(413, `an append is at most ${max} bytes`);
	if (Number(req.headers.get("Content-Length") ?? 0) > max) return tooLarge;
	if (!req.body) return new Uint8Array(0);
	const chunks: Uint8Array[] = [];
	let size = 0;
	const reader = req.body.getReader();
	for (;;) {
		const { done, value } = await reader.read();
		if (done) break;
		size += value.length;
		if (size > max) {
			await reader.cancel().catch(() => {});
			return tooLarge;
		}
		chunks.push(value);
	}
	const out = new Uint8Array(size);
	let at = 0;
	for (const c of chunks) {
		out.set(c, at);
		at += c.length;
	}
	return out;
}

/**
 * A JSON append's messages, each as JSON text: an array is flattened one
 * level (the protocol's batching), anything else is one message. `[]` is an
 * empty append: refused on POST, an empty stream on PUT.
 */
export function jsonMessages(body: Uint8Array, emptyArrayOk: boolean): string[] | Bad {
	let value: unknown;
	try {
		value = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body));
	} catch {
		return bad(400, "the body is not valid JSON");
	}
	const items = Array.isArray(value) ? value : [value];
	if (items.length === 0 && !emptyArrayOk) return bad(400, "an empty JSON array appends nothing");
	if (items.length > LIMITS.streamAppendMaxMessages) {
		return bad(413, `a JSON append holds at most ${LIMITS.streamAppendMaxMessages} messages`);
	}
	const out: string[] = [];
	for (const item of items) {
		let text: string | undefined;
		try {
			text = JSON.stringify(item);
		} catch {
			return bad(400, "the body is nested too deeply to store");
		}
		if (text === undefined) return bad(400, "the body is not valid JSON");
		if (text.length > LIMITS.messageDataMaxBytes) {
			return bad(413, `a JSON message is at most ${LIMITS.messageDataMaxBytes} bytes`);
		}
		out.push(text);
	}
	return out;
}

/** The body as the stream stores it: messages for JSON, bytes for everything else. */
export function appendBody(
	contentType: string | undefined,
	body: Uint8Array,
	emptyArrayOk: boolean,
): { messages?: string[]; bytes?: Uint8Array } | Bad {
	if (body.length === 0) return {};
	if (contentType !== undefined && isJsonType(contentType)) {
		const messages = jsonMessages(body, emptyArrayOk);
		return isBad(messages) ? messages : { messages };
	}
	return { bytes: body };
}

/** `/v1/stream/<name>` (or a URL ending so) to `<name>`. */
export function streamNameOf(path: string): string | undefined {
	let p = path;
	try {
		if (/^https?:\/\//i.test(p)) p = new URL(p).pathname;
	} catch {
		return undefined;
	}
	const m = /^\/v1\/stream\/([^/?#]+)$/.exec(p);
	if (!m?.[1]) return undefined;
	try {
		return decodeURIComponent(m[1]);
	} catch {
		return undefined;
	}
}
