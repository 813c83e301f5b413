/**
 * Deliveries of consumer groups: each message of the topic goes to one
 * holder of a group at a time (a member socket, a pull, a push request), is
 * retried with backoff until acknowledged, and is dead-lettered after
 * `max_retries` failed retries.
 *
 * A message a group takes gets a row in `group_messages` (leased to an owner
 * until `due_at`, or ready for a retry at `due_at`) until it is acked or
 * dead-lettered; a batch is leased, and settled, in one statement. Every
 * delivery counts as an attempt; a nack, an ack timeout and a member that
 * goes away with the message all end the attempt as failed. Attempt `max_retries + 1` failing dead-letters the message, once.
 * Lease deadlines and retry times are timers on the object's one scheduler:
 * one sweep timer per group (at its earliest deadline) and one per retry.
 * @module
 */
import { matchesFilter } from "../../protocol/filter.js";
import { OWNER_PREFIX } from "../../protocol/internal.js";
import { LIMITS, TUNING } from "../../protocol/limits.js";
import type { AttemptError, DeadLetter, GroupSettings } from "../../protocol/message.js";
import { attributesOf, type LogRow, renderMessage, type TopicLog } from "../log/topic-log.js";
import type { Scheduler } from "../storage/scheduler.js";
import type { DeadLetters } from "./dead-letters.js";
import type { GroupRegistry } from "./registry.js";

/** One per group, at its earliest lease deadline: sweeps every lease that ran out. */
export const TIMER_LEASE = "lease";
/** A retry is due: the group's holders may take it. Keyed `group/seq`. */
export const TIMER_RETRY = "retry";

type PendingRow = {
	seq: number;
	attempt: number;
	state: string;
	owner: string | null;
	payload: string | null;
	/** Earlier failed attempts (JSON `AttemptError[]`); read where an attempt may fail. */
	errors?: string | null;
};

/** Who may settle a lease: its exact owner id, or any owner id with a prefix (HTTP acks without a lease id). */
export type Owner = string | { prefix: string };

/** One leased message, rendered for its holder. */
export interface Leased {
	seq: number;
	attempt: number;
	/** The message JSON with `group` and `attempt` added. */
	json: string;
}

/** Timer keys join group and seq with a character names cannot hold. */
function timerKey(group: string, seq: number): string {
	return `${group}/${seq}`;
}
export function groupOfTimer(key: string): string {
	return key.slice(0, key.lastIndexOf("/"));
}

export function retryDelay(s: GroupSettings, attempt: number, random = Math.random): number {
	if (s.backoff === "fixed") return s.retry_delay_ms;
	const d = Math.min(s.retry_delay_ms * 2 ** Math.max(0, attempt - 1), s.max_retry_delay_ms);
	return s.jitter ? Math.round(d / 2 + random() * (d / 2)) : d;
}

/**
 * A JSON array of seqs, bound as one parameter: one statement settles or
 * leases a whole batch. Statements that also test `state` write it `+state`:
 * otherwise SQLite picks the `(grp, state, due_at)` index and scans every
 * leased row of the group for each ack, instead of finding each seq by key.
 */
const IN_SEQS = "seq IN (SELECT value FROM json_each(?))";

/**
 * Counts of leased messages per owner, for one group: dispatch asks for every
 * member's room on every publish and ack, so the counts live in memory,
 * loaded from storage once and moved with every lease and settle.
 */
type Held = Map<string, number>;

export class Leases {
	/** When each group's sweep timer is due, as far as this instance set it (a lower bound is fine: a sweep re-arms). */
	readonly #sweepAt = new Map<string, number>();
	readonly #held = new Map<string, Held>();
	/**
	 * When each group's earliest retry is due (null: none waiting), mirrored
	 * so that dispatch asks storage for retries only when one may be due.
	 */
	readonly #retryAt = new Map<string, number | null>();

	constructor(
		private readonly sql: SqlStorage,
		private readonly log: TopicLog,
		private readonly scheduler: Scheduler,
		private readonly groups: GroupRegistry,
		private readonly deadLetters: DeadLetters,
		private readonly topicJson: () => string,
	) {}

	/** Drops what is mirrored in memory, after a rolled-back transaction. */
	forget(): void {
		this.#sweepAt.clear();
		this.#held.clear();
		this.#retryAt.clear();
	}

	/** Retries were added behind this instance's back (a redrive): ask storage next time. */
	retriesChanged(group: string): void {
		this.#retryAt.delete(group);
	}

	/** Messages `owner` holds in `group`; with `prefix`, every owner whose id starts with it. */
	inFlight(group: string, owner: string, prefix = false): number {
		const held = this.#heldOf(group);
		if (!prefix) return held.get(owner) ?? 0;
		let n = 0;
		for (const [o, count] of held) if (o.startsWith(owner)) n += count;
		return n;
	}

