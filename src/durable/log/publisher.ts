/**
 * The publish pipeline: idempotency keys, delayed messages, atomic batches
 * and the hand-off to fan-out. Immediate messages of one call get
 * consecutive seqs in one transaction; the answer leaves only once the write
 * is durable (the output gate holds it). A delayed message waits as a timer
 * and joins the log, getting its seq, when it is due.
 * @module
 */
import type { Attributes, PublishResult } from "../../protocol/message.js";
import type { PublishRecord } from "../../protocol/schema.js";
import type { Outgoing } from "../live/live-streams.js";
import type { Scheduler, Timer } from "../storage/scheduler.js";
import type { Transaction } from "../storage/transaction.js";
import type { Dedupe } from "./dedupe.js";
import { uuidv7 } from "./ids.js";
import type { Retention } from "./retention.js";
import type { LogEntry, TopicLog } from "./topic-log.js";

export const TIMER_DELAYED = "delayed";

export class Publisher {
	constructor(
		private readonly log: TopicLog,
		private readonly dedupe: Dedupe,
		private readonly scheduler: Scheduler,
		private readonly retention: Retention,
		private readonly transaction: Transaction,
		/** New messages are in the log: tell live subscribers and groups. */
		private readonly fanOut: (rows: Outgoing[]) => void,
	) {}

	/** Delayed messages waiting to join the log. */
	get delayed(): number {
		return this.scheduler.count(TIMER_DELAYED);
	}

	/** Stores records already checked against schema `revision` (`undefined`: the topic has none); a delayed one keeps its revision until it joins. */
	publish(records: PublishRecord[], revision?: number): PublishResult[] {
		const now = Date.now();
		const { results, rows } = this.transaction(() => this.#store(records, now, revision));
		this.#fanOutSafely(rows);
		return results;
	}

	/** The `delayed` timer: the message joins the log now and gets its seq. */
	joinDelayed(timer: Timer, now: number): () => void {
		const entry = JSON.parse(timer.payload ?? "null") as LogEntry;
		const [row] = this.log.append([entry], now);
		if (!row) throw new Error("delayed message was not appended");
		if (entry.key !== undefined) this.dedupe.delivered(entry.key, entry.id, row.seq);
		this.retention.afterAppend(now, false);
		const out: Outgoing = { row, attributes: entry.attributes };
		return () => this.#fanOutSafely([out]);
	}

	#store(
		records: PublishRecord[],
		now: number,
		revision: number | undefined,
	): { results: PublishResult[]; rows: Outgoing[] } {
		const results: PublishResult[] = new Array(records.length);
		const entries: LogEntry[] = [];
		/** For each entry, the result slot it answers. */
		const slots: number[] = [];
		/** Keys first seen in this call: a repeat inside a batch answers the first. */
		const batchKeys = new Map<string, number>();
		const repeats: Array<[slot: number, of: number]> = [];

		records.forEach((r, slot) => {
			if (r.key !== undefined) {
				const first = batchKeys.get(r.key);
				if (first !== undefined) {
					repeats.push([slot, first]);
					return;
				}
				const seen = this.dedupe.lookup(r.key, now);
				if (seen) {
					results[slot] = seen;
					return;
				}
				batchKeys.set(r.key, slot);
			}
			const { delay_ms, ...fields } = r;
			const entry: LogEntry = { id: uuidv7(now), ...fields };
			if (revision !== undefined) entry.schema_revision = revision;
			if (delay_ms !== undefined && delay_ms > 0) {
				const deliverAt = now + delay_ms;
				this.scheduler.schedule(TIMER_DELAYED, entry.id, deliverAt, JSON.stringify(entry));
				results[slot] = { id: entry.id, deliver_at: deliverAt };
				if (r.key !== undefined) this.dedupe.remember(r.key, entry.id, { deliver_at: deliverAt }, now);
			} else {
				entries.push(entry);
				slots.push(slot);
			}
		});

		const appended = this.log.append(entries, now);
		const rows: Outgoing[] = appended.map((row, i) => {
			const entry = entries[i] as LogEntry;
			results[slots[i] as number] = { id: row.id, seq: row.seq };
			if (entry.key !== undefined) this.dedupe.remember(entry.key, row.id, { seq: row.seq }, now);
			return { row, attributes: entry.attributes as Attributes | undefined };
		});
		for (const [slot, of] of repeats) results[slot] = { ...(results[of] as PublishResult), duplicate: true };
		if (appended.length > 0 || batchKeys.size > 0) this.retention.afterAppend(now, batchKeys.size > 0);
		return { results, rows };
	}

	#fanOutSafely(rows: Outgoing[]): void {
		if (rows.length === 0) return;
		// The messages are stored: a failure from here on must not report the publish as failed.
		try {
			this.fanOut(rows);
		} catch (err) {
			console.error("tidings: fan-out after a publish failed", err);
		}
	}
}
