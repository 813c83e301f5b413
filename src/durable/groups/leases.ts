/**
 * Deliveries of consumer groups: each message of the topic goes to one
 * holder of a group at a time (a member socket, a pull, a push request), is
 * retried with backoff until acknowledged, and is dead-lettered after
 * `max_retries` failed retries.
 *
 * A message a group takes gets a row in `group_messages` (leased to an owner
 * until a deadline, or ready for a retry at a time) until it is acked or
 * dead-lettered. Every delivery counts as an attempt; a nack, an ack timeout
 * and a member that goes away with the message all end the attempt as
 * failed. Attempt `max_retries + 1` failing dead-letters the message, once.
 * Lease deadlines and retry times are timers on the object's one scheduler:
 * one sweep timer per group (at its earliest deadline) and one per retry.
 * @module
 */
import { matchesFilter } from "../../protocol/filter.js";
import { OWNER_PREFIX } from "../../protocol/internal.js";
import { TUNING } from "../../protocol/limits.js";
import type { DeadLetter, GroupSettings } from "../../protocol/message.js";
import { attributesOf, renderMessage, type TopicLog } from "../log/topic-log.js";
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

export class Leases {
	/** When each group's sweep timer is due, as far as this instance set it (a lower bound is fine: a sweep re-arms). */
	readonly #sweepAt = new Map<string, number>();

	constructor(
		private readonly sql: SqlStorage,
		private readonly log: TopicLog,
		private readonly scheduler: Scheduler,
		private readonly groups: GroupRegistry,
		private readonly deadLetters: DeadLetters,
		private readonly topicJson: () => string,
	) {}

	/** Drops cached sweep times, after a rolled-back transaction. */
	forget(): void {
		this.#sweepAt.clear();
	}

	/** Messages `owner` holds in `group`; with `prefix`, every owner whose id starts with it. */
	inFlight(group: string, owner: string, prefix = false): number {
		return this.sql
			.exec<{ n: number }>(
				`SELECT COUNT(*) AS n FROM group_messages WHERE grp = ? AND state = 'leased' AND ${prefix ? "owner LIKE ? || '%'" : "owner = ?"}`,
				group,
				owner,
			)
			.one().n;
	}

	/**
	 * Leases up to `max` messages to `owner` until `now + leaseMs`: due retries
	 * first (lowest seq first), then the log after the cursor. Call inside a
	 * transaction.
	 */
	take(group: string, owner: string, max: number, leaseMs: number, now: number): Leased[] {
		const settings = this.groups.settings(group);
		if (!settings) return [];
		const out: Leased[] = [];
		const until = now + leaseMs;
		const retries = this.sql
			.exec<PendingRow>(
				`SELECT seq, attempt, state, owner, payload FROM group_messages
				 WHERE grp = ? AND state = 'ready' AND available_at <= ? ORDER BY seq LIMIT ?`,
				group,
				now,
				max,
			)
			.toArray();
		for (const r of retries) {
			const json = this.#messageJson(r.seq, r.payload);
			if (json === undefined) {
				// Neither in the log nor kept: nothing left to deliver.
				this.sql.exec("DELETE FROM group_messages WHERE grp = ? AND seq = ?", group, r.seq);
				continue;
			}
			this.sql.exec(
				"UPDATE group_messages SET state = 'leased', owner = ?, lease_until = ?, attempt = attempt + 1 WHERE grp = ? AND seq = ?",
				owner,
				until,
				group,
				r.seq,
			);
			this.scheduler.cancel(TIMER_RETRY, timerKey(group, r.seq));
			this.#armSweep(group, until);
			out.push(delivery(json, group, r.seq, r.attempt + 1));
		}
		if (out.length >= max) return out;

		const startCursor = this.groups.cursor(group);
		let cursor = startCursor;
		let filtered = 0;
		let expired = 0;
		if (cursor < this.log.first - 1) {
			expired = this.log.first - 1 - cursor;
			cursor = this.log.first - 1;
		}
		while (out.length < max && cursor < this.log.head) {
			const rows = this.log.read(cursor, Math.min(TUNING.replayPageSize, (max - out.length) * 4));
			if (rows.length === 0) break;
			for (const row of rows) {
				if (out.length >= max) break;
				cursor = row.seq;
				if (settings.filter && !matchesFilter(settings.filter, attributesOf(row))) {
					filtered++;
					continue;
				}
				this.sql.exec(
					"INSERT INTO group_messages (grp, seq, attempt, state, owner, lease_until, available_at) VALUES (?, ?, 1, 'leased', ?, ?, ?)",
					group,
					row.seq,
					owner,
					until,
					now,
				);
				this.#armSweep(group, until);
				out.push(delivery(renderMessage(this.topicJson(), row), group, row.seq, 1));
			}
		}
		if (cursor !== startCursor || filtered > 0 || expired > 0) {
			this.sql.exec(
				"UPDATE groups SET cursor = ?, filtered = filtered + ?, expired = expired + ? WHERE name = ?",
				cursor,
				filtered,
				expired,
				group,
			);
		}
		return out;
	}

