/**
 * One shard of the topic catalog: the summary each topic last reported, by
 * name. Topics report from their alarm at most every `TUNING.catalogReportMs`,
 * so the catalog takes a write per active topic per period, never one per
 * publish, and a listing is at most that much behind.
 *
 * A deleted topic leaves a tombstone with the time it was created: a report
 * of that incarnation still in flight when it was deleted is ignored, while a
 * topic created again under the name (a later `created_at`) is listed.
 * @module
 */
import { DurableObject } from "cloudflare:workers";
import type { CatalogApi, CatalogPage, Env } from "../../protocol/internal.js";
import { TUNING } from "../../protocol/limits.js";
import type { TopicSummary } from "../../protocol/message.js";
import { type Grants, rightsOn } from "../../protocol/rights.js";

/** Tombstones are only needed while a late report could still arrive. */
const TOMBSTONE_KEEP_MS = 24 * 3600 * 1000;

export class Catalog extends DurableObject<Env> implements CatalogApi {
	readonly #sql: SqlStorage;

	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
		this.#sql = ctx.storage.sql;
		this.#sql.exec(
			`CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL, summary TEXT NOT NULL);
			 CREATE TABLE IF NOT EXISTS tombstones (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL, deleted_at INTEGER NOT NULL);`,
		);
	}

	report(summary: TopicSummary): void {
		const dead = this.#sql
			.exec<{ created_at: number }>("SELECT created_at FROM tombstones WHERE name = ?", summary.topic)
			.toArray()[0];
		if (dead && summary.created_at <= dead.created_at) return;
		this.#sql.exec(
			`INSERT INTO topics (name, created_at, summary) VALUES (?, ?, ?)
			 ON CONFLICT (name) DO UPDATE SET created_at = excluded.created_at, summary = excluded.summary
			 WHERE excluded.created_at >= topics.created_at`,
			summary.topic,
			summary.created_at,
			JSON.stringify(summary),
		);
	}

	remove(topic: string, createdAt: number): void {
		const now = Date.now();
		this.ctx.storage.transactionSync(() => {
			this.#sql.exec("DELETE FROM topics WHERE name = ? AND created_at <= ?", topic, createdAt);
			this.#sql.exec(
				`INSERT INTO tombstones (name, created_at, deleted_at) VALUES (?, ?, ?)
				 ON CONFLICT (name) DO UPDATE SET created_at = MAX(created_at, excluded.created_at), deleted_at = excluded.deleted_at`,
				topic,
				createdAt,
				now,
			);
			this.#sql.exec("DELETE FROM tombstones WHERE deleted_at < ?", now - TOMBSTONE_KEEP_MS);
		});
	}

	/**
	 * Up to `limit` topics after `after` whose names start with `prefix` and
	 * on which `grants` give `subscribe` or `admin`, reading at most
	 * `TUNING.catalogScanMax` rows.
	 */
	list(query: { prefix: string; after: string; limit: number; grants: Grants | null }): CatalogPage {
		const { prefix, after, limit, grants } = query;
		const from = after > prefix ? after : prefix;
		const topics: TopicSummary[] = [];
		let scanned = 0;
		let last: string | null = null;
		// `>=` the prefix but `>` after: a name equal to `after` was on the previous page.
		const rows = this.#sql.exec<{ name: string; summary: string }>(
			`SELECT name, summary FROM topics WHERE name ${from === after ? ">" : ">="} ? ORDER BY name`,
			from,
		);
		for (const row of rows) {
			if (!row.name.startsWith(prefix)) return { topics, stoppedAt: null };
			if (topics.length >= limit || scanned >= TUNING.catalogScanMax) return { topics, stoppedAt: last };
			scanned++;
			last = row.name;
			if (grants === null || visible(grants, row.name)) topics.push(JSON.parse(row.summary) as TopicSummary);
		}
		return { topics, stoppedAt: null };
	}
}

function visible(grants: Grants, topic: string): boolean {
	const rights = rightsOn(grants, topic);
	return rights.has("subscribe") || rights.has("admin");
}
