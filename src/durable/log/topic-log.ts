/**
 * The ordered log of one topic in SQLite. Seqs are consecutive and never
 * reused. The head is the newest row's seq; trimming records it in `meta`
 * before it deletes, so a log trimmed empty and restarted still continues
 * from its last seq. (Writing `meta` on every publish instead would cost a
 * second row write on the hot path.)
 * @module
 */
import type { Attributes } from "../../protocol/message.js";
import type { PublishRecord } from "../../protocol/schema.js";
import type { Meta } from "../storage/meta.js";

export type LogRow = {
	seq: number;
	id: string;
	ts: number;
	key: string | null;
	data: string;
	attributes: string | null;
	traceparent: string | null;
	baggage: string | null;
	schema_revision: number | null;
};

/** A message to append: a publish record (`data` already serialized) that is due now, with its id and the schema revision it matched. */
export type LogEntry = Omit<PublishRecord, "delay_ms"> & { id: string; schema_revision?: number | undefined };

/** Rows per statement when reading with a byte bound. */
const READ_CHUNK = 64;

/**
 * 8 columns a row, 9 in a typed topic; a statement binds at most 100
 * parameters. An untyped topic's rows leave `schema_revision` out, so its
 * statements stay as they were.
 */
const COLUMNS = "seq, id, ts, key, data, attributes, traceparent, baggage";
const SHAPES = {
	untyped: { columns: COLUMNS, width: 8, rows: 12, sql: [] as string[] },
	typed: { columns: `${COLUMNS}, schema_revision`, width: 9, rows: 11, sql: [] as string[] },
};
type Shape = (typeof SHAPES)[keyof typeof SHAPES];
function insertSql(shape: Shape, n: number): string {
	shape.sql[n] ??=
		`INSERT INTO messages (${shape.columns}) VALUES ` +
		Array.from({ length: n }, () => `(${Array(shape.width).fill("?").join(", ")})`).join(", ");
	return shape.sql[n] as string;
}
const SELECT = `SELECT ${COLUMNS}, schema_revision FROM messages`;

export class TopicLog {
	/** Seq of the newest message (0 before the first). */
	head = 0;
	/** Seq of the oldest retained message (head + 1 when empty). */
	first = 1;
	/** ts of the newest message: ts never goes backwards along the log, so age trimming cuts a prefix. */
	#lastTs = 0;

	constructor(
		private readonly sql: SqlStorage,
		private readonly meta: Meta,
	) {
		this.reload();
	}

	/** Reads head and first from storage, after a wake or a rolled-back transaction. */
	reload(): void {
		const row = this.sql
			.exec<{ first: number | null; last: number | null; ts: number | null }>(
				"SELECT MIN(seq) AS first, MAX(seq) AS last, (SELECT ts FROM messages ORDER BY seq DESC LIMIT 1) AS ts FROM messages",
			)
			.one();
		this.head = Math.max(Number(this.meta.get("head_seq") ?? 0), row.last ?? 0);
		this.first = row.first ?? this.head + 1;
		this.#lastTs = row.ts ?? 0;
	}

	get retained(): number {
		return this.head - this.first + 1;
	}

