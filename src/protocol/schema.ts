/**
 * Valibot schemas for everything a client sends: topic names, publish bodies,
 * query parameters, settings, filters and WebSocket frames. The Worker runs
 * them through Hono's validator; the Topic object runs the frame schemas on
 * every socket message. Kept apart from the type-only modules so the client
 * bundle never pulls valibot in.
 * @module
 */
import * as v from "valibot";
import type { Condition, Filter } from "./filter.js";
import type { ClientFrame } from "./frames.js";
import { DEFAULT_PUSH, LIMITS } from "./limits.js";
import type { GroupSettings, PublishInput, PushSettings, TopicSettings } from "./message.js";
import { ownRecord } from "./own-record.js";
import { type Grants, isPattern, RIGHTS } from "./rights.js";
import { expandSeqs, isSeqOrRange, type SeqOrRange, seqCount } from "./seq-list.js";
import { type IsExact, typeAssert } from "./type-assert.js";

/**
 * Checks whose failure means "too large" (413) rather than "invalid" (400):
 * `describeIssues` looks the failed requirement up here.
 */
export const SIZE_CHECKS = new WeakSet<object>();
/** Checks whose failure means a count or range limit was passed (400 `limit_exceeded`). */
export const LIMIT_CHECKS = new WeakSet<object>();

function sizeCheck<T>(fn: (input: T) => boolean, message: string) {
	SIZE_CHECKS.add(fn);
	return v.check(fn, message);
}
function limitCheck<T>(fn: (input: T) => boolean, message: string) {
	LIMIT_CHECKS.add(fn);
	return v.check(fn, message);
}
/** A length limit: passing it is `limit_exceeded`, like every other limit. */
function maxLength<T extends string>(max: number, message: string) {
	return limitCheck<T>((s) => s.length <= max, message);
}

/** UTF-8 byte length without allocating an encoded copy. */
export function utf8Length(s: string): number {
	let n = 0;
	for (let i = 0; i < s.length; i++) {
		const c = s.charCodeAt(i);
		if (c < 0x80) n += 1;
		else if (c < 0x800) n += 2;
		else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
			const d = s.charCodeAt(i + 1);
			if (d >= 0xdc00 && d <= 0xdfff) {
				n += 4;
				i++;
			} else n += 3;
		} else n += 3;
	}
	return n;
}

/** A UTF-16 half without its other half: `\p{Cs}` in a `u` regex matches only those. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Strings stored as SQLite text (UTF-8) come back with a lone surrogate
 * replaced, so a key read back would not be the key sent. Keys and
 * header-like fields must round-trip exactly: such strings are refused.
 */
function wellFormed<T extends string>(name: string) {
	return v.check<T, string>(
		(s) => !LONE_SURROGATE.test(s),
		`${name} has a lone surrogate (half of a UTF-16 pair), which cannot be stored exactly; send well-formed Unicode`,
	);
}

const TOPIC_RE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

export const TopicName = v.pipe(
	v.string("topic must be a string"),
	v.minLength(1, "topic must not be empty"),
	limitCheck(
		(s: string) => s.length <= LIMITS.topicNameMaxLength,
		`topic names are at most ${LIMITS.topicNameMaxLength} characters`,
	),
	v.regex(TOPIC_RE, "topic names are dot-separated non-empty segments of A-Z a-z 0-9 _ - (for example jobs.user-42)"),
);

const AttributeName = v.pipe(
	v.string(),
	v.minLength(1, "attribute names must not be empty"),
	maxLength(LIMITS.attributeNameMaxLength, `attribute names are at most ${LIMITS.attributeNameMaxLength} characters`),
);

const AttributeValue = v.union(
	[
		v.pipe(
			v.string(),
			maxLength(
				LIMITS.attributeValueMaxLength,
				`attribute values are at most ${LIMITS.attributeValueMaxLength} characters`,
			),
		),
		v.pipe(v.number(), v.finite()),
		v.boolean(),
	],
	"attribute values are strings, numbers or booleans",
);

