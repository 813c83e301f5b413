/**
 * Dead letters of consumer groups: a message whose last attempt failed moves
 * here, once, in the same transaction that ends its lease. It can be listed,
 * redriven (back into its group, attempts starting again) or purged; a group
 * with a `dead_letter_topic` also forwards it there.
 *
 * The forward is a timer stored in that same transaction, so the dead letter
 * and its forward are stored together; the timer reschedules itself before it
 * publishes and is cancelled once the publish succeeded, and the publish key
 * makes a repeat a no-op.
 * @module
 */
import { LIMITS } from "../../protocol/limits.js";
import type { AttemptError, Attributes, DeadLetter, Message } from "../../protocol/message.js";
import type { PublishRecord } from "../../protocol/schema.js";
import type { Scheduler } from "../storage/scheduler.js";

/** Forwarding a dead letter to the group's `dead_letter_topic`. */
export const TIMER_DEAD_LETTER = "dead-letter";

/** What a `dead-letter` timer carries: the publish to make on the dead-letter topic. */
export interface DeadLetterForward {
	topic: string;
	record: PublishRecord;
}

export class DeadLetters {
	constructor(
		private readonly sql: SqlStorage,
		private readonly scheduler: Scheduler,
	) {}

	/** Stores a dead letter (and its forward, when the group has a dead-letter topic). Call inside a transaction. */
	add(
		group: string,
		dead: { seq: number; attempts: number; error: string | null; errors: string; json: string },
		now: number,
		forwardTo: string | undefined,
	): DeadLetter {
		const message = JSON.parse(dead.json) as Message;
		if (forwardTo) {
			const forward: DeadLetterForward = {
				topic: forwardTo,
				record: deadLetterRecord(message, group, dead.attempts, dead.error, now),
			};
			this.scheduler.schedule(TIMER_DEAD_LETTER, `${group}/${dead.seq}/${now}`, now, JSON.stringify(forward));
		}
		this.sql.exec(
			`INSERT INTO dead_letters (grp, seq, attempts, last_error, errors, dead_at, message) VALUES (?, ?, ?, ?, ?, ?, ?)
			 ON CONFLICT (grp, seq) DO UPDATE SET attempts = excluded.attempts, last_error = excluded.last_error,
			   errors = excluded.errors, dead_at = excluded.dead_at, message = excluded.message`,
			group,
			dead.seq,
			dead.attempts,
			dead.error,
			dead.errors,
			now,
			dead.json,
		);
		return {
			seq: dead.seq,
			attempts: dead.attempts,
			last_error: dead.error,
			errors: JSON.parse(dead.errors) as AttemptError[],
			dead_at: now,
			message,
		};
	}

	count(group: string): number {
		return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM dead_letters WHERE grp = ?", group).one().n;
	}

	list(group: string, after: number, limit: number): { count: number; messages: DeadLetter[] } {
		const messages: DeadLetter[] = [];
		let bytes = 0;
		// A cursor over rows, read one at a time, so the listing stops near pageMaxBytes.
		for (const r of this.sql.exec<{
			seq: number;
			attempts: number;
			last_error: string | null;
			errors: string | null;
			dead_at: number;
			message: string;
		}>(
			"SELECT seq, attempts, last_error, errors, dead_at, message FROM dead_letters WHERE grp = ? AND seq > ? ORDER BY seq LIMIT ?",
			group,
			after,
			limit,
		)) {
			if (messages.length > 0 && bytes + r.message.length > LIMITS.pageMaxBytes) break;
			bytes += r.message.length;
			messages.push({
				...r,
				// Dead before attempt errors were kept: the last one is all there is.
				errors: r.errors === null ? [] : (JSON.parse(r.errors) as AttemptError[]),
				message: JSON.parse(r.message) as Message,
			});
		}
		return { count: this.count(group), messages };
	}

	/** Puts dead letters back into the group as fresh messages (attempts start again), in SQL: their text never enters memory. */
	redrive(group: string, now: number, seqs?: number[]): number {
		const { where, args } = seqFilter(seqs);
		const n = this.#count(group, where, args);
		this.sql.exec(
			`INSERT INTO group_messages (grp, seq, attempt, state, due_at, payload, errors)
			 SELECT grp, seq, 0, 'ready', ?, message, errors FROM dead_letters WHERE grp = ?${where}
			 ON CONFLICT (grp, seq) DO NOTHING`,
			now,
			group,
			...args,
		);
		this.sql.exec(`DELETE FROM dead_letters WHERE grp = ?${where}`, group, ...args);
		return n;
	}

	purge(group: string, seqs?: number[]): number {
		const { where, args } = seqFilter(seqs);
		// Counted first: rowsWritten also counts index entries.
		const n = this.#count(group, where, args);
		this.sql.exec(`DELETE FROM dead_letters WHERE grp = ?${where}`, group, ...args);
		return n;
	}

	/** A group is deleted: its dead letters go with it. */
	deleteGroup(group: string): void {
		this.sql.exec("DELETE FROM dead_letters WHERE grp = ?", group);
	}

	#count(group: string, where: string, args: string[]): number {
		return this.sql
			.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM dead_letters WHERE grp = ?${where}`, group, ...args)
			.one().n;
	}
}

/** The seqs as one JSON parameter: a statement's bound parameters are limited, a list of seqs is not. */
function seqFilter(seqs: number[] | undefined): { where: string; args: string[] } {
	return seqs
		? { where: " AND seq IN (SELECT value FROM json_each(?))", args: [JSON.stringify(seqs)] }
		: { where: "", args: [] };
}

/**
 * The message a dead letter becomes on the dead-letter topic: the same data
 * and trace context, with where it came from and why in its attributes.
 */
export function deadLetterRecord(
	message: Message,
	group: string,
	attempts: number,
	error: string | null,
	deadAt: number,
): PublishRecord {
	const origin: Attributes = {
		source_topic: message.topic,
		source_group: group,
		source_seq: message.seq,
		attempts,
		...(error === null ? {} : { last_error: error.slice(0, LIMITS.attributeValueMaxLength) }),
	};
	// Keep within the attribute limit: the origin fields win over the message's own.
	const own = Object.entries(message.attributes ?? {}).filter(([k]) => !Object.hasOwn(origin, k));
	const room = LIMITS.attributesMaxCount - Object.keys(origin).length;
	return {
		data_json: JSON.stringify(message.data),
		attributes: { ...Object.fromEntries(own.slice(0, room)), ...origin },
		key: `dead:${message.topic}:${group}:${message.seq}:${deadAt}`,
		...(message.traceparent === undefined ? {} : { traceparent: message.traceparent }),
		...(message.baggage === undefined ? {} : { baggage: message.baggage }),
	};
}