	/** Messages a group could hand out now or soon: an upper bound (a filter may skip some). */
	available(group: string, now: number): number {
		const ready = this.#retryDue(group, now)
			? this.sql
					.exec<{ n: number }>(
						"SELECT COUNT(*) AS n FROM group_messages WHERE grp = ? AND state = 'ready' AND due_at <= ?",
						group,
						now,
					)
					.one().n
			: 0;
		return ready + Math.max(0, this.log.head - Math.max(this.groups.cursor(group), this.log.first - 1));
	}

	/**
	 * Leases up to `max` messages to `owner` until `now + leaseMs`: due retries
	 * first (lowest seq first), then the log after the cursor. A handful of
	 * statements per batch, whatever its size. Call inside a transaction.
	 */
	take(group: string, owner: string, max: number, leaseMs: number, now: number): Leased[] {
		const settings = this.groups.settings(group);
		if (!settings || max <= 0) return [];
		const out: Leased[] = [];
		const until = now + leaseMs;
		let retries: PendingRow[] = [];
		if (this.#retryDue(group, now)) {
			retries = this.sql
				.exec<PendingRow>(
					`SELECT seq, attempt, state, owner, payload FROM group_messages
					 WHERE grp = ? AND state = 'ready' AND due_at <= ? ORDER BY seq LIMIT ?`,
					group,
					now,
					max,
				)
				.toArray();
			// What is left waiting (if anything) is read again when next asked.
			this.#retryAt.delete(group);
		}
		if (retries.length > 0) {
			const gone: number[] = [];
			for (const r of retries) {
				const json = this.#messageJson(r.seq, r.payload);
				// Neither in the log nor kept: nothing left to deliver.
				if (json === undefined) gone.push(r.seq);
				else out.push(delivery(json, group, r.seq, r.attempt + 1));
				this.scheduler.cancel(TIMER_RETRY, timerKey(group, r.seq));
			}
			if (gone.length > 0) {
				this.sql.exec(`DELETE FROM group_messages WHERE grp = ? AND ${IN_SEQS}`, group, JSON.stringify(gone));
			}
			if (out.length > 0) {
				this.sql.exec(
					`UPDATE group_messages SET state = 'leased', owner = ?, due_at = ?, attempt = attempt + 1 WHERE grp = ? AND ${IN_SEQS}`,
					owner,
					until,
					group,
					JSON.stringify(out.map((d) => d.seq)),
				);
			}
		}

		const fresh = out.length < max ? this.#takeFromLog(group, settings, max - out.length) : [];
		if (fresh.length > 0) {
			this.sql.exec(
				`INSERT INTO group_messages (grp, seq, attempt, state, owner, due_at)
				 SELECT ?, value, 1, 'leased', ?, ? FROM json_each(?)`,
				group,
				owner,
				until,
				JSON.stringify(fresh.map((row) => row.seq)),
			);
			const topicJson = this.topicJson();
			for (const row of fresh) out.push(delivery(renderMessage(topicJson, row), group, row.seq, 1));
		}
		if (out.length > 0) {
			this.#armSweep(group, until);
			this.#move(group, owner, out.length);
		}
		return out;
	}

	/** Settles leased messages held by `owner`. Returns the seqs settled. */
	ack(group: string, seqs: number[], owner: Owner): number[] {
		if (seqs.length === 0) return [];
		// The lease sweep finds nothing for them later: no timer row to delete per message.
		const rows = this.sql
			.exec<{ seq: number; owner: string }>(
				`DELETE FROM group_messages WHERE grp = ? AND ${IN_SEQS} AND +state = 'leased' AND ${ownerMatch(owner)} RETURNING seq, owner`,
				group,
				JSON.stringify(seqs),
				ownerArg(owner),
			)
			.toArray();
		if (rows.length === 0) return [];
		for (const r of rows) this.#move(group, r.owner, -1);
		this.groups.count(group, "acked", rows.length);
		return rows.map((r) => r.seq);
	}

	/** Ends leased attempts as failed: retried after a delay, or dead-lettered. Returns the seqs settled. */
	nack(group: string, seqs: number[], now: number, opts: { delayMs?: number; error?: string; owner: Owner }) {
		const dead: DeadLetter[] = [];
		const rows =
			seqs.length === 0
				? []
				: this.sql
						.exec<PendingRow>(
							`SELECT seq, attempt, state, owner, payload, errors FROM group_messages
							 WHERE grp = ? AND ${IN_SEQS} AND +state = 'leased' AND ${ownerMatch(opts.owner)}`,
							group,
							JSON.stringify(seqs),
							ownerArg(opts.owner),
						)
						.toArray();
		for (const row of rows) {
			const d = this.#fail(group, row, now, opts.error ?? null, opts.delayMs);
			if (d) dead.push(d);
		}
		return { done: rows.map((r) => r.seq), dead };
	}