/** v.record alone takes arrays (their indexes become keys); JSON objects only. */
function plainObject(message: string) {
	return v.custom<Record<string, unknown>>((x) => x !== null && typeof x === "object" && !Array.isArray(x), message);
}

export const AttributesSchema = v.pipe(
	plainObject("attributes must be an object of strings, numbers and booleans"),
	ownRecord(AttributeName, AttributeValue, "attributes must be an object of strings, numbers and booleans"),
	limitCheck(
		(a) => Object.keys(a).length <= LIMITS.attributesMaxCount,
		`a message has at most ${LIMITS.attributesMaxCount} attributes`,
	),
);

export const TraceparentSchema = v.pipe(
	v.string(),
	v.regex(
		/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/,
		"traceparent must be a W3C trace context header (00-<32 hex>-<16 hex>-<2 hex>)",
	),
);

export const BaggageSchema = v.pipe(
	v.string(),
	maxLength(LIMITS.baggageMaxLength, `baggage is at most ${LIMITS.baggageMaxLength} characters`),
	wellFormed("baggage"),
);

export const IdempotencyKeySchema = v.pipe(
	v.string("key must be a string"),
	v.minLength(1, "key must not be empty"),
	maxLength(LIMITS.idempotencyKeyMaxLength, `key is at most ${LIMITS.idempotencyKeyMaxLength} characters`),
	wellFormed("key"),
);

const DelaySchema = v.pipe(
	v.number("delay_ms must be a number"),
	v.integer("delay_ms must be a whole number of milliseconds"),
	v.minValue(0, "delay_ms must not be negative"),
	limitCheck((n: number) => n <= LIMITS.delayMaxMs, `delay_ms is at most ${LIMITS.delayMaxMs} (12 hours)`),
);

const publishFields = {
	// Optional here so a missing `data` gets its own message from the check below.
	data: v.optional(v.unknown()),
	attributes: v.optional(AttributesSchema),
	delay_ms: v.optional(DelaySchema),
	key: v.optional(IdempotencyKeySchema),
	traceparent: v.optional(TraceparentSchema),
	baggage: v.optional(BaggageSchema),
};

function serializeData<T extends { data?: unknown }>(item: T) {
	const { data, ...rest } = item;
	let data_json: string;
	try {
		data_json = JSON.stringify(data) as string;
	} catch {
		// Nesting deep enough to overflow the stack: parsed fine, but cannot be stored.
		data_json = "";
	}
	return { ...rest, data_json };
}

const DATA_REQUIRED = "data is required (any JSON value, null included)";
const dataFitsRequirement = (o: { data_json: string }) => utf8Length(o.data_json) <= LIMITS.messageDataMaxBytes;
const DATA_TOO_DEEP = "data is nested too deeply to store";
SIZE_CHECKS.add(dataFitsRequirement);
const DATA_TOO_LARGE = `data is at most ${LIMITS.messageDataMaxBytes} bytes serialized (128 KiB)`;
function dataFits<T extends { data_json: string }>() {
	return v.check<T, string>(dataFitsRequirement, DATA_TOO_LARGE);
}

/** One message to publish, strict: an unknown field is an error, so typos do not pass silently. */
export const PublishItemSchema = v.pipe(
	v.strictObject(publishFields, "a message is an object {data, attributes?, delay_ms?, key?, traceparent?, baggage?}"),
	v.check((o) => o.data !== undefined, DATA_REQUIRED),
	v.transform((o) => serializeData(o)),
	v.check((o) => o.data_json !== "", DATA_TOO_DEEP),
	dataFits(),
);

export const PublishBatchSchema = v.strictObject({
	messages: v.pipe(
		v.array(PublishItemSchema, "messages must be an array"),
		v.minLength(1, "messages must not be empty"),
		limitCheck((a) => a.length <= LIMITS.batchMaxMessages, `a batch holds at most ${LIMITS.batchMaxMessages} messages`),
	),
});

