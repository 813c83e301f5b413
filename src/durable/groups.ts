/**
 * Consumer groups: each message of the topic goes to one member of a group
 * at a time, is retried with backoff until acknowledged, and is
 * dead-lettered after `max_retries` failed retries.
 *
 * A group reads the log through its cursor. A message it takes gets a row in
 * `group_messages` (leased to an owner until a deadline, or ready for a retry
 * at a time) until it is acked or dead-lettered. Lease expiries and retry
 * times are timers on the object's one scheduler.
 *
 * Every delivery counts as an attempt; a nack, an ack timeout and a member
 * that goes away with the message all end the attempt as failed. Attempt
 * `max_retries + 1` failing dead-letters the message, once: the row moves to
 * `dead_letters` in the same transaction.
 * @module
 */
import { matchesFilter } from "../protocol/filter.js";
import { DEFAULT_GROUP_SETTINGS, LIMITS, TUNING } from "../protocol/limits.js";
import type { Attributes, DeadLetter, GroupCounts, GroupSettings, Message } from "../protocol/message.js";
import type { GroupSettingsInput, PublishRecord } from "../protocol/schema.js";
import type { Scheduler } from "./scheduler.js";
import { type LogRow, renderMessage, type TopicLog } from "./topic-log.js";

/** One per group, at its earliest lease deadline: sweeps every lease that ran out. */
export const TIMER_LEASE = "lease";
export const TIMER_RETRY = "retry";
/** Forwarding a dead letter to the group's `dead_letter_topic`. */
export const TIMER_DEAD_LETTER = "dead-letter";

/** What a `dead-letter` timer carries: the publish to make on the dead-letter topic. */
export interface DeadLetterForward {
	topic: string;
	record: PublishRecord;
}

type GroupRow = {
	name: string;
	settings: string;
	cursor: number;
	acked: number;
	retried: number;
	filtered: number;
	expired: number;
};

type PendingRow = {
	seq: number;
	attempt: number;
	state: string;
	owner: string | null;
	payload: string | null;
};

/** Who may settle a lease: its exact owner id, or any owner id with a prefix (`pull:` for HTTP acks without a lease id). */
export type Owner = string | { prefix: string };

/** Owner ids of pull leases start with this; one id per pull request. */
export const PULL_OWNER_PREFIX = "pull:";

/** One leased message, rendered for its member. */
export interface Leased {
	seq: number;
	attempt: number;
	/** The message JSON with `group` and `attempt` added. */
	json: string;
}

/** Timer keys join group and seq with a character names cannot hold. */
export function timerKey(group: string, seq: number): string {
	return `${group}/${seq}`;
}
export function parseTimerKey(key: string): { group: string; seq: number } {
	const i = key.lastIndexOf("/");
	return { group: key.slice(0, i), seq: Number(key.slice(i + 1)) };
}

export function retryDelay(s: GroupSettings, attempt: number, random = Math.random): number {
	if (s.backoff === "fixed") return s.retry_delay_ms;
	const d = Math.min(s.retry_delay_ms * 2 ** Math.max(0, attempt - 1), s.max_retry_delay_ms);
	return s.jitter ? Math.round(d / 2 + random() * (d / 2)) : d;
}

export class ConsumerGroups {
	/** Parsed settings per group, cached for the life of the instance. */
	readonly #settings = new Map<string, GroupSettings>();
	/** When each group's sweep timer is due, as far as this instance set it (a lower bound is fine: a sweep re-arms). */
	readonly #sweepAt = new Map<string, number>();

	constructor(
		private readonly sql: SqlStorage,
		private readonly log: TopicLog,
		private readonly scheduler: Scheduler,
		private readonly topicJson: () => string,
	) {}

	/** Drops cached settings and sweep times, after a rolled-back transaction. */
	forgetSettings(): void {
		this.#settings.clear();
		this.#sweepAt.clear();
	}

	names(): string[] {
		return this.sql
			.exec<{ name: string }>("SELECT name FROM groups ORDER BY name")
			.toArray()
			.map((r) => r.name);
	}

	settings(group: string): GroupSettings | undefined {
		let s = this.#settings.get(group);
		if (!s) {
			const row = this.sql.exec<{ settings: string }>("SELECT settings FROM groups WHERE name = ?", group).toArray()[0];
			if (!row) return undefined;
			s = JSON.parse(row.settings) as GroupSettings;
			this.#settings.set(group, s);
		}
		return s;
	}

