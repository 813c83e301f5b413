/**
 * `/v1/topics/:topic/groups/:group…`: consumer group settings, pull, ack,
 * nack and the dead-letter queue. Handlers validate, then call the topic's
 * Durable Object.
 * @module
 */
import { Hono } from "hono";
import * as v from "valibot";
import {
	AckBodySchema,
	GroupName,
	GroupSettingsSchema,
	HistoryQuerySchema,
	NackBodySchema,
	PullBodySchema,
	RedriveBodySchema,
	TopicName,
} from "../../protocol/schema.js";
import { isDevelopment, requireRight, rightsOf } from "../auth.js";
import { type AppEnv, topicStub } from "../env.js";
import { ApiError, orHttpError } from "../errors.js";
import { pushUrlProblem } from "../push-url.js";
import { jsonOrEmpty, requireJson, validate } from "../validate.js";

const TopicParam = v.object({ topic: TopicName });
const GroupParams = v.object({ topic: TopicName, group: GroupName });

export const groups = new Hono<AppEnv>()
	.put(
		"/:topic/groups/:group",
		validate("param", GroupParams),
		requireRight("admin"),
		requireJson,
		validate("json", GroupSettingsSchema),
		async (c) => {
			const { topic, group } = c.req.valid("param");
			const settings = c.req.valid("json");
			if (settings.dead_letter_topic === topic) {
				throw new ApiError("invalid_request", "dead_letter_topic must be another topic, or dead letters would loop");
			}
			// The object forwards dead letters with its own authority, so whoever aims them must be
			// allowed to publish there: admin on one topic is no licence to write into another.
			const dlq = settings.dead_letter_topic;
			const dlqRights = dlq == null ? undefined : rightsOf(c, dlq);
			if (dlqRights && !dlqRights.has("publish") && !dlqRights.has("admin")) {
				throw new ApiError("forbidden", `this token has no publish or admin right on dead_letter_topic ${dlq}`);
			}
			const problem = settings.push && pushUrlProblem(settings.push.url, isDevelopment(c.env));
			if (problem) throw new ApiError("invalid_request", problem);
			const result = orHttpError(await topicStub(c.env, topic).configureGroup(group, settings));
			return c.json(result.info, result.created ? 201 : 200);
		},
	)
	.get("/:topic/groups", validate("param", TopicParam), requireRight("consume"), async (c) => {
		const { topic } = c.req.valid("param");
		return c.json({ groups: orHttpError(await topicStub(c.env, topic).groups()) });
	})
	.get("/:topic/groups/:group", validate("param", GroupParams), requireRight("consume"), async (c) => {
		const { topic, group } = c.req.valid("param");
		return c.json(orHttpError(await topicStub(c.env, topic).group(group)));
	})
	.delete("/:topic/groups/:group", validate("param", GroupParams), requireRight("admin"), async (c) => {
		const { topic, group } = c.req.valid("param");
		return c.json(orHttpError(await topicStub(c.env, topic).deleteGroup(group)));
	})
	.post(
		"/:topic/groups/:group/pull",
		validate("param", GroupParams),
		requireRight("consume"),
		jsonOrEmpty,
		validate("json", PullBodySchema),
		async (c) => {
			const { topic, group } = c.req.valid("param");
			const { max, ack_timeout_ms } = c.req.valid("json");
			const page = orHttpError(await topicStub(c.env, topic).pull(group, max, ack_timeout_ms));
			return c.body(page, 200, { "Content-Type": "application/json" });
		},
	)
	.post(
		"/:topic/groups/:group/ack",
		validate("param", GroupParams),
		requireRight("consume"),
		requireJson,
		validate("json", AckBodySchema),
		async (c) => {
			const { topic, group } = c.req.valid("param");
			const { seqs, lease } = c.req.valid("json");
			return c.json(orHttpError(await topicStub(c.env, topic).ack(group, seqs, lease)));
		},
	)
	.post(
		"/:topic/groups/:group/nack",
		validate("param", GroupParams),
		requireRight("consume"),
		requireJson,
		validate("json", NackBodySchema),
		async (c) => {
			const { topic, group } = c.req.valid("param");
			const { seqs, ...opts } = c.req.valid("json");
			return c.json(orHttpError(await topicStub(c.env, topic).nack(group, seqs, opts)));
		},
	)
	.get(
		"/:topic/groups/:group/dlq",
		validate("param", GroupParams),
		requireRight("consume"),
		validate("query", HistoryQuerySchema),
		async (c) => {
			const { topic, group } = c.req.valid("param");
			const { after, limit } = c.req.valid("query");
			return c.json(orHttpError(await topicStub(c.env, topic).deadLetters(group, after, limit)));
		},
	)
	.post(
		"/:topic/groups/:group/dlq/redrive",
		validate("param", GroupParams),
		requireRight("admin"),
		jsonOrEmpty,
		validate("json", RedriveBodySchema),
		async (c) => {
			const { topic, group } = c.req.valid("param");
			return c.json(orHttpError(await topicStub(c.env, topic).redrive(group, c.req.valid("json").seqs)));
		},
	)
	.delete("/:topic/groups/:group/dlq", validate("param", GroupParams), requireRight("admin"), async (c) => {
		const { topic, group } = c.req.valid("param");
		return c.json(orHttpError(await topicStub(c.env, topic).purgeDeadLetters(group)));
	});
