/**
 * The operator API as calls: topics (list, stats, settings, delete), groups
 * (create, change, delete, counts), dead letters (list, redrive, purge),
 * history pages and tokens. Same credentials and the same `TidingsError`s
 * as `Tidings`, through the same `Http`; the console and the `tidings` CLI
 * use it, so scripts see what they see. Kept out of the browser bundle of
 * `Tidings` (a page that only publishes and subscribes does not pay for it).
 * @module
 */
import type {
	DeadLetter,
	GroupInfo,
	HistoryPage,
	PublishInput,
	PublishResult,
	TopicList,
	TopicSettings,
	TopicStats,
} from "../protocol/message.js";
import type { Grants } from "../protocol/rights.js";
import type { GroupSettingsInput, TopicSettingsInput } from "../protocol/schema.js";
import { DEFAULTS } from "./defaults.js";
import { Http } from "./http.js";
import type { TidingsOptions } from "./types.js";

export type TidingsAdminOptions = Pick<TidingsOptions, "url" | "token" | "getToken" | "fetch" | "requestTimeoutMs">;

/** A page of a group's dead letters. */
export interface DeadLetterPage {
	/** Dead letters in the group in all. */
	count: number;
	messages: DeadLetter[];
}

/**
 * Operator calls over HTTP. Every method resolves with the API's answer or
 * rejects with a `TidingsError` (`code`, `message`, `status`), as documented
 * in docs/http-api.md.
 */
export class TidingsAdmin {
	readonly url: string;
	readonly #http: Http;

	constructor(options: TidingsAdminOptions) {
		this.url = options.url.replace(/\/+$/, "");
		this.#http = new Http(options, this.url, options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs);
	}

	/** One page of the topics that exist (a few seconds behind), by name. */
	topics(query: { prefix?: string; after?: string; limit?: number } = {}): Promise<TopicList> {
		return this.#json("GET", `/v1/topics${qs(query)}`);
	}

	/** Every topic (with `prefix`), page after page. */
	async *allTopics(query: { prefix?: string; limit?: number } = {}): AsyncGenerator<TopicList["topics"][number]> {
		let after = "";
		for (;;) {
			const page = await this.topics({ ...query, after });
			yield* page.topics;
			if (page.next_after === null) return;
			after = page.next_after;
		}
	}

	topic(topic: string): Promise<TopicStats> {
		return this.#json("GET", topicPath(topic));
	}

	configureTopic(topic: string, settings: TopicSettingsInput): Promise<{ topic: string; settings: TopicSettings }> {
		return this.#json("PUT", topicPath(topic), settings);
	}

	/** Deletes the topic: its messages, groups, keys and timers; its sockets close with 4410. */
	deleteTopic(topic: string): Promise<{ deleted: true; messages: number }> {
		return this.#json("DELETE", topicPath(topic));
	}

	/** Publishes up to 100 messages atomically (consecutive seqs), straight over HTTP: no outbox. */
	async publish(topic: string, messages: PublishInput[]): Promise<PublishResult[]> {
		return (await this.#json<{ messages: PublishResult[] }>("POST", `${topicPath(topic)}/messages`, { messages }))
			.messages;
	}

	history(topic: string, query: { after?: number; limit?: number } = {}): Promise<HistoryPage> {
		return this.#json("GET", `${topicPath(topic)}/messages${qs(query)}`);
	}

	async groups(topic: string): Promise<GroupInfo[]> {
		return (await this.#json<{ groups: GroupInfo[] }>("GET", `${topicPath(topic)}/groups`)).groups;
	}

	group(topic: string, group: string): Promise<GroupInfo> {
		return this.#json("GET", groupPath(topic, group));
	}

	/** Creates the group or changes its settings (the answer says which). */
	async putGroup(
		topic: string,
		group: string,
		settings: GroupSettingsInput = {},
	): Promise<GroupInfo & { created: boolean }> {
		const res = await this.#http.request("PUT", groupPath(topic, group), settings);
		return { ...((await res.json()) as GroupInfo), created: res.status === 201 };
	}

	deleteGroup(topic: string, group: string): Promise<{ deleted: true }> {
		return this.#json("DELETE", groupPath(topic, group));
	}

	deadLetters(topic: string, group: string, query: { after?: number; limit?: number } = {}): Promise<DeadLetterPage> {
		return this.#json("GET", `${groupPath(topic, group)}/dlq${qs(query)}`);
	}

	/** Puts dead letters back into the group (all, or these seqs), attempts starting again. */
	redrive(topic: string, group: string, seqs?: number[]): Promise<{ redriven: number }> {
		return this.#json("POST", `${groupPath(topic, group)}/dlq/redrive`, seqs ? { seqs } : {});
	}

	purgeDeadLetters(topic: string, group: string): Promise<{ purged: number }> {
		return this.#json("DELETE", `${groupPath(topic, group)}/dlq`);
	}

	/** Mints a scoped token (the admin key only). */
	mintToken(request: { topics: Grants; ttl_s?: number; sub?: string }): Promise<{ token: string; expires_at: number }> {
		return this.#json("POST", "/v1/tokens", request);
	}

	async #json<T>(method: string, path: string, body?: unknown): Promise<T> {
		return (await (await this.#http.request(method, path, body)).json()) as T;
	}
}

function topicPath(topic: string): string {
	return `/v1/topics/${encodeURIComponent(topic)}`;
}

function groupPath(topic: string, group: string): string {
	return `${topicPath(topic)}/groups/${encodeURIComponent(group)}`;
}

function qs(query: Record<string, string | number | undefined>): string {
	const parts = Object.entries(query)
		.filter(([, v]) => v !== undefined && v !== "")
		.map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`);
	return parts.length > 0 ? `?${parts.join("&")}` : "";
}