	/** Creates a group (starting at the head or the oldest retained message) or changes its settings. */
	upsert(group: string, input: GroupSettingsInput): { settings: GroupSettings; created: boolean } {
		const current = this.settings(group);
		const merged: GroupSettings = { ...DEFAULT_GROUP_SETTINGS, ...current };
		for (const [k, value] of Object.entries(input)) {
			if (value === undefined) continue;
			if (value === null) delete (merged as unknown as Record<string, unknown>)[k];
			else (merged as unknown as Record<string, unknown>)[k] = value;
		}
		if (current) {
			this.sql.exec("UPDATE groups SET settings = ? WHERE name = ?", JSON.stringify(merged), group);
		} else {
			const cursor = merged.start === "earliest" ? this.log.first - 1 : this.log.head;
			this.sql.exec(
				"INSERT INTO groups (name, settings, cursor) VALUES (?, ?, ?)",
				group,
				JSON.stringify(merged),
				cursor,
			);
		}
		this.#settings.set(group, merged);
		return { settings: merged, created: !current };
	}

	delete(group: string): boolean {
		const existed = this.sql.exec("DELETE FROM groups WHERE name = ?", group).rowsWritten > 0;
		for (const { seq } of this.sql.exec<{ seq: number }>("SELECT seq FROM group_messages WHERE grp = ?", group)) {
			this.scheduler.cancel(TIMER_RETRY, timerKey(group, seq));
		}
		this.scheduler.cancel(TIMER_LEASE, group);
		this.#sweepAt.delete(group);
		this.sql.exec("DELETE FROM group_messages WHERE grp = ?", group);
		this.sql.exec("DELETE FROM dead_letters WHERE grp = ?", group);
		this.#settings.delete(group);
		return existed;
	}

	counts(group: string): GroupCounts | undefined {
		const g = this.sql.exec<GroupRow>("SELECT * FROM groups WHERE name = ?", group).toArray()[0];
		if (!g) return undefined;
		const byState = this.sql
			.exec<{ state: string; n: number }>(
				"SELECT state, COUNT(*) AS n FROM group_messages WHERE grp = ? GROUP BY state",
				group,
			)
			.toArray();
		const n = (state: string) => byState.find((r) => r.state === state)?.n ?? 0;
		const dead = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM dead_letters WHERE grp = ?", group).one().n;
		return {
			pending: Math.max(0, this.log.head - Math.max(g.cursor, this.log.first - 1)) + n("ready"),
			in_flight: n("leased"),
			acked: g.acked,
			retried: g.retried,
			dead,
			filtered: g.filtered,
			expired: g.expired,
		};
	}