	/** Appends in order; call inside a transaction. */
	append(entries: LogEntry[], now: number): LogRow[] {
		if (entries.length === 0) return [];
		const ts = Math.max(now, this.#lastTs);
		const rows: LogRow[] = entries.map((e, i) => ({
			seq: this.head + 1 + i,
			id: e.id,
			ts,
			key: e.key ?? null,
			data: e.data_json,
			attributes: e.attributes && Object.keys(e.attributes).length > 0 ? JSON.stringify(e.attributes) : null,
			traceparent: e.traceparent ?? null,
			baggage: e.baggage ?? null,
			schema_revision: e.schema_revision ?? null,
		}));
		// A call's messages were all checked against one revision (or none).
		const shape = rows[0]?.schema_revision === null ? SHAPES.untyped : SHAPES.typed;
		// Many rows per statement: each exec crosses into the runtime, and a
		// batch of 100 costs 9 statements instead of 100.
		for (let i = 0; i < rows.length; i += shape.rows) {
			const chunk = rows.slice(i, i + shape.rows);
			const params: SqlStorageValue[] = [];
			for (const r of chunk) {
				params.push(r.seq, r.id, r.ts, r.key, r.data, r.attributes, r.traceparent, r.baggage);
				if (shape === SHAPES.typed) params.push(r.schema_revision);
			}
			this.sql.exec(insertSql(shape, chunk.length), ...params);
		}
		this.head += rows.length;
		this.#lastTs = ts;
		return rows;
	}

	/** Messages with seq > after, oldest first. */
	read(after: number, limit: number): LogRow[] {
		return this.sql.exec<LogRow>(`${SELECT} WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit).toArray();
	}

	/**
	 * Like `read`, but stops once about `maxBytes` of message data is read
	 * (always at least one row): 1,000 messages of 128 KiB would not fit an
	 * isolate's memory, let alone one answer.
	 */
	readBounded(after: number, limit: number, maxBytes: number): LogRow[] {
		const out: LogRow[] = [];
		let bytes = 0;
		let cursor = after;
		while (out.length < limit) {
			const rows = this.read(cursor, Math.min(READ_CHUNK, limit - out.length));
			for (const row of rows) {
				if (out.length > 0 && bytes + row.data.length > maxBytes) return out;
				out.push(row);
				bytes += row.data.length + (row.attributes?.length ?? 0);
				cursor = row.seq;
			}
			if (rows.length < READ_CHUNK) return out;
		}
		return out;
	}

	oldestTs(): number | undefined {
		if (this.retained === 0) return undefined;
		return this.sql.exec<{ ts: number }>("SELECT ts FROM messages WHERE seq = ?", this.first).toArray()[0]?.ts;
	}

	/**
	 * Deletes, at most `chunk` at a time, what is over `maxMessages` or older
	 * than `maxAgeMs`. Returns whether more remains to trim.
	 */
	trim(
		maxMessages: number,
		maxAgeMs: number,
		now: number,
		chunk: number,
		beforeDelete: (upTo: number) => void = () => {},
	): { deleted: number; more: boolean } {
		if (this.retained === 0) return { deleted: 0, more: false };
		const byCount = this.head - maxMessages;
		const window = this.first + chunk - 1;
		const aged = this.sql
			.exec<{ seq: number }>(
				"SELECT seq FROM messages WHERE seq BETWEEN ? AND ? AND ts < ? ORDER BY seq DESC LIMIT 1",
				this.first,
				window,
				now - maxAgeMs,
			)
			.toArray()[0]?.seq;
		const wanted = Math.max(byCount, aged ?? 0);
		const upTo = Math.min(wanted, window);
		if (upTo < this.first) return { deleted: 0, more: false };
		this.meta.set("head_seq", String(this.head));
		beforeDelete(upTo);
		this.sql.exec("DELETE FROM messages WHERE seq <= ?", upTo);
		const deleted = upTo - this.first + 1;
		this.first = upTo + 1;
		return { deleted, more: wanted > upTo || (aged !== undefined && aged === window) };
	}
}

/** A stored row's attributes, parsed (filters need them; the text is what is stored and sent). */
export function attributesOf(row: LogRow): Attributes {
	return row.attributes === null ? {} : (JSON.parse(row.attributes) as Attributes);
}

/** Renders a stored row as message JSON without parsing `data` back. */
export function renderMessage(topicJson: string, r: LogRow): string {
	let s = `{"id":"${r.id}","seq":${r.seq},"topic":${topicJson},"data":${r.data},"attributes":${r.attributes ?? "{}"},"ts":${r.ts}`;
	if (r.key !== null) s += `,"key":${JSON.stringify(r.key)}`;
	if (r.traceparent !== null) s += `,"traceparent":"${r.traceparent}"`;
	if (r.baggage !== null) s += `,"baggage":${JSON.stringify(r.baggage)}`;
	if (r.schema_revision !== null) s += `,"schema_revision":${r.schema_revision}`;
	return `${s}}`;
}