/** A publish body is one message, or `{messages: [...]}`: chooses the schema by shape, so a bad batch reports the batch's error, not a union's. */
export function publishBodySchemaFor(body: unknown) {
	return body !== null && typeof body === "object" && "messages" in body ? PublishBatchSchema : PublishItemSchema;
}

/**
 * A whole number written in decimal digits, any number of them: not digits
 * is `invalid_request`; digits above `max` are `limit_exceeded`, however many
 * (so `limit=99999999` says which limit it passed, as `limit=1001` does).
 */
function digits(message: string, min: number, minMessage: string, max: number, maxMessage: string) {
	return v.pipe(
		v.string(message),
		v.regex(/^\d+$/, message),
		v.transform(Number),
		v.minValue(min, minMessage),
		limitCheck((n: number) => n <= max, maxMessage),
	);
}

/** A seq (`after`, `from`): seqs are safe integers, so larger is past any seq there can be. */
const SeqString = digits(
	"must be a non-negative whole number",
	0,
	"must be a non-negative whole number",
	Number.MAX_SAFE_INTEGER,
	`is at most ${Number.MAX_SAFE_INTEGER} (the largest seq)`,
);

/** The start of a topic name (a listing's `prefix`), or a whole one (its `after`). */
const TopicNameStart = (field: string) =>
	v.pipe(
		v.string(`${field} must be a string`),
		limitCheck(
			(s: string) => s.length <= LIMITS.topicNameMaxLength,
			`${field} is at most ${LIMITS.topicNameMaxLength} characters`,
		),
		v.regex(/^[A-Za-z0-9_.-]*$/, `${field} is (the start of) a topic name: A-Z a-z 0-9 _ - and dots`),
	);

export const TopicListQuerySchema = v.looseObject({
	prefix: v.optional(TopicNameStart("prefix"), ""),
	after: v.optional(TopicNameStart("after"), ""),
	limit: v.optional(
		digits(
			"limit must be a whole number",
			1,
			"limit is at least 1",
			LIMITS.topicListMax,
			`limit is at most ${LIMITS.topicListMax}`,
		),
		String(LIMITS.topicListDefault),
	),
});

export const HistoryQuerySchema = v.looseObject({
	after: v.optional(SeqString, "0"),
	limit: v.optional(
		digits(
			"limit must be a whole number",
			1,
			"limit is at least 1",
			LIMITS.historyMaxLimit,
			`limit is at most ${LIMITS.historyMaxLimit}`,
		),
		String(LIMITS.historyDefaultLimit),
	),
});

export const TopicSettingsSchema = v.pipe(
	v.strictObject(
		{
			max_messages: v.optional(wholeNumber("max_messages", 1, LIMITS.retentionMaxMessagesCeiling)),
			max_age_ms: v.optional(
				wholeNumber("max_age_ms", 1000, LIMITS.retentionMaxAgeCeilingMs, " of milliseconds", "30 days"),
			),
			max_sockets: v.optional(wholeNumber("max_sockets", 1, LIMITS.socketsPerTopicCeiling)),
		},
		"topic settings are {max_messages?, max_age_ms?, max_sockets?}",
	),
	v.check(
		(s) => s.max_messages !== undefined || s.max_age_ms !== undefined || s.max_sockets !== undefined,
		"give max_messages, max_age_ms or max_sockets",
	),
);

// --- Filters -----------------------------------------------------------------

const Scalar = v.union([v.string(), v.pipe(v.number(), v.finite()), v.boolean()]);
const NumericOp = v.picklist(["=", "<", "<=", ">", ">="], 'numeric operators are "=", "<", "<=", ">", ">="');
const Prefix = v.strictObject({ prefix: v.string("prefix must be a string") });