	cursor(group: string): number {
		return this.sql.exec<{ cursor: number }>("SELECT cursor FROM groups WHERE name = ?", group).one().cursor;
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
		const settings = this.settings(group);
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

		const startCursor = this.cursor(group);
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

	/**
	 * Settles leased messages held by `owner` (an owner id, or every owner
	 * whose id starts with a prefix). Returns the seqs settled.
	 */
	ack(group: string, seqs: number[], owner: Owner): number[] {
		const done: number[] = [];
		for (const seq of seqs) {
			const row = this.#leased(group, seq, owner);
			if (!row) continue;
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
		const rows = this.sql
			.exec<PendingRow>(
				"SELECT seq, attempt, state, owner, payload FROM group_messages WHERE grp = ? AND state = 'leased' AND lease_until <= ?",
				group,
				now,
			)
			.toArray();
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

	/** Keeps the group's one sweep timer at or before `deadline`; writes only when it must move sooner. */
	#armSweep(group: string, deadline: number): void {
		const at = this.#sweepAt.get(group);
		if (at !== undefined && at <= deadline) return;
		this.scheduler.schedule(TIMER_LEASE, group, deadline, null, true);
		this.#sweepAt.set(group, Math.min(deadline, at ?? deadline));
	}

	/** A member went away: every message it held is a failed attempt, retried at once. */
	release(group: string, owner: string, now: number): DeadLetter[] {
		const rows = this.sql
			.exec<PendingRow>(
				"SELECT seq, attempt, state, owner, payload FROM group_messages WHERE grp = ? AND owner = ? AND state = 'leased'",
				group,
				owner,
			)
			.toArray();
		const dead: DeadLetter[] = [];
		for (const row of rows) {
			const d = this.#fail(group, row, now, "consumer disconnected", 0);
			if (d) dead.push(d);
		}
		return dead;
	}

	/**
	 * After a restart, sockets from before are gone without a close event:
	 * what their members held goes back to the group now, instead of after
	 * the ack timeout. Pull and push leases are not socket-bound and stay.
	 */
	releaseOrphans(connected: Set<string>, now: number): string[] {
		const owners = this.sql
			.exec<{ grp: string; owner: string }>(
				"SELECT DISTINCT grp, owner FROM group_messages WHERE state = 'leased' AND owner LIKE 'member:%'",
			)
			.toArray()
			.filter((r) => !connected.has(r.owner));
		for (const { grp, owner } of owners) this.release(grp, owner, now);
		return [...new Set(owners.map((o) => o.grp))];
	}

	deadLetters(group: string, after: number, limit: number): { count: number; messages: DeadLetter[] } {
		const count = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM dead_letters WHERE grp = ?", group).one().n;
		const messages: DeadLetter[] = [];
		let bytes = 0;
		// A cursor over rows, read one at a time, so the listing stops near pageMaxBytes.
		for (const r of this.sql.exec<{
			seq: number;
			attempts: number;
			last_error: string | null;
			dead_at: number;
			message: string;
		}>(
			"SELECT seq, attempts, last_error, dead_at, message FROM dead_letters WHERE grp = ? AND seq > ? ORDER BY seq LIMIT ?",
			group,
			after,
			limit,
		)) {
			if (messages.length > 0 && bytes + r.message.length > LIMITS.pageMaxBytes) break;
			bytes += r.message.length;
			messages.push({ ...r, message: JSON.parse(r.message) as Message });
		}
		return { count, messages };
	}

	/** Puts dead letters back into the group as fresh messages (attempts start again), in SQL: their text never enters memory. */
	redrive(group: string, now: number, seqs?: number[]): number {
		const where = seqs ? ` AND seq IN (${seqs.map(() => "?").join(",")})` : "";
		const args = seqs ?? [];
		const n = this.#countDead(group, where, args);
		this.sql.exec(
			`INSERT INTO group_messages (grp, seq, attempt, state, available_at, payload)
			 SELECT grp, seq, 0, 'ready', ?, message FROM dead_letters WHERE grp = ?${where}
			 ON CONFLICT (grp, seq) DO NOTHING`,
			now,
			group,
			...args,
		);
		this.sql.exec(`DELETE FROM dead_letters WHERE grp = ?${where}`, group, ...args);
		return n;
	}

	purge(group: string, seqs?: number[]): number {
		const where = seqs ? ` AND seq IN (${seqs.map(() => "?").join(",")})` : "";
		const args = seqs ?? [];
		// Counted first: rowsWritten also counts index entries.
		const n = this.#countDead(group, where, args);
		this.sql.exec(`DELETE FROM dead_letters WHERE grp = ?${where}`, group, ...args);
		return n;
	}

	#countDead(group: string, where: string, args: number[]): number {
		return this.sql
			.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM dead_letters WHERE grp = ?${where}`, group, ...args)
			.one().n;
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

	#leased(group: string, seq: number, owner?: Owner): PendingRow | undefined {
		const row = this.sql
			.exec<PendingRow>(
				"SELECT seq, attempt, state, owner, payload FROM group_messages WHERE grp = ? AND seq = ?",
				group,
				seq,
			)
			.toArray()[0];
		if (row?.state !== "leased") return undefined;
		if (owner === undefined) return row;
		const mine = typeof owner === "string" ? row.owner === owner : row.owner?.startsWith(owner.prefix);
		return mine ? row : undefined;
	}

	#fail(group: string, row: PendingRow, now: number, error: string | null, delayMs: number | undefined) {
		const settings = this.settings(group) as GroupSettings;
		if (row.attempt >= settings.max_retries + 1) {
			const json = this.#messageJson(row.seq, row.payload) ?? "null";
			this.sql.exec("DELETE FROM group_messages WHERE grp = ? AND seq = ?", group, row.seq);
			const message = JSON.parse(json) as Message;
			if (settings.dead_letter_topic) {
				// Forwarded by a timer in this same transaction: the dead letter and
				// its forward are stored together, and the key makes a repeat a no-op.
				const forward: DeadLetterForward = {
					topic: settings.dead_letter_topic,
					record: deadLetterRecord(message, group, row.attempt, error, now),
				};
				this.scheduler.schedule(TIMER_DEAD_LETTER, `${group}/${row.seq}/${now}`, now, JSON.stringify(forward));
			}
			this.sql.exec(
				`INSERT INTO dead_letters (grp, seq, attempts, last_error, dead_at, message) VALUES (?, ?, ?, ?, ?, ?)
				 ON CONFLICT (grp, seq) DO UPDATE SET attempts = excluded.attempts, last_error = excluded.last_error,
				   dead_at = excluded.dead_at, message = excluded.message`,
				group,
				row.seq,
				row.attempt,
				error,
				now,
				json,
			);
			return { seq: row.seq, attempts: row.attempt, last_error: error, dead_at: now, message };
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
		// Wakes the group's members when the retry is due.
		this.scheduler.schedule(TIMER_RETRY, timerKey(group, row.seq), at);
		return undefined;
	}

	#messageJson(seq: number, payload: string | null): string | undefined {
		if (payload !== null) return payload;
		const [row] = this.log.read(seq - 1, 1);
		return row && row.seq === seq ? renderMessage(this.topicJson(), row) : undefined;
	}
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
	// hasOwn, not `in`: an attribute named constructor or toString is not an origin field.
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

function attributesOf(row: LogRow): Attributes {
	return row.attributes === null ? {} : (JSON.parse(row.attributes) as Attributes);
}

function delivery(messageJson: string, group: string, seq: number, attempt: number): Leased {
	// The message JSON ends with "}": add the delivery fields inside it.
	return { seq, attempt, json: `${messageJson.slice(0, -1)},"group":${JSON.stringify(group)},"attempt":${attempt}}` };
}
