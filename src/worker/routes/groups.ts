/**
 * `/v1/topics/:topic/groups/:group…`: consumer group settings, pull, ack,
 * nack and the dead-letter queue. Handlers validate, then call the topic's
 * Durable Object.
 * @module
 */
import { Hono } from "hono";
import * as v from "valibot";
import { LIMITS } from "../../protocol/limits.js";
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
import { ApiError } from "../errors.js";
import { pushUrlProblem } from "../push-url.js";
import { requireJson, validate } from "../validate.js";

const GroupParams = v.object({ topic: TopicName, group: GroupName });

function noGroup(topic: string, group: string): ApiError {
	return new ApiError(
		"not_found",
		`no group ${group} on topic ${topic}; create it with PUT /v1/topics/${topic}/groups/${group}`,
	);
}

function found<T>(value: T | undefined, topic: string, group: string): T {
	if (value === undefined) throw noGroup(topic, group);
	return value;
}

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
			const result = await topicStub(c.env, topic).configureGroup(topic, group, settings);
			if (!result) {
				throw new ApiError("limit_exceeded", `a topic has at most ${LIMITS.groupsPerTopicMax} consumer groups`);
			}
			return c.json(result.info, result.created ? 201 : 200);
		},
	)
	.get("/:topic/groups/:group", validate("param", GroupParams), requireRight("consume"), async (c) => {
		const { topic, group } = c.req.valid("param");
		return c.json(found(await topicStub(c.env, topic).group(topic, group), topic, group));
	})
	.delete("/:topic/groups/:group", validate("param", GroupParams), requireRight("admin"), async (c) => {
		const { topic, group } = c.req.valid("param");
		if (!(await topicStub(c.env, topic).deleteGroup(topic, group))) throw noGroup(topic, group);
		return c.json({ deleted: true });
	})
	.post(
		"/:topic/groups/:group/pull",
		validate("param", GroupParams),
		requireRight("consume"),
		requireJson,
		validate("json", PullBodySchema),
		async (c) => {
			const { topic, group } = c.req.valid("param");
			const { max, ack_timeout_ms } = c.req.valid("json");
			const page = found(await topicStub(c.env, topic).pull(topic, group, max, ack_timeout_ms), topic, group);
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
			return c.json(found(await topicStub(c.env, topic).ack(topic, group, seqs, lease), topic, group));
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
			return c.json(found(await topicStub(c.env, topic).nack(topic, group, seqs, opts), topic, group));
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
			return c.json(found(await topicStub(c.env, topic).deadLetters(topic, group, after, limit), topic, group));
		},
	)
	.post(
		"/:topic/groups/:group/dlq/redrive",
		validate("param", GroupParams),
		requireRight("admin"),
		requireJson,
		validate("json", RedriveBodySchema),
		async (c) => {
			const { topic, group } = c.req.valid("param");
			return c.json(found(await topicStub(c.env, topic).redrive(topic, group, c.req.valid("json").seqs), topic, group));
		},
	)
	.delete("/:topic/groups/:group/dlq", validate("param", GroupParams), requireRight("admin"), async (c) => {
		const { topic, group } = c.req.valid("param");
		return c.json(found(await topicStub(c.env, topic).purgeDeadLetters(topic, group), topic, group));
	});