const ConditionSchema = v.union(
	[
		Scalar,
		Prefix,
		v.strictObject({
			"anything-but": v.union([Scalar, v.pipe(v.array(Scalar), v.minLength(1)), Prefix]),
		}),
		v.strictObject({
			numeric: v.union([
				v.strictTuple([NumericOp, v.pipe(v.number(), v.finite())]),
				v.strictTuple([NumericOp, v.pipe(v.number(), v.finite()), NumericOp, v.pipe(v.number(), v.finite())]),
			]),
		}),
		v.strictObject({ exists: v.boolean() }),
	],
	'a condition is a string, number or boolean, or one of {prefix}, {"anything-but"}, {numeric: [op, n(, op, n)]}, {exists}',
);

/** Values a filter lists, `anything-but` lists included: they cost the matcher as much. */
function countAlternatives(f: Record<string, unknown>): number {
	let n = 0;
	for (const k in f) {
		const conds = Array.isArray(f[k]) ? (f[k] as unknown[]) : [f[k]];
		for (const c of conds) {
			const but = c !== null && typeof c === "object" ? (c as Record<string, unknown>)["anything-but"] : undefined;
			n += Array.isArray(but) ? but.length : 1;
		}
	}
	return n;
}

export const FilterSchema = v.pipe(
	plainObject("a filter is an object of attribute name to condition(s)"),
	ownRecord(
		AttributeName,
		v.union([ConditionSchema, v.pipe(v.array(ConditionSchema), v.minLength(1, "a key lists at least one value"))]),
		"a filter is an object of attribute name to condition(s)",
	),
	v.check((f) => Object.keys(f).length > 0, "a filter has at least one key"),
	limitCheck((f) => Object.keys(f).length <= LIMITS.filterMaxKeys, `a filter has at most ${LIMITS.filterMaxKeys} keys`),
	limitCheck(
		(f) => countAlternatives(f) <= LIMITS.filterMaxValues,
		`a filter lists at most ${LIMITS.filterMaxValues} values in all`,
	),
	v.transform((f) => f as Filter),
);

/** A filter given as JSON text (a query parameter). */
export const FilterJsonSchema = v.pipe(
	v.string(),
	sizeCheck(
		(s: string) => utf8Length(s) <= LIMITS.filterMaxBytes,
		`a filter is at most ${LIMITS.filterMaxBytes} bytes`,
	),
	v.rawTransform(({ dataset, addIssue, NEVER }) => {
		try {
			return JSON.parse(dataset.value) as unknown;
		} catch {
			addIssue({ message: 'filter must be JSON, for example {"kind":["invoice"]}' });
			return NEVER;
		}
	}),
	FilterSchema,
);

// --- Consumer groups -----------------------------------------------------------

export const GroupName = v.pipe(
	v.string("group must be a string"),
	v.minLength(1, "group must not be empty"),
	maxLength(LIMITS.groupNameMaxLength, `group names are at most ${LIMITS.groupNameMaxLength} characters`),
	v.regex(/^[A-Za-z0-9_-]+$/, "group names are A-Z a-z 0-9 _ - (for example mailer)"),
);

/** A whole number in [min, max]: below is `invalid_request`, above is `limit_exceeded`. */
function wholeNumber(name: string, min: number, max: number, unit = "", maxText = "") {
	return v.pipe(
		v.number(`${name} must be a number`),
		v.integer(`${name} must be a whole number${unit}`),
		v.minValue(min, `${name} is at least ${min}`),
		limitCheck((n: number) => n <= max, `${name} is at most ${max}${maxText ? ` (${maxText})` : ""}`),
	);
}

function wholeMs(name: string, min: number, max: number, maxText: string) {
	return wholeNumber(name, min, max, " of milliseconds", maxText);
}