	/**
	 * The lease sweep: every lease of the group whose deadline passed is a
	 * failed attempt; then the sweep re-arms at the next deadline.
	 */
	expireDue(group: string, now: number): number {
		this.#sweepAt.delete(group);
		const rows = this.#select("state = 'leased' AND due_at <= ?", group, now);
		for (const row of rows) this.#fail(group, row, now, "ack timeout", undefined);
		const next = this.sql
			.exec<{ t: number | null }>(
				"SELECT MIN(due_at) AS t FROM group_messages WHERE grp = ? AND state = 'leased'",
				group,
			)
			.one().t;
		if (next !== null) this.#armSweep(group, next);
		return rows.length;
	}

	/** A holder went away: every message it held is a failed attempt, retried at once. */
	release(group: string, owner: string, now: number): DeadLetter[] {
		const dead: DeadLetter[] = [];
		if (this.inFlight(group, owner) === 0) return dead;
		for (const row of this.#select("state = 'leased' AND owner = ?", group, owner)) {
			const d = this.#fail(group, row, now, "consumer disconnected", 0);
			if (d) dead.push(d);
		}
		return dead;
	}

	/**
	 * After a restart, sockets from before are gone without a close event:
	 * what their members held goes back to the group now, instead of after
	 * the ack timeout. Pull and push leases are not socket-bound and stay.
	 * Answers the groups that got messages back.
	 */
	releaseOrphans(connected: Set<string>, now: number): string[] {
		const owners = this.sql
			.exec<{ grp: string; owner: string }>(
				"SELECT DISTINCT grp, owner FROM group_messages WHERE state = 'leased' AND owner LIKE ? || '%'",
				OWNER_PREFIX.member,
			)
			.toArray()
			.filter((r) => !connected.has(r.owner));
		for (const { grp, owner } of owners) this.release(grp, owner, now);
		return [...new Set(owners.map((o) => o.grp))];
	}

	/** A group is deleted: its deliveries and their timers go with it. */
	deleteGroup(group: string): void {
		for (const { seq } of this.sql.exec<{ seq: number }>(
			"SELECT seq FROM group_messages WHERE grp = ? AND state = 'ready'",
			group,
		)) {
			this.scheduler.cancel(TIMER_RETRY, timerKey(group, seq));
		}
		this.scheduler.cancel(TIMER_LEASE, group);
		this.#sweepAt.delete(group);
		this.#held.delete(group);
		this.#retryAt.delete(group);
		this.sql.exec("DELETE FROM group_messages WHERE grp = ?", group);
	}

	/**
	 * Before retention deletes log rows up to `upTo`, messages a group still
	 * owes keep their text, so retries and leases survive the trim.
	 */
	keepBeforeTrim(upTo: number): void {
		const owed = this.sql
			.exec<{ seq: number }>("SELECT DISTINCT seq FROM group_messages WHERE seq <= ? AND payload IS NULL", upTo)
			.toArray();
		for (const { seq } of owed) {
			const json = this.#messageJson(seq, null);
			if (json !== undefined) {
				this.sql.exec("UPDATE group_messages SET payload = ? WHERE seq = ? AND payload IS NULL", json, seq);
			}
		}
	}

