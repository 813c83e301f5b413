/**
 * Where the catalog keeps a topic, and how a listing reads all of it. The
 * topic list is spread over `TUNING.catalogShards` objects by a hash of the
 * name, so no single object takes every topic's reports; a listing asks
 * every shard for its next page and merges them by name.
 * @module
 */
import type { CatalogApi, CatalogPage } from "../../protocol/internal.js";
import { TUNING } from "../../protocol/limits.js";
import type { TopicList, TopicSummary } from "../../protocol/message.js";
import type { Grants } from "../../protocol/rights.js";

/** The shard a topic reports to: FNV-1a of its name, modulo the shard count. */
export function catalogShardOf(topic: string): string {
	let h = 0x811c9dc5;
	for (let i = 0; i < topic.length; i++) {
		h ^= topic.charCodeAt(i);
		h = Math.imul(h, 0x01000193);
	}
	return `catalog-${(h >>> 0) % TUNING.catalogShards}`;
}

export interface ListQuery {
	prefix: string;
	after: string;
	limit: number;
	/** Only topics these grants give `subscribe` or `admin` on; null: every topic. */
	grants: Grants | null;
}

/**
 * One page of the topic list, merged from every shard. A shard that stopped
 * early (its page was full, or it read its scan budget) has names after
 * where it stopped that this page has not seen, so the page ends there.
 */
export async function listTopics(ns: DurableObjectNamespace<CatalogApi>, query: ListQuery): Promise<TopicList> {
	const pages: CatalogPage[] = await Promise.all(
		Array.from({ length: TUNING.catalogShards }, (_, i) => ns.getByName(`catalog-${i}`).list(query)),
	);
	let bound: string | undefined;
	for (const p of pages) if (p.stoppedAt !== null && (bound === undefined || p.stoppedAt < bound)) bound = p.stoppedAt;
	const all: TopicSummary[] = pages
		.flatMap((p) => p.topics)
		.filter((t) => bound === undefined || t.topic <= bound)
		.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
	const topics = all.slice(0, query.limit);
	const last = topics.at(-1)?.topic;
	if (all.length > query.limit && last !== undefined) return { topics, next_after: last };
	return { topics, next_after: bound ?? null };
}