	/** Settles leased messages held by `owner`. Returns the seqs settled. */
	ack(group: string, seqs: number[], owner: Owner): number[] {
		const done: number[] = [];
		for (const seq of seqs) {
			if (!this.#leased(group, seq, owner)) continue;
			// The lease sweep finds nothing for it later: no timer row to delete per message.
			this.sql.exec("DELETE FROM group_messages WHERE grp = ? AND seq = ?", group, seq);
			done.push(seq);
		}
		if (done.length > 0) this.sql.exec("UPDATE groups SET acked = acked + ? WHERE name = ?", done.length, group);
		return done;
	}

	/** Ends leased attempts as failed: retried after a delay, or dead-lettered. Returns the seqs settled. */
	nack(group: string, seqs: number[], now: number, opts: { delayMs?: number; error?: string; owner: Owner }) {
		const done: number[] = [];
		const dead: DeadLetter[] = [];
		for (const seq of seqs) {
			const row = this.#leased(group, seq, opts.owner);
			if (!row) continue;
			const d = this.#fail(group, row, now, opts.error ?? null, opts.delayMs);
			if (d) dead.push(d);
			done.push(seq);
		}
		return { done, dead };
	}

	/**
	 * The lease sweep: every lease of the group whose deadline passed is a
	 * failed attempt; then the sweep re-arms at the next deadline.
	 */
	expireDue(group: string, now: number): number {
		this.#sweepAt.delete(group);
		const rows = this.#select("state = 'leased' AND lease_until <= ?", group, now);
		for (const row of rows) this.#fail(group, row, now, "ack timeout", undefined);
		const next = this.sql
			.exec<{ t: number | null }>(
				"SELECT MIN(lease_until) AS t FROM group_messages WHERE grp = ? AND state = 'leased'",
				group,
			)
			.one().t;
		if (next !== null) this.#armSweep(group, next);
		return rows.length;
	}

	/** A holder went away: every message it held is a failed attempt, retried at once. */
	release(group: string, owner: string, now: number): DeadLetter[] {
		const dead: DeadLetter[] = [];
		for (const row of this.#select("owner = ? AND state = 'leased'", group, owner)) {
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
		for (const { seq } of this.sql.exec<{ seq: number }>("SELECT seq FROM group_messages WHERE grp = ?", group)) {
			this.scheduler.cancel(TIMER_RETRY, timerKey(group, seq));
		}
		this.scheduler.cancel(TIMER_LEASE, group);
		this.#sweepAt.delete(group);
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
				`SELECT seq, attempt, state, owner, payload FROM group_messages WHERE grp = ? AND ${where}`,
				group,
				arg,
			)
			.toArray();
	}

	#leased(group: string, seq: number, owner: Owner): PendingRow | undefined {
		const [row] = this.#select("seq = ?", group, seq);
		if (row?.state !== "leased") return undefined;
		const mine = typeof owner === "string" ? row.owner === owner : row.owner?.startsWith(owner.prefix);
		return mine ? row : undefined;
	}

	#fail(group: string, row: PendingRow, now: number, error: string | null, delayMs: number | undefined) {
		const settings = this.groups.settings(group) as GroupSettings;
		if (row.attempt >= settings.max_retries + 1) {
			const json = this.#messageJson(row.seq, row.payload) ?? "null";
			this.sql.exec("DELETE FROM group_messages WHERE grp = ? AND seq = ?", group, row.seq);
			return this.deadLetters.add(
				group,
				{ seq: row.seq, attempts: row.attempt, error, json },
				now,
				settings.dead_letter_topic,
			);
		}
		const at = now + (delayMs ?? retryDelay(settings, row.attempt));
		this.sql.exec(
			"UPDATE group_messages SET state = 'ready', owner = NULL, lease_until = NULL, available_at = ?, last_error = ? WHERE grp = ? AND seq = ?",
			at,
			error,
			group,
			row.seq,
		);
		this.sql.exec("UPDATE groups SET retried = retried + 1 WHERE name = ?", group);
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

function delivery(messageJson: string, group: string, seq: number, attempt: number): Leased {
	// The message JSON ends with "}": add the delivery fields inside it.
	return { seq, attempt, json: `${messageJson.slice(0, -1)},"group":${JSON.stringify(group)},"attempt":${attempt}}` };
}