/** Push target of a group. Which hosts production may push to is checked by the Worker (src/worker/push-url.ts). */
export const PushSchema = v.pipe(
	v.strictObject(
		{
			url: v.pipe(
				v.string("push.url must be a string"),
				maxLength(LIMITS.pushUrlMaxLength, `push.url is at most ${LIMITS.pushUrlMaxLength} characters`),
				v.url("push.url must be an absolute URL"),
				v.check((u) => /^https?:\/\//i.test(u), "push.url must be http: or https:"),
			),
			secret: v.pipe(
				v.string("push.secret must be a string"),
				v.minLength(LIMITS.pushSecretMinLength, `push.secret is at least ${LIMITS.pushSecretMinLength} characters`),
				maxLength(LIMITS.pushSecretMaxLength, `push.secret is at most ${LIMITS.pushSecretMaxLength} characters`),
			),
			timeout_ms: v.optional(
				wholeMs("push.timeout_ms", LIMITS.pushTimeoutMinMs, LIMITS.pushTimeoutMaxMs, "30 seconds"),
				DEFAULT_PUSH.timeout_ms,
			),
			concurrency: v.optional(wholeNumber("push.concurrency", 1, LIMITS.pushConcurrencyMax), DEFAULT_PUSH.concurrency),
		},
		"push is {url, secret, timeout_ms?, concurrency?}",
	),
);

/** Group settings as sent: every field optional; the object fills in the rest (current or default). */
export const GroupSettingsSchema = v.strictObject(
	{
		max_retries: v.optional(wholeNumber("max_retries", 0, LIMITS.maxRetriesCeiling)),
		retry_delay_ms: v.optional(wholeMs("retry_delay_ms", 0, LIMITS.retryDelayMaxMs, "12 hours")),
		backoff: v.optional(v.picklist(["fixed", "exponential"], 'backoff is "fixed" or "exponential"')),
		max_retry_delay_ms: v.optional(wholeMs("max_retry_delay_ms", 0, LIMITS.retryDelayMaxMs, "12 hours")),
		jitter: v.optional(v.boolean("jitter is true or false")),
		ack_timeout_ms: v.optional(wholeMs("ack_timeout_ms", LIMITS.ackTimeoutMinMs, LIMITS.ackTimeoutMaxMs, "12 hours")),
		start: v.optional(v.picklist(["latest", "earliest"], 'start is "latest" or "earliest"')),
		filter: v.optional(v.nullable(FilterSchema)),
		dead_letter_topic: v.optional(v.nullable(TopicName)),
		push: v.optional(v.nullable(PushSchema)),
	},
	"group settings are {max_retries?, retry_delay_ms?, backoff?, max_retry_delay_ms?, jitter?, ack_timeout_ms?, start?, filter?, dead_letter_topic?, push?}",
);

const SeqValue = v.pipe(v.number("seq must be a number"), v.safeInteger("seq must be a whole number"), v.minValue(1));

const Seqs = v.pipe(
	v.array(
		v.custom<SeqOrRange>(isSeqOrRange, "seqs are whole numbers ≥ 1 or [first, last] ranges of them"),
		"seqs must be an array",
	),
	v.minLength(1, "seqs must not be empty"),
	limitCheck(
		(a: SeqOrRange[]) => seqCount(a) <= LIMITS.settleMaxSeqs,
		`at most ${LIMITS.settleMaxSeqs} seqs at a time`,
	),
	v.transform(expandSeqs),
);
/**
 * Free text, not an identity: a lone surrogate (a message cut in the middle of
 * a pair, as a client slicing an error may do) becomes U+FFFD, here, so the
 * DLQ and the dead-letter topic show the same text. Refusing it would fail the nack.
 */
const ErrorText = v.pipe(
	v.string("error must be a string"),
	maxLength(LIMITS.errorMaxLength, `error is at most ${LIMITS.errorMaxLength} characters`),
	v.transform((s: string) => s.replace(/\p{Cs}/gu, "\ufffd")),
);
const NackDelay = wholeMs("delay_ms", 0, LIMITS.retryDelayMaxMs, "12 hours");

export const PullBodySchema = v.strictObject({
	max: v.optional(wholeNumber("max", 1, LIMITS.pullMaxMessages), 1),
	ack_timeout_ms: v.optional(wholeMs("ack_timeout_ms", LIMITS.ackTimeoutMinMs, LIMITS.ackTimeoutMaxMs, "12 hours")),
});
/** The lease id a pull answered with: acks and nacks that give it settle only that pull's leases. */
const Lease = v.pipe(
	v.string("lease must be a string"),
	v.regex(/^pull:[0-9a-f-]{36}$/, "lease is the id a pull answered with"),
);
export const AckBodySchema = v.strictObject({ seqs: Seqs, lease: v.optional(Lease) });
export const NackBodySchema = v.strictObject({
	seqs: Seqs,
	delay_ms: v.optional(NackDelay),
	error: v.optional(ErrorText),
	lease: v.optional(Lease),
});
export const RedriveBodySchema = v.strictObject({ seqs: v.optional(Seqs) });

const Prefetch = digits(
	"prefetch must be a whole number",
	1,
	"prefetch is at least 1",
	LIMITS.prefetchMax,
	`prefetch is at most ${LIMITS.prefetchMax}`,
);

// --- Tokens -------------------------------------------------------------------

export const GrantsSchema = v.pipe(
	plainObject("topics is an object of topic pattern to rights"),
	ownRecord(
		v.pipe(
			v.string(),
			v.check(isPattern, "patterns are topic names whose segments may be * (one segment) or, last, > (the rest)"),
		),
		v.pipe(
			v.array(v.picklist(RIGHTS, `rights are ${RIGHTS.join(", ")}`), "rights are an array"),
			v.minLength(1, "give at least one right per pattern"),
		),
	),
	v.check((g) => Object.keys(g).length > 0, "topics needs at least one pattern"),
	limitCheck(
		(g) => Object.keys(g).length <= LIMITS.tokenPatternsMax,
		`a token has at most ${LIMITS.tokenPatternsMax} patterns`,
	),
);

export const TokenRequestSchema = v.strictObject({
	topics: GrantsSchema,
	ttl_s: v.optional(wholeNumber("ttl_s", 1, LIMITS.tokenTtlMaxS, " of seconds", "30 days"), LIMITS.tokenTtlDefaultS),
	sub: v.optional(
		v.pipe(
			v.string("sub must be a string"),
			v.minLength(1, "sub must not be empty"),
			maxLength(LIMITS.tokenSubMaxLength, `sub is at most ${LIMITS.tokenSubMaxLength} characters`),
			wellFormed("sub"),
		),
	),
});

// --- WebSocket ---------------------------------------------------------------

/** `from` of a live subscription: a seq to resume after, `latest` or `earliest`. */
const FromSchema = v.union([v.picklist(["latest", "earliest"]), SeqString], 'from is a seq, "latest" or "earliest"');

export const LiveQuerySchema = v.looseObject({
	from: v.optional(FromSchema, "latest"),
	filter: v.optional(FilterJsonSchema),
	group: v.optional(GroupName),
	prefetch: v.optional(Prefetch, "1"),
	/** `1`: several frames per WebSocket message, one per line (as the `tidings.pack` subprotocol asks). */
	pack: v.optional(
		v.pipe(
			v.picklist(["0", "1"], "pack is 1 (several frames per message, one per line) or 0 (one frame per message)"),
			v.transform((p) => p === "1"),
		),
		"0",
	),
});

const Ref = v.pipe(
	v.string("ref must be a string"),
	v.minLength(1, "ref must not be empty"),
	maxLength(LIMITS.refMaxLength, `ref is at most ${LIMITS.refMaxLength} characters`),
);

const PublishBatchFrameSchema = v.strictObject({
	type: v.literal("publish"),
	ref: Ref,
	messages: PublishBatchSchema.entries.messages,
});
const PublishOneFrameSchema = v.pipe(
	v.strictObject({ type: v.literal("publish"), ref: Ref, ...publishFields }),
	v.check((o) => o.data !== undefined, DATA_REQUIRED),
	v.transform((o) => serializeData(o)),
	v.check((o) => o.data_json !== "", DATA_TOO_DEEP),
	dataFits(),
);
export const PublishFrameSchema = v.union([PublishBatchFrameSchema, PublishOneFrameSchema]);

const settleFields = { seq: v.optional(SeqValue), seqs: v.optional(Seqs), ref: v.optional(Ref) };
const ONE_OF_SEQ_SEQS = "give seq or seqs, not both";
/** `seq` or `seqs` (never both) become one `seqs` list. */
function settledSeqs<F extends { seq?: number | undefined; seqs?: number[] | undefined }>({ seq, seqs, ...rest }: F) {
	return { ...rest, seqs: seqs ?? [seq as number] };
}
export const AckFrameSchema = v.pipe(
	v.strictObject({ type: v.literal("ack"), ...settleFields }),
	v.check((f) => (f.seq === undefined) !== (f.seqs === undefined), ONE_OF_SEQ_SEQS),
	v.transform(settledSeqs),
);
export const NackFrameSchema = v.pipe(
	v.strictObject({
		type: v.literal("nack"),
		...settleFields,
		delay_ms: v.optional(NackDelay),
		error: v.optional(ErrorText),
	}),
	v.check((f) => (f.seq === undefined) !== (f.seqs === undefined), ONE_OF_SEQ_SEQS),
	v.transform(settledSeqs),
);

/** Live sockets: "I have read every message up to `seq`" (flow control, docs/protocol.md#flow-control). */
export const ReceivedFrameSchema = v.strictObject({
	type: v.literal("received"),
	// 0: nothing read yet (a topic with no message so far).
	seq: v.pipe(v.number("seq must be a number"), v.safeInteger("seq must be a whole number"), v.minValue(0)),
});

/** Group members: take no more messages; what is held stays leased until settled (a graceful stop). */
export const DrainFrameSchema = v.strictObject({ type: v.literal("drain") });

/** Frame types a client may send; the object answers anything else with `unknown_frame`. */
export const CLIENT_FRAME_TYPES = ["publish", "ack", "nack", "received", "drain"] as const;

/** A validation failure in the shape of the error contract. */
export interface ValidationError {
	code: "invalid_request" | "limit_exceeded" | "payload_too_large";
	message: string;
}

/** Turns valibot issues into one error: the first issue decides the code, all are named. */
export function describeIssues(issues: readonly v.BaseIssue<unknown>[], where = ""): ValidationError {
	const first = issues[0];
	const requirement = (first as { requirement?: unknown }).requirement;
	const code =
		typeof requirement === "function" && SIZE_CHECKS.has(requirement)
			? "payload_too_large"
			: typeof requirement === "function" && LIMIT_CHECKS.has(requirement)
				? "limit_exceeded"
				: "invalid_request";
	const parts = issues.slice(0, 3).map((i) => {
		const path = v.getDotPath(i);
		return path ? `${path}: ${i.message}` : i.message;
	});
	return { code, message: `${where}${parts.join("; ")}` };
}

export type FrameParseResult =
	| { ok: true; frame: ClientFrameParsed }
	| { ok: false; code: "invalid_frame" | "unknown_frame" | ValidationError["code"]; message: string; ref?: string };

/** Parses one text frame from a client; never throws. */
export function parseClientFrame(text: string): FrameParseResult {
	// Cheap bound first: a frame may be up to 3 bytes per UTF-16 unit.
	if (text.length * 3 > LIMITS.publishMaxBytes && utf8Length(text) > LIMITS.publishMaxBytes) {
		return {
			ok: false,
			code: "payload_too_large",
			message: `a frame is at most ${LIMITS.publishMaxBytes} bytes (1 MiB)`,
		};
	}
	let raw: unknown;
	try {
		raw = JSON.parse(text);
	} catch {
		return { ok: false, code: "invalid_frame", message: "frames are JSON objects with a type" };
	}
	if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
		return { ok: false, code: "invalid_frame", message: "frames are JSON objects with a type" };
	}
	const obj = raw as Record<string, unknown>;
	const ref = typeof obj.ref === "string" && obj.ref.length <= LIMITS.refMaxLength ? obj.ref : undefined;
	if (!(CLIENT_FRAME_TYPES as readonly unknown[]).includes(obj.type)) {
		return {
			ok: false,
			code: "unknown_frame",
			message: `unknown frame type ${JSON.stringify(obj.type)?.slice(0, 64)}; expected one of ${CLIENT_FRAME_TYPES.join(", ")}`,
			...(ref === undefined ? {} : { ref }),
		};
	}
	const schema =
		obj.type === "drain"
			? DrainFrameSchema
			: obj.type === "received"
				? ReceivedFrameSchema
				: obj.type === "ack"
					? AckFrameSchema
					: obj.type === "nack"
						? NackFrameSchema
						: "messages" in obj
							? PublishBatchFrameSchema
							: PublishOneFrameSchema;
	const result = v.safeParse(schema, obj);
	if (result.success) return { ok: true, frame: result.output };
	return { ok: false, ...describeIssues(result.issues), ...(ref === undefined ? {} : { ref }) };
}

