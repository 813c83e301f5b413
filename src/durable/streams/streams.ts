/**
 * The Durable Streams door of a topic: one log, two doors. A stream's
 * messages are the topic's messages (a JSON stream's message is a topic
 * message's `data`; a byte stream's append is stored as base64 strings), its
 * offsets are seqs, and appends go through the topic's one publish path, so
 * live subscribers, groups and schema checks see them.
 *
 * What only streams have lives in `meta` (`stream`): content type, TTL or
 * expiry, closed, the last `Stream-Seq`, fork bookkeeping. Producers'
 * epochs and seqs live in the dedupe store beside publish keys. Expiry is a
 * timer on the object's one scheduler.
 *
 * Readers that wait (long-poll, SSE) do not wait here: the Worker holds their
 * response and opens a hibernatable "waiter" socket to this object, which
 * sends one small frame when the head moves or the stream closes. An idle
 * reader therefore costs the object nothing, and it may hibernate.
 * @module
 */
import { ERROR_STATUS } from "../../protocol/errors.js";
import type { Failure, Result } from "../../protocol/internal.js";
import { LIMITS, TUNING } from "../../protocol/limits.js";
import type { PublishResult } from "../../protocol/message.js";
import type { PublishRecord } from "../../protocol/schema.js";
import {
	type ForkSeed,
	formatOffset,
	H,
	isJsonType,
	isTextType,
	mediaType,
	type ParsedOffset,
	type StreamAppend,
	type StreamCreate,
	type StreamReply,
} from "../../protocol/streams.js";
import type { Dedupe } from "../log/dedupe.js";
import type { LogRow, TopicLog } from "../log/topic-log.js";
import type { Meta } from "../storage/meta.js";
import type { Scheduler, Timer } from "../storage/scheduler.js";
import type { Transaction } from "../storage/transaction.js";
import { byteRows, concat, rowBytes, toBase64 } from "./bytes.js";
import { Waiters } from "./waiters.js";

export const TIMER_STREAM_EXPIRY = "stream-expiry";
const META_KEY = "stream";

/** What a stream is, beyond its messages. */
interface StreamState {
	content_type: string;
	/** Incarnation: a stream deleted and created again has another, so ETags differ. */
	created: number;
	ttl_s?: number;
	/** ms since the epoch; moves forward on use when `ttl_s` is set (sliding TTL). */
	expires_at?: number;
	closed?: true;
	/** The producer whose append closed the stream: the same tuple again is a duplicate. */
	closer?: { id: string; epoch: number; seq: number };
	writer_seq?: string;
	/** Deleted while forks still hold it: answers 410 until the last fork goes. */
	deleted?: true;
	forks?: number;
	/** A fork: the stream it came from, and how it was asked for. */
	fork?: { source: string; offset: string; sub: number };
}

export interface StreamRooms {
	ctx: DurableObjectState;
	meta: Meta;
	log: TopicLog;
	/** The topic's name as JSON text, for rendering messages. */
	topicJson: string;
	dedupe: Dedupe;
	scheduler: Scheduler;
	transaction: Transaction;
	/** The topic's one publish path (schema checks, fan-out to subscribers and groups). */
	publish: (records: PublishRecord[]) => Result<PublishResult[]>;
	/** The topic exists (written, configured or subscribed) without a stream record: a JSON stream. */
	isTopic: () => boolean;
	/** Removes everything the object stores and resets what it mirrors in memory. */
	wipe: () => void;
	/** Tells a fork's source it has one fork fewer. */
	release: (source: string) => void;
}

type Current = { state: StreamState } | { reply: StreamReply };

function reply(status: number, headers: Record<string, string> = {}): StreamReply {
	return { status, headers };
}

/** The topic's schema refused an append: thrown out of its transaction, so nothing of it is stored. */
class Refused extends Error {
	constructor(readonly failure: Failure) {
		super(failure.error.message);
	}
}

/** A refusal as the HTTP error contract answers it (`400 schema_mismatch`, naming the message). */
function refusedReply({ failure }: Refused): StreamReply {
	return {
		status: ERROR_STATUS[failure.error.code],
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ error: failure.error }),
	};
}

export class Streams {
	readonly #waiters: Waiters;

