/**
 * `/v1/topics/:topic…`: publish, history, stats, settings and the WebSocket
 * upgrade. Handlers validate, then call the topic's Durable Object.
 * @module
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import * as v from "valibot";
import { listTopics } from "../../durable/catalog/shards.js";
import { chooseSubprotocol } from "../../protocol/frames.js";
import { encodeGrant, GRANT_HEADER } from "../../protocol/internal.js";
import { LIMITS } from "../../protocol/limits.js";
import type { PublishResult } from "../../protocol/message.js";
import {
	BaggageSchema,
	HistoryQuerySchema,
	IdempotencyKeySchema,
	LiveQuerySchema,
	type PublishRecord,
	publishBodySchemaFor,
	TopicListQuerySchema,
	TopicName,
	TopicSettingsSchema,
	TraceparentSchema,
} from "../../protocol/schema.js";
import { limitKeyOf, offeredProtocols, requireRight, rightsOf } from "../auth.js";
import { type AppEnv, topicStub } from "../env.js";
import { ApiError, errorResponse, orHttpError } from "../errors.js";
import { requireJson, validate } from "../validate.js";

const TopicParam = v.object({ topic: TopicName });

const PublishHeaders = v.looseObject({
	"idempotency-key": v.optional(IdempotencyKeySchema),
	traceparent: v.optional(TraceparentSchema),
	baggage: v.optional(BaggageSchema),
});

const publishSizeLimit = bodyLimit({
	maxSize: LIMITS.publishMaxBytes,
	onError: () =>
		errorResponse("payload_too_large", `a publish request is at most ${LIMITS.publishMaxBytes} bytes (1 MiB)`),
});

/** 201 when something was stored, 202 when it is only scheduled (delayed), 200 when every message was a duplicate. */
function statusOf(results: PublishResult[]): 200 | 201 | 202 {
	if (results.every((r) => r.duplicate)) return 200;
	if (results.some((r) => "seq" in r && !r.duplicate)) return 201;
	return 202;
}

export const topics = new Hono<AppEnv>()
	.post(
		"/:topic/messages",
		validate("param", TopicParam),
		requireRight("publish"),
		publishSizeLimit,
		validate("header", PublishHeaders),
		requireJson,
		validate("json", publishBodySchemaFor),
		async (c) => {
			const { topic } = c.req.valid("param");
			const headers = c.req.valid("header");
			const body = c.req.valid("json");
			const batch = "messages" in body;
			if (batch && headers["idempotency-key"] !== undefined) {
				throw new ApiError(
					"invalid_request",
					"Idempotency-Key applies to a single message; give each message of a batch its own key",
				);
			}
			const items: PublishRecord[] = batch ? body.messages : [body];
			const records = items.map((m) => ({
				...m,
				key: m.key ?? headers["idempotency-key"],
				traceparent: m.traceparent ?? headers.traceparent,
				baggage: m.baggage ?? headers.baggage,
			}));
			const results = orHttpError(await topicStub(c.env, topic).publish(records, limitKeyOf(c)));
			return c.json(batch ? { messages: results } : results[0], statusOf(results));
		},
	)
	.get(
		"/:topic/messages",
		validate("param", TopicParam),
		requireRight("subscribe"),
		validate("query", HistoryQuerySchema),
		async (c) => {
			const { topic } = c.req.valid("param");
			const { after, limit } = c.req.valid("query");
			const page = await topicStub(c.env, topic).history(after, limit);
			return c.body(page, 200, { "Content-Type": "application/json" });
		},
	)
	.get(
		"/:topic/ws",
		// No Upgrade check here: a plain GET runs every check of the upgrade and is answered
		// 426 by the object only when all pass, so a browser can learn why its socket failed.
		validate("param", TopicParam),
		requireRight((c) => (c.req.query("group") === undefined ? "subscribe" : "consume")),
		validate("query", LiveQuerySchema),
		async (c) => {
			const { topic } = c.req.valid("param");
			const query = c.req.query();
			if (query.group !== undefined && (query.from !== undefined || query.filter !== undefined)) {
				throw new ApiError(
					"invalid_request",
					"from and filter are for live subscriptions; a group reads from its cursor, with its own filter",
				);
			}
			const headers = new Headers(c.req.raw.headers);
			// Set, never passed through: a client cannot name its own rights.
			const principal = c.get("principal");
			const limitKey = limitKeyOf(c);
			headers.set(
				GRANT_HEADER,
				encodeGrant({
					rights: [...rightsOf(c, topic)],
					...(principal.kind === "token" ? { expires: principal.claims.exp * 1000 } : {}),
					...(limitKey === undefined ? {} : { limitKey }),
				}),
			);
			// Only the protocol the object will answer goes on: never a bearer token.
			headers.delete("Sec-WebSocket-Protocol");
			const protocol = chooseSubprotocol(offeredProtocols(c.req.raw));
			if (protocol) headers.set("Sec-WebSocket-Protocol", protocol);
			return topicStub(c.env, topic).fetch(new Request(c.req.raw.url, { headers }));
		},
	)
	.get("/", validate("query", TopicListQuerySchema), async (c) => {
		const { prefix, after, limit } = c.req.valid("query");
		const principal = c.get("principal");
		return c.json(
			await listTopics(c.env.CATALOG, {
				prefix,
				after,
				limit,
				grants: principal.kind === "token" ? principal.claims.topics : null,
			}),
		);
	})
	.get("/:topic", validate("param", TopicParam), requireRight("subscribe"), async (c) => {
		const { topic } = c.req.valid("param");
		return c.json(orHttpError(await topicStub(c.env, topic).stats()));
	})
	.delete("/:topic", validate("param", TopicParam), requireRight("admin"), async (c) => {
		const { topic } = c.req.valid("param");
		return c.json(orHttpError(await topicStub(c.env, topic).destroy()));
	})
	.put(
		"/:topic",
		validate("param", TopicParam),
		requireRight("admin"),
		requireJson,
		validate("json", TopicSettingsSchema),
		async (c) => {
			const { topic } = c.req.valid("param");
			const settings = await topicStub(c.env, topic).configure(c.req.valid("json"));
			return c.json({ topic, settings });
		},
	);