// --- Types --------------------------------------------------------------------------
// Inferred where a schema makes the value; the hand-written wire types of the
// type-only modules (which the client bundle imports without valibot) are tied
// to their schemas by compile-time assertions.

/** What the object stores for one publish: `data` serialized once, here, as `data_json`. */
export type PublishRecord = v.InferOutput<typeof PublishItemSchema>;
export type ClientFrameParsed = v.InferOutput<
	| typeof PublishFrameSchema
	| typeof AckFrameSchema
	| typeof NackFrameSchema
	| typeof ReceivedFrameSchema
	| typeof DrainFrameSchema
>;
export type GroupSettingsInput = v.InferOutput<typeof GroupSettingsSchema>;
export type TopicSettingsInput = v.InferOutput<typeof TopicSettingsSchema>;
export type TokenRequest = v.InferInput<typeof TokenRequestSchema>;
export type { Condition };

typeAssert<IsExact<Omit<PublishInput, "data">, Omit<PublishRecord, "data_json">>>();
typeAssert<IsExact<Required<TopicSettingsInput>, TopicSettings>>();
typeAssert<IsExact<v.InferOutput<typeof PushSchema>, PushSettings>>();
typeAssert<IsExact<v.InferOutput<typeof ConditionSchema>, Condition>>();
typeAssert<IsExact<v.InferOutput<typeof GrantsSchema>, Grants>>();
/** Every setting a group can be given, as stored: `null` (remove) is not a stored value. */
typeAssert<
	IsExact<{ [K in keyof GroupSettingsInput]-?: NonNullable<GroupSettingsInput[K]> }, Required<GroupSettings>>
>();
/** The frames a client sends, as it writes them and as the object parses them (`data` becomes `data_json`). */
type Sent<F> = F extends { type: "ack" | "nack" }
	? Omit<F, "seq" | "seqs"> & { seqs: number[] }
	: F extends { data: unknown }
		? Omit<F, "data">
		: F extends { messages: infer M extends unknown[] }
			? Omit<F, "messages"> & { messages: Sent<M[number]>[] }
			: F;
type Parsed<F> = F extends { data_json: string }
	? Omit<F, "data_json">
	: F extends { messages: infer M extends unknown[] }
		? Omit<F, "messages"> & { messages: Parsed<M[number]>[] }
		: F;
typeAssert<IsExact<Sent<ClientFrame>, Parsed<ClientFrameParsed>>>();