	constructor(private readonly r: StreamRooms) {
		this.#waiters = new Waiters(r.ctx, r.log, r.topicJson, () => {
			const s = this.#state();
			return s && { ...s, json: isJsonType(s.content_type), text: isTextType(s.content_type) };
		});
	}

	timers() {
		return { [TIMER_STREAM_EXPIRY]: (_t: Timer, now: number) => this.#expireDue(now) };
	}

	// --- Operations ------------------------------------------------------------------------

	create(req: StreamCreate, now = Date.now()): StreamReply {
		let s = this.#state();
		if (s?.expires_at !== undefined && s.expires_at <= now && !s.deleted) {
			this.#expire(s);
			s = this.#state();
		}
		if (s?.deleted) return reply(409);
		if (s) {
			const same =
				mediaType(s.content_type) === mediaType(req.contentType) &&
				s.ttl_s === req.ttlS &&
				(req.ttlS !== undefined || s.expires_at === req.expiresAt) &&
				sameFork(s.fork, req.fork);
			if (!same) return reply(409);
			return reply(200, this.#describe(s));
		}
		const state: StreamState = { content_type: req.contentType, created: now };
		if (req.ttlS !== undefined) {
			state.ttl_s = req.ttlS;
			state.expires_at = now + req.ttlS * 1000;
		} else if (req.expiresAt !== undefined) state.expires_at = req.expiresAt;
		if (req.fork) state.fork = { source: req.fork.source, offset: req.fork.offset, sub: req.fork.sub };
		const records = [...(req.fork?.rows ?? []), ...this.#rows(state, req.messages, req.bytes)];
		try {
			this.r.transaction(() => {
				this.#save(state);
				if (records.length > 0) this.#append(records);
				if (req.closed) state.closed = true;
				this.#save(state);
				if (state.expires_at !== undefined) this.r.scheduler.schedule(TIMER_STREAM_EXPIRY, "stream", state.expires_at);
			});
		} catch (err) {
			if (err instanceof Refused) return refusedReply(err);
			throw err;
		}
		if (state.closed) this.notify();
		return reply(201, { ...this.#describe(state), Location: req.location });
	}

	append(req: StreamAppend, now = Date.now()): StreamReply {
		const cur = this.#current(now);
		if ("reply" in cur) return cur.reply;
		const s = cur.state;
		const hasBody = (req.messages?.length ?? 0) > 0 || (req.bytes?.length ?? 0) > 0;
		const tail = { [H.offset]: formatOffset(this.r.log.head) };
		const p = req.producer;
		if (s.closed) {
			const closedHeaders = { ...tail, [H.closed]: "true" };
			if (p && s.closer && s.closer.id === p.id && s.closer.epoch === p.epoch && s.closer.seq === p.seq) {
				return reply(204, { ...closedHeaders, [H.producerEpoch]: String(p.epoch), [H.producerSeq]: String(p.seq) });
			}
			if (req.close && !hasBody && !p) return reply(204, closedHeaders);
			return reply(409, closedHeaders);
		}
		if (hasBody) {
			if (req.contentType === undefined) return reply(400);
			if (mediaType(req.contentType) !== mediaType(s.content_type)) return reply(409);
		} else if (!req.close) return reply(400);

		let producerHeaders: Record<string, string> = {};
		if (p) {
			const known = this.r.dedupe.producer(p.id, now);
			if (known && p.epoch < known.epoch) return reply(403, { [H.producerEpoch]: String(known.epoch) });
			if (!known || p.epoch > known.epoch) {
				if (p.seq !== 0) return reply(400);
			} else if (p.seq <= known.seq) {
				return reply(204, { ...tail, [H.producerEpoch]: String(p.epoch), [H.producerSeq]: String(known.seq) });
			} else if (p.seq > known.seq + 1) {
				return reply(409, {
					[H.producerExpected]: String(known.seq + 1),
					[H.producerReceived]: String(p.seq),
				});
			}
			producerHeaders = { [H.producerEpoch]: String(p.epoch), [H.producerSeq]: String(p.seq) };
		}
		// Stream-Seq is scoped to the stream, compared byte-wise (the protocol's rule).
		if (req.writerSeq !== undefined && s.writer_seq !== undefined && req.writerSeq <= s.writer_seq) return reply(409);

		const records = this.#rows(s, req.messages, req.bytes);
		try {
			this.r.transaction(() => {
				if (records.length > 0) this.#append(records);
				if (p) this.r.dedupe.rememberProducer(p.id, p.epoch, p.seq, now);
				if (req.writerSeq !== undefined) s.writer_seq = req.writerSeq;
				if (req.close) {
					s.closed = true;
					if (p) s.closer = { id: p.id, epoch: p.epoch, seq: p.seq };
				}
				this.#renew(s, now, true);
			});
		} catch (err) {
			if (err instanceof Refused) return refusedReply(err);
			throw err;
		}
		if (req.close) this.notify();
		const headers: Record<string, string> = { [H.offset]: formatOffset(this.r.log.head), ...producerHeaders };
		if (s.closed) headers[H.closed] = "true";
		return reply(p && hasBody ? 200 : 204, headers);
	}

	read(offset: ParsedOffset, now = Date.now()): StreamReply {
		const cur = this.#current(now);
		if ("reply" in cur) return cur.reply;
		const s = cur.state;
		const log = this.r.log;
		const json = isJsonType(s.content_type);
		const text = isTextType(s.content_type);
		let after: number;
		if (offset.kind === "start") after = log.first - 1;
		else if (offset.kind === "now") after = log.head;
		else {
			if (offset.seq > log.head) return reply(400);
			// Retention trimmed what this offset needs.
			if (offset.seq < log.first - 1) return reply(410);
			after = offset.seq;
		}
		const rows = offset.kind === "now" ? [] : log.readBounded(after, LIMITS.historyMaxLimit, LIMITS.streamReadMaxBytes);
		const next = rows.at(-1)?.seq ?? after;
		const upToDate = next >= log.head;
		const closed = upToDate && s.closed === true;
		const body = json ? `[${rows.map((r) => r.data).join(",")}]` : concat(rows.map((r) => rowBytes(r.data)));
		this.#renew(s, now, false);
		const headers: Record<string, string> = { "Content-Type": s.content_type, [H.offset]: formatOffset(next) };
		if (upToDate) headers[H.upToDate] = "true";
		if (closed) headers[H.closed] = "true";
		return {
			status: 200,
			headers,
			body,
			upToDate,
			closed,
			next,
			head: log.head,
			json,
			text,
			...(offset.kind === "now" ? {} : { etag: `"${s.created}.${after}.${next}${closed ? ".c" : ""}"` }),
		};
	}

	head(now = Date.now()): StreamReply {
		const cur = this.#current(now);
		if ("reply" in cur) return cur.reply;
		return reply(200, this.#describe(cur.state));
	}

	delete(now = Date.now()): StreamReply {
		const cur = this.#current(now);
		if ("reply" in cur) return cur.reply;
		const s = cur.state;
		if ((s.forks ?? 0) > 0) {
			s.deleted = true;
			this.#save(s);
			this.#waiters.closeAll();
		} else this.#hardDelete(s);
		return reply(204);
	}

	/**
	 * A fork asks its source for what it inherits: the messages up to `offset`
	 * (the head when absent) and `sub` more messages (JSON) or bytes. Counts
	 * the fork, so deleting the source leaves it readable to the fork.
	 */
	forkSource(
		contentType: string | undefined,
		offset: ParsedOffset | undefined,
		sub: number,
		now = Date.now(),
	): StreamReply & { seed?: Omit<ForkSeed, "source" | "offset" | "sub"> } {
		const cur = this.#current(now);
		if ("reply" in cur) return cur.reply.status === 410 ? reply(409) : cur.reply;
		const s = cur.state;
		if (contentType !== undefined && mediaType(contentType) !== mediaType(s.content_type)) return reply(409);
		const log = this.r.log;
		let upTo = log.head;
		if (offset?.kind === "seq") upTo = offset.seq;
		if (upTo > log.head || upTo < log.first - 1) return reply(400);
		const rows: string[] = [];
		let bytes = 0;
		for (let after = log.first - 1; after < upTo; ) {
			const page = log.read(after, Math.min(500, upTo - after));
			if (page.length === 0) break;
			for (const r of page) {
				bytes += r.data.length;
				rows.push(r.data);
			}
			if (bytes > LIMITS.streamForkMaxBytes) return reply(413);
			after = (page.at(-1)?.seq as number) ?? upTo;
		}
		if (sub > 0) {
			const json = isJsonType(s.content_type);
			// Every message holds at least one byte: `sub` rows always cover `sub` bytes.
			const more = log.read(upTo, sub);
			if (json) {
				if (more.length < sub) return reply(400);
				rows.push(...more.map((r) => r.data));
			} else {
				let need = sub;
				for (const r of more) {
					if (need === 0) break;
					const b = rowBytes(r.data);
					const take = b.subarray(0, Math.min(need, b.length));
					rows.push(JSON.stringify(toBase64(take)));
					need -= take.length;
				}
				if (need > 0) return reply(400);
			}
		}
		s.forks = (s.forks ?? 0) + 1;
		this.#save(s);
		const seed: Omit<ForkSeed, "source" | "offset" | "sub"> = { contentType: s.content_type, rows };
		if (s.ttl_s !== undefined) seed.ttlS = s.ttl_s;
		else if (s.expires_at !== undefined) seed.expiresAt = s.expires_at;
		return { ...reply(200), seed };
	}

	/** One fork of this stream went away; the last one takes a deleted source with it. */
	forkRelease(): void {
		const s = this.r.meta.getJson<StreamState>(META_KEY);
		if (!s) return;
		s.forks = Math.max(0, (s.forks ?? 0) - 1);
		if (s.deleted && s.forks === 0) this.#hardDelete(s);
		else this.#save(s);
	}

	// --- Waiters (waiters.ts) ----------------------------------------------------------------

	acceptWaiter(after: number, sse: boolean): Response {
		return this.#waiters.accept(after, sse);
	}

	notify(rows: readonly { row: LogRow }[] = []): void {
		this.#waiters.notify(rows);
	}

	/** Refuses topic publishes a stream cannot take: a byte stream's log, or a closed stream. */
	refusesPublish(): string | undefined {
		const s = this.r.meta.getJson<StreamState>(META_KEY);
		if (!s) return undefined;
		if (s.closed) return "this topic is a closed stream: it takes no more messages";
		if (s.deleted) return "this topic is a deleted stream";
		if (!isJsonType(s.content_type)) {
			return `this topic is a ${s.content_type} stream; append to it at /v1/stream/:name, or publish JSON to another topic`;
		}
		return undefined;
	}

	// --- Internals -------------------------------------------------------------------------

	#state(): StreamState | undefined {
		const s = this.r.meta.getJson<StreamState>(META_KEY);
		if (s) return s;
		return this.r.isTopic() ? { content_type: "application/json", created: 0 } : undefined;
	}

	#save(s: StreamState): void {
		this.r.meta.setJson(META_KEY, s);
	}

	/** The stream, or the answer for one that is missing, expired or deleted. */
	#current(now: number): Current {
		const s = this.#state();
		if (!s) return { reply: reply(404) };
		if (s.deleted) return { reply: reply(410) };
		if (s.expires_at !== undefined && s.expires_at <= now) {
			return { reply: reply(this.#expire(s) ? 410 : 404) };
		}
		return { state: s };
	}

	/** Expires the stream now; answers whether forks keep it (soft-deleted). */
	#expire(s: StreamState): boolean {
		if ((s.forks ?? 0) > 0) {
			s.deleted = true;
			this.#save(s);
			this.#waiters.closeAll();
			return true;
		}
		this.#hardDelete(s);
		return false;
	}

	#expireDue(now: number): (() => void) | undefined {
		const s = this.r.meta.getJson<StreamState>(META_KEY);
		if (!s || s.expires_at === undefined || s.deleted) return undefined;
		if (s.expires_at > now) {
			this.r.scheduler.schedule(TIMER_STREAM_EXPIRY, "stream", s.expires_at);
			return undefined;
		}
		this.#expire(s);
		return undefined;
	}

	#hardDelete(s: StreamState): void {
		this.#waiters.closeAll();
		this.r.wipe();
		if (s.fork) this.r.release(s.fork.source);
	}

	/** Sliding TTL: a use moves the expiry, written only when it moves by a useful amount. */
	#renew(s: StreamState, now: number, save: boolean): void {
		if (s.ttl_s !== undefined) {
			const next = now + s.ttl_s * 1000;
			if (next - (s.expires_at ?? 0) >= Math.min(60_000, s.ttl_s * 250)) {
				s.expires_at = next;
				save = true;
				this.r.scheduler.schedule(TIMER_STREAM_EXPIRY, "stream", next);
			}
		}
		if (save) this.#save(s);
	}

	#rows(s: StreamState, messages: string[] | undefined, bytes: Uint8Array | undefined): string[] {
		if (isJsonType(s.content_type)) return messages ?? [];
		return bytes && bytes.length > 0 ? byteRows(bytes, TUNING.streamRowBytes) : [];
	}

	/** Appends through the topic's publish path: its schema applies to a JSON stream's messages. */
	#append(rows: string[]): void {
		const stored = this.r.publish(rows.map((data_json) => ({ data_json })));
		if (!stored.ok) throw new Refused(stored);
	}

	#describe(s: StreamState): Record<string, string> {
		const h: Record<string, string> = {
			"Content-Type": s.content_type,
			[H.offset]: formatOffset(this.r.log.head),
		};
		if (s.closed) h[H.closed] = "true";
		if (s.ttl_s !== undefined) h[H.ttl] = String(s.ttl_s);
		else if (s.expires_at !== undefined) h[H.expiresAt] = new Date(s.expires_at).toISOString();
		return h;
	}
}

function sameFork(a: StreamState["fork"], b: ForkSeed | undefined): boolean {
	if (!a || !b) return !a && !b;
	return a.source === b.source && a.offset === b.offset && a.sub === b.sub;
}
