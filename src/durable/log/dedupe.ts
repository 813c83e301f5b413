/**
 * Publish keys seen in the last 24 hours, so a repeated publish answers the
 * original `{id, seq}` (or `{id, deliver_at}` while delayed) and stores nothing.
 * @module
 */
import { LIMITS } from "../../protocol/limits.js";
import type { PublishResult } from "../../protocol/message.js";

type DedupeRow = {
	id: string;
	seq: number | null;
	deliver_at: number | null;
};

/** Producer state keys start with a NUL, which no client sends as a publish key in practice. */
const PRODUCER_PREFIX = "\u0000producer:";

export class Dedupe {
	constructor(private readonly sql: SqlStorage) {}

	/** The original answer for `key`, or undefined when it is new or expired. */
	lookup(key: string, now: number): PublishResult | undefined {
		const row = this.sql
			.exec<DedupeRow>("SELECT id, seq, deliver_at FROM dedupe WHERE key = ? AND expires_at > ?", key, now)
			.toArray()[0];
		if (!row) return undefined;
		return row.seq !== null
			? { id: row.id, seq: row.seq, duplicate: true }
			: { id: row.id, deliver_at: row.deliver_at ?? 0, duplicate: true };
	}

	remember(key: string, id: string, result: { seq?: number; deliver_at?: number }, now: number): void {
		this.sql.exec(
			`INSERT INTO dedupe (key, id, seq, deliver_at, expires_at) VALUES (?, ?, ?, ?, ?)
			 ON CONFLICT (key) DO UPDATE SET id = excluded.id, seq = excluded.seq,
			   deliver_at = excluded.deliver_at, expires_at = excluded.expires_at`,
			key,
			id,
			result.seq ?? null,
			result.deliver_at ?? null,
			now + LIMITS.dedupeWindowMs,
		);
	}

	/** A delayed message joined the log: later duplicates answer its seq. */
	delivered(key: string, id: string, seq: number): void {
		this.sql.exec("UPDATE dedupe SET seq = ? WHERE key = ? AND id = ?", seq, key, id);
	}

	/**
	 * A Durable Streams producer's state (its epoch and highest accepted
	 * seq) lives here beside publish keys, under a key no publish can take
	 * by accident, and expires with the same window.
	 */
	producer(producerId: string, now: number): { epoch: number; seq: number } | undefined {
		const row = this.sql
			.exec<DedupeRow>(
				"SELECT id, seq, deliver_at FROM dedupe WHERE key = ? AND expires_at > ?",
				PRODUCER_PREFIX + producerId,
				now,
			)
			.toArray()[0];
		return row ? { epoch: Number(row.id), seq: row.seq ?? 0 } : undefined;
	}

	rememberProducer(producerId: string, epoch: number, seq: number, now: number): void {
		this.remember(PRODUCER_PREFIX + producerId, String(epoch), { seq }, now);
	}

	purge(now: number, limit: number): number {
		return this.sql.exec(
			"DELETE FROM dedupe WHERE key IN (SELECT key FROM dedupe WHERE expires_at <= ? LIMIT ?)",
			now,
			limit,
		).rowsWritten;
	}

	nextExpiry(): number | undefined {
		return this.sql.exec<{ t: number | null }>("SELECT MIN(expires_at) AS t FROM dedupe").one().t ?? undefined;
	}
}
