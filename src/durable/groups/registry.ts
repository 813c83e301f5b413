/**
 * The consumer groups of a topic: their settings, their cursors into the log
 * and their counters. A group reads the log through its cursor (the last seq
 * it took); what it took and has not settled is in `leases.ts`, what it gave
 * up on in `dead-letters.ts`.
 * @module
 */
import { DEFAULT_GROUP_SETTINGS } from "../../protocol/limits.js";
import type { GroupCounts, GroupSettings } from "../../protocol/message.js";
import type { GroupSettingsInput } from "../../protocol/schema.js";
import type { TopicLog } from "../log/topic-log.js";

type GroupRow = {
	name: string;
	settings: string;
	cursor: number;
	acked: number;
	retried: number;
	filtered: number;
	expired: number;
};

export class GroupRegistry {
	/** Parsed settings per group, cached for the life of the instance. */
	readonly #settings = new Map<string, GroupSettings>();
	/** Group names, mirrored from storage: every publish wakes each group. */
	#names: string[];
	/** Cursors, mirrored from storage: every dispatch reads them. */
	readonly #cursors = new Map<string, number>();

	constructor(
		private readonly sql: SqlStorage,
		private readonly log: TopicLog,
	) {
		this.#names = this.#readNames();
	}

	/** Drops what is cached, after a rolled-back transaction. */
	forget(): void {
		this.#settings.clear();
		this.#cursors.clear();
		this.#names = this.#readNames();
	}

	get names(): readonly string[] {
		return this.#names;
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
			this.#names = this.#readNames();
		}
		this.#settings.set(group, merged);
		return { settings: merged, created: !current };
	}

	/** Removes the group's row; its deliveries and dead letters are removed by their owners. */
	delete(group: string): boolean {
		const existed = this.sql.exec("DELETE FROM groups WHERE name = ?", group).rowsWritten > 0;
		this.#settings.delete(group);
		this.#cursors.delete(group);
		this.#names = this.#readNames();
		return existed;
	}

	counts(group: string, dead: number): GroupCounts | undefined {
		const g = this.sql.exec<GroupRow>("SELECT * FROM groups WHERE name = ?", group).toArray()[0];
		if (!g) return undefined;
		const byState = this.sql
			.exec<{ state: string; n: number }>(
				"SELECT state, COUNT(*) AS n FROM group_messages WHERE grp = ? GROUP BY state",
				group,
			)
			.toArray();
		const n = (state: string) => byState.find((r) => r.state === state)?.n ?? 0;
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
		let cursor = this.#cursors.get(group);
		if (cursor === undefined) {
			cursor = this.sql.exec<{ cursor: number }>("SELECT cursor FROM groups WHERE name = ?", group).one().cursor;
			this.#cursors.set(group, cursor);
		}
		return cursor;
	}

	/** Moves the cursor to `cursor`, counting what the filter skipped and what retention trimmed first. */
	advance(group: string, cursor: number, filtered: number, expired: number): void {
		this.sql.exec(
			"UPDATE groups SET cursor = ?, filtered = filtered + ?, expired = expired + ? WHERE name = ?",
			cursor,
			filtered,
			expired,
			group,
		);
		this.#cursors.set(group, cursor);
	}

	/** Adds to one of the group's settle counters. */
	count(group: string, counter: "acked" | "retried", n: number): void {
		this.sql.exec(`UPDATE groups SET ${counter} = ${counter} + ? WHERE name = ?`, n, group);
	}

	#readNames(): string[] {
		return this.sql
			.exec<{ name: string }>("SELECT name FROM groups ORDER BY name")
			.toArray()
			.map((r) => r.name);
	}
}