	/**
	 * The next `max` messages of the log after the group's cursor that pass
	 * its filter; moves the cursor past them (and past what the filter
	 * skipped or retention trimmed), in one write.
	 */
	#takeFromLog(group: string, settings: GroupSettings, max: number): LogRow[] {
		const start = this.groups.cursor(group);
		let cursor = start;
		let filtered = 0;
		let expired = 0;
		if (cursor < this.log.first - 1) {
			expired = this.log.first - 1 - cursor;
			cursor = this.log.first - 1;
		}
		const taken: LogRow[] = [];
		while (taken.length < max && cursor < this.log.head) {
			const want = max - taken.length;
			const rows = this.log.read(cursor, settings.filter ? Math.min(TUNING.replayPageSize, want * 4) : want);
			if (rows.length === 0) break;
			for (const row of rows) {
				if (taken.length >= max) break;
				cursor = row.seq;
				if (settings.filter && !matchesFilter(settings.filter, attributesOf(row))) filtered++;
				else taken.push(row);
			}
		}
		if (cursor !== start || filtered > 0 || expired > 0) this.groups.advance(group, cursor, filtered, expired);
		return taken;
	}

	/** Whether a retry of the group may be due at `now`. */
	#retryDue(group: string, now: number): boolean {
		let at = this.#retryAt.get(group);
		if (at === undefined) {
			at = this.sql
				.exec<{ t: number | null }>(
					"SELECT MIN(due_at) AS t FROM group_messages WHERE grp = ? AND state = 'ready'",
					group,
				)
				.one().t;
			this.#retryAt.set(group, at);
		}
		return at !== null && at <= now;
	}

	#heldOf(group: string): Held {
		let held = this.#held.get(group);
		if (!held) {
			held = new Map();
			for (const r of this.sql.exec<{ owner: string; n: number }>(
				"SELECT owner, COUNT(*) AS n FROM group_messages WHERE grp = ? AND state = 'leased' GROUP BY owner",
				group,
			)) {
				held.set(r.owner, r.n);
			}
			this.#held.set(group, held);
		}
		return held;
	}

	/** Moves `owner`'s count of held messages by `by`. */
	#move(group: string, owner: string, by: number): void {
		const held = this.#heldOf(group);
		const n = (held.get(owner) ?? 0) + by;
		if (n > 0) held.set(owner, n);
		else held.delete(owner);
	}

	/** Keeps the group's one sweep timer at or before `deadline`; writes only when it must move sooner. */
	#armSweep(group: string, deadline: number): void {
		const at = this.#sweepAt.get(group);
		if (at !== undefined && at <= deadline) return;
		this.scheduler.schedule(TIMER_LEASE, group, deadline, null, true);
		this.#sweepAt.set(group, Math.min(deadline, at ?? deadline));
	}

	#select(where: string, group: string, arg: string | number): PendingRow[] {
		return this.sql
			.exec<PendingRow>(
				`SELECT seq, attempt, state, owner, payload, errors FROM group_messages WHERE grp = ? AND ${where}`,
				group,
				arg,
			)
			.toArray();
	}

	/** Ends a leased attempt as failed. */
	#fail(group: string, row: PendingRow, now: number, error: string | null, delayMs: number | undefined) {
		const settings = this.groups.settings(group) as GroupSettings;
		if (row.owner !== null) this.#move(group, row.owner, -1);
		const errors = withAttemptError(row.errors ?? null, { attempt: row.attempt, at: now, error, by: row.owner });
		if (row.attempt >= settings.max_retries + 1) {
			const json = this.#messageJson(row.seq, row.payload) ?? "null";
			this.sql.exec("DELETE FROM group_messages WHERE grp = ? AND seq = ?", group, row.seq);
			return this.deadLetters.add(
				group,
				{ seq: row.seq, attempts: row.attempt, error, errors, json },
				now,
				settings.dead_letter_topic,
			);
		}
		const at = now + (delayMs ?? retryDelay(settings, row.attempt));
		this.sql.exec(
			"UPDATE group_messages SET state = 'ready', owner = NULL, due_at = ?, last_error = ?, errors = ? WHERE grp = ? AND seq = ?",
			at,
			error,
			errors,
			group,
			row.seq,
		);
		this.groups.count(group, "retried", 1);
		const retryAt = this.#retryAt.get(group);
		if (retryAt !== undefined) this.#retryAt.set(group, retryAt === null ? at : Math.min(retryAt, at));
		// Wakes the group's holders when the retry is due.
		this.scheduler.schedule(TIMER_RETRY, timerKey(group, row.seq), at);
		return undefined;
	}

	#messageJson(seq: number, payload: string | null): string | undefined {
		if (payload !== null) return payload;
		const [row] = this.log.read(seq - 1, 1);
		return row && row.seq === seq ? renderMessage(this.topicJson(), row) : undefined;
	}
}

/** A message's attempt errors with one more, as JSON: the newest `LIMITS.attemptErrorsKept`. */
function withAttemptError(errors: string | null, failed: AttemptError): string {
	const list = errors === null ? [] : (JSON.parse(errors) as AttemptError[]);
	list.push(failed);
	return JSON.stringify(list.slice(-LIMITS.attemptErrorsKept));
}

function ownerMatch(owner: Owner): string {
	return typeof owner === "string" ? "owner = ?" : "owner LIKE ? || '%'";
}
function ownerArg(owner: Owner): string {
	return typeof owner === "string" ? owner : owner.prefix;
}

function delivery(messageJson: string, group: string, seq: number, attempt: number): Leased {
	// The message JSON ends with "}": add the delivery fields inside it.
	return { seq, attempt, json: `${messageJson.slice(0, -1)},"group":${JSON.stringify(group)},"attempt":${attempt}}` };
}
