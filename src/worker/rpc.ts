/**
 * The RPC entrypoint for other Workers. A Worker with a service binding to
 * `TidingsRpc` publishes, pulls and acks with plain method calls, no HTTP in
 * between:
 *
 * ```toml
 * [[services]]
 * binding = "TIDINGS"
 * service = "tidings"
 * entrypoint = "TidingsRpc"
 * ```
 *
 * A service binding exists only between Workers of the same account, so calls
 * carry the caller's full authority. Inputs go through the same schemas as
 * HTTP; a refusal (bad input, no such group) throws an Error whose message is
 * `<code>: <message>`, with the code of the HTTP error contract.
 * @module
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import * as v from "valibot";
import { listTopics } from "../durable/catalog/shards.js";
import { type Failure, fail, type Result } from "../protocol/internal.js";
import type {
	GroupDelivery,
	PublishOptions,
	PublishResult,
	SeqList,
	TopicList,
	TopicStats,
} from "../protocol/message.js";
import {
	AckBodySchema,
	describeIssues,
	GroupName,
	NackBodySchema,
	PublishBatchSchema,
	PublishItemSchema,
	PullBodySchema,
	TopicListQuerySchema,
	TopicName,
} from "../protocol/schema.js";
import { type Env, topicStub } from "./env.js";

/** The options of `publish` over RPC: the publish fields beside `data`, camelCase. */
export type RpcPublishOptions = PublishOptions;

/** The one mapping from a refusal to what an RPC caller catches. */
function rpcError({ error }: Failure): Error {
	return new Error(`${error.code}: ${error.message}`);
}

function orRpcError<T>(result: Result<T>): T {
	if (result.ok) return result.value;
	throw rpcError(result);
}

function parse<S extends v.GenericSchema>(schema: S, input: unknown, what: string): v.InferOutput<S> {
	const r = v.safeParse(schema, input);
	if (r.success) return r.output;
	const { code, message } = describeIssues(r.issues, `${what}: `);
	throw rpcError(fail(code, message));
}

export class TidingsRpc extends WorkerEntrypoint<Env> {
	#topic(topic: string) {
		return topicStub(this.env, parse(TopicName, topic, "topic"));
	}

	/** One page of the topics that exist, by name (a few seconds behind; see docs/http-api.md#topic-list). */
	async listTopics(query: { prefix?: string; after?: string; limit?: number } = {}): Promise<TopicList> {
		const q = parse(
			TopicListQuerySchema,
			{
				...(query.prefix === undefined ? {} : { prefix: query.prefix }),
				...(query.after === undefined ? {} : { after: query.after }),
				...(query.limit === undefined ? {} : { limit: String(query.limit) }),
			},
			"query",
		);
		return listTopics(this.env.CATALOG, { ...q, grants: null });
	}

	/** A topic's stats, settings and groups; `not_found` for a topic never written. */
	async topicStats(topic: string): Promise<TopicStats> {
		// The RPC stub's mapped type of a filter loses its readonly-ness; the value is a TopicStats.
		return orRpcError(await this.#topic(topic).stats()) as unknown as TopicStats;
	}

	/** Deletes a topic and everything in it; its sockets close with 4410 and the name starts again from seq 1. */
	async deleteTopic(topic: string): Promise<{ deleted: true; messages: number }> {
		return orRpcError(await this.#topic(topic).destroy());
	}

	/** Publishes one message. */
	async publish(topic: string, data: unknown, options: RpcPublishOptions = {}): Promise<PublishResult> {
		const stub = this.#topic(topic);
		const { delayMs, ...rest } = options;
		const record = parse(
			PublishItemSchema,
			{ data, ...rest, ...(delayMs === undefined ? {} : { delay_ms: delayMs }) },
			"message",
		);
		const [result] = orRpcError(await stub.publish([record]));
		return result as PublishResult;
	}

	/** Publishes up to 100 messages atomically, with consecutive seqs. */
	async publishBatch(topic: string, messages: unknown[]): Promise<PublishResult[]> {
		const stub = this.#topic(topic);
		return orRpcError(await stub.publish(parse(PublishBatchSchema, { messages }, "batch").messages));
	}

	/** Leases up to `max` messages of a group; pass `lease` to ack or nack them so only this pull's leases settle. */
	async pull(
		topic: string,
		group: string,
		options: { max?: number; ackTimeoutMs?: number } = {},
	): Promise<{ lease: string; messages: GroupDelivery[] }> {
		const stub = this.#topic(topic);
		const g = parse(GroupName, group, "group");
		const { max, ack_timeout_ms } = parse(
			PullBodySchema,
			{ max: options.max, ...(options.ackTimeoutMs === undefined ? {} : { ack_timeout_ms: options.ackTimeoutMs }) },
			"pull",
		);
		return JSON.parse(orRpcError(await stub.pull(g, max, ack_timeout_ms))) as {
			lease: string;
			messages: GroupDelivery[];
		};
	}

	/** Settles leased messages (seqs, or inclusive `[first, last]` ranges); answers the seqs that were settled. */
	async ack(topic: string, group: string, seqs: SeqList, options: { lease?: string } = {}): Promise<number[]> {
		const stub = this.#topic(topic);
		const g = parse(GroupName, group, "group");
		const body = parse(
			AckBodySchema,
			{ seqs, ...(options.lease === undefined ? {} : { lease: options.lease }) },
			"ack",
		);
		return orRpcError(await stub.ack(g, body.seqs, body.lease)).acked;
	}

	/** Fails leased attempts: retried after `delayMs` (or the group's backoff), or dead-lettered. */
	async nack(
		topic: string,
		group: string,
		seqs: SeqList,
		options: { delayMs?: number; error?: string; lease?: string } = {},
	): Promise<{ nacked: number[]; dead: number[] }> {
		const stub = this.#topic(topic);
		const g = parse(GroupName, group, "group");
		const { seqs: valid, ...rest } = parse(
			NackBodySchema,
			{
				seqs,
				...(options.delayMs === undefined ? {} : { delay_ms: options.delayMs }),
				...(options.error === undefined ? {} : { error: options.error }),
				...(options.lease === undefined ? {} : { lease: options.lease }),
			},
			"nack",
		);
		return orRpcError(await stub.nack(g, valid, rest));
	}
}
