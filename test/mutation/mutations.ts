// biome-ignore-all lint/suspicious/noTemplateCurlyInString: mutations are source text, template literals included

/**
 * The mutations `run.ts` applies, one at a time: each breaks one guarantee of
 * README.md or docs/ in src/durable or src/protocol, and names the test files
 * that should turn red: the new test, and the older files that test the same
 * ground, so that `--whole-files` on the older suite scores it fairly
 * (`only`, a test-name pattern, narrows a run to the new test).
 */
export interface Mutation {
	name: string;
	file: string;
	/** Text that occurs exactly once in `file`. */
	find: string;
	replace: string;
	tests: string[];
	only?: string;
	/** Outside src/durable and src/protocol: counted apart. */
	client?: boolean;
}

const TIMERS = "test/worker/timers.test.ts";
const GROUPS = "test/worker/groups.test.ts";
const FUZZ = "test/worker/fuzz.test.ts";
const PROPERTIES = "test/worker/properties.test.ts";
const PUSH = "test/worker/push.test.ts";
const SLOW = "test/worker/slow-consumer.test.ts";
const PUBLISH = "test/worker/publish.test.ts";
const AUTH = "test/worker/auth.test.ts";
const CLIENT = "test/node/client.test.ts";
const VALIDATION = "test/worker/validation.test.ts";
const BATCHES = "test/worker/group-batches.test.ts";
const LIVE = "test/worker/live.test.ts";

export const MUTATIONS: Mutation[] = [
	{
		name: "dedupe: the window is 25 h, not 24 h",
		file: "src/durable/log/dedupe.ts",
		find: "now + LIMITS.dedupeWindowMs,",
		replace: "now + LIMITS.dedupeWindowMs + 3_600_000,",
		tests: [TIMERS, PUBLISH],
		only: "24 hours",
	},
	{
		name: "dedupe: the window is 23 h 30 m, not 24 h",
		file: "src/durable/log/dedupe.ts",
		find: "now + LIMITS.dedupeWindowMs,",
		replace: "now + LIMITS.dedupeWindowMs - 1_800_000,",
		tests: [TIMERS, PUBLISH],
		only: "24 hours",
	},
	{
		name: "dedupe: keys left after a purge get no timer",
		file: "src/durable/log/dedupe.ts",
		find: 'return this.sql.exec<{ t: number | null }>("SELECT MIN(expires_at) AS t FROM dedupe").one().t ?? undefined;',
		replace: "return undefined;",
		tests: [TIMERS, PUBLISH],
		only: "24 hours",
	},
	{
		name: "timer: an alarm runs every due timer, no cap",
		file: "src/durable/storage/scheduler.ts",
		find: "TUNING.timersPerAlarm,\n",
		replace: "TUNING.timersPerAlarm * 100,\n",
		tests: [TIMERS],
		only: "1,000 timers",
	},
	{
		name: "timer: the alarm is not re-armed after a run",
		file: "src/durable/storage/scheduler.ts",
		find: "\t\t} finally {\n\t\t\tthis.arm();\n\t\t}",
		replace: "\t\t} finally {\n\t\t}",
		tests: [TIMERS],
		only: "1,000 timers",
	},
	{
		name: "retention: a trim with more to do does not come back soon",
		file: "src/durable/log/retention.ts",
		find: "if (trimmed.more || purged >= TUNING.retentionChunk) {",
		replace: "if (purged >= TUNING.retentionChunk) {",
		tests: [TIMERS],
		only: "5,000 rows",
	},
	{
		name: "retention: a trim deletes every row over the bound at once",
		file: "src/durable/log/topic-log.ts",
		find: "const window = this.first + chunk - 1;",
		replace: "const window = this.first + chunk * 100 - 1;",
		tests: [TIMERS],
		only: "5,000 rows",
	},

	{
		name: "dispatch: the first member with room takes all it can hold",
		file: "src/durable/groups/group-members.ts",
		find: "Math.min(m.room, share)",
		replace: "m.room",
		tests: [GROUPS, BATCHES],
		only: "3, 3 and 3",
	},
	{
		name: "ack: a member may settle another member's lease",
		file: "src/durable/groups/leases.ts",
		find: "AND +state = 'leased' AND ${ownerMatch(owner)} RETURNING seq, owner",
		replace: "AND +state = 'leased' AND (? IS NOT NULL) RETURNING seq, owner",
		tests: [FUZZ, GROUPS, BATCHES],
		only: "holding nothing",
	},
	{
		name: "lease: a member's lease is half its ack timeout",
		file: "src/durable/groups/leases.ts",
		find: "const until = now + leaseMs;",
		replace: "const until = now + leaseMs / 2;",
		tests: [GROUPS],
		only: "after the ack timeout",
	},
	{
		name: "lease: a member's lease is twice its ack timeout",
		file: "src/durable/groups/leases.ts",
		find: "const until = now + leaseMs;",
		replace: "const until = now + leaseMs * 2;",
		tests: [GROUPS],
		only: "after the ack timeout",
	},
	{
		name: "retry: a fixed retry delay one second late",
		file: "src/durable/groups/leases.ts",
		find: 'if (s.backoff === "fixed") return s.retry_delay_ms;',
		replace: 'if (s.backoff === "fixed") return s.retry_delay_ms + 1000;',
		tests: [GROUPS, PUSH],
		only: "poison",
	},
	{
		name: "retry: exponential backoff starts one step up",
		file: "src/durable/groups/leases.ts",
		find: "2 ** Math.max(0, attempt - 1)",
		replace: "2 ** Math.max(0, attempt)",
		tests: [GROUPS],
		only: "exponential backoff 200",
	},
	{
		name: "nack: a nack's delay is ignored (the group's retry delay is used)",
		file: "src/durable/groups/leases.ts",
		find: "const at = now + (delayMs ?? retryDelay(settings, row.attempt));",
		replace: "const at = now + (delayMs === undefined || delayMs === 0 ? retryDelay(settings, row.attempt) : 0);",
		tests: [GROUPS],
		only: "nack with a delay",
	},
	{
		name: "dead letter: a failed forward is not tried again",
		file: "src/durable/groups/consumer-groups.ts",
		find: "this.context.scheduler.schedule(TIMER_DEAD_LETTER, t.key, now + TUNING.forwardRetryMs, t.payload);",
		replace: "",
		tests: [GROUPS],
		only: "forwards a dead letter once",
	},
	{
		name: "dead letter: the forward carries no publish key (a replay stores it again)",
		file: "src/durable/groups/dead-letters.ts",
		find: "key: `dead:${message.topic}:${group}:${message.seq}:${deadAt}`,",
		replace: "",
		tests: [GROUPS],
		only: "forwards a dead letter once",
	},
	{
		name: "publish frame: unknown fields are accepted",
		file: "src/protocol/schema.ts",
		find: 'v.strictObject({ type: v.literal("publish"), ref: Ref, ...publishFields }),',
		replace: 'v.object({ type: v.literal("publish"), ref: Ref, ...publishFields }),',
		tests: [PROPERTIES, VALIDATION],
		only: "answers every frame",
	},
	{
		name: "publish: an empty batch is accepted",
		file: "src/protocol/schema.ts",
		find: 'v.minLength(1, "messages must not be empty"),',
		replace: 'v.minLength(0, "messages must not be empty"),',
		tests: [PROPERTIES, VALIDATION],
		only: "answers every frame",
	},
	{
		name: "publish: a key repeated inside a batch is stored twice",
		file: "src/durable/log/publisher.ts",
		find: "const first = batchKeys.get(r.key);",
		replace: "const first = undefined as number | undefined;",
		tests: [PROPERTIES, PUBLISH],
		only: "non-duplicate",
	},

	{
		name: "push: one request more than its concurrency",
		file: "src/durable/groups/push-delivery.ts",
		find: "let room = push.concurrency - this.leases.inFlight(group, OWNER_PREFIX.push, true);",
		replace: "let room = push.concurrency + 1 - this.leases.inFlight(group, OWNER_PREFIX.push, true);",
		tests: [PUSH],
		only: "slow endpoint",
	},
	{
		name: "push: a 2xx answer is not an ack",
		file: "src/durable/groups/push-delivery.ts",
		find: "\t\t\terror === undefined\n",
		replace: "\t\t\tfalse\n",
		tests: [PUSH],
		only: "slow endpoint",
	},
	{
		name: "flow control: a replay stalls out after a quarter of its window",
		file: "src/durable/live/flow-control.ts",
		find: "if (Date.now() - account.at > LIMITS.liveUnreadStallMs) {",
		replace: "if (Date.now() - account.at > LIMITS.liveUnreadStallMs / 4) {",
		tests: [SLOW],
		only: "stall window",
	},
	{
		name: "flow control: a stalled replay is never closed",
		file: "src/durable/live/flow-control.ts",
		find: "if (Date.now() - account.at > LIMITS.liveUnreadStallMs) {",
		replace: "if (Date.now() - account.at > Number.POSITIVE_INFINITY) {",
		tests: [SLOW],
		only: "stall window",
	},
	{
		name: "replay: a page that fails to read leaves the socket open",
		file: "src/durable/live/live-streams.ts",
		find: 'closeQuietly(ws, 1011, "replay failed; resume from your last seq");',
		replace: "",
		tests: [SLOW, LIVE],
		only: "fails to read",
	},
	{
		name: "dedupe: a key is never found again",
		file: "src/durable/log/publisher.ts",
		find: "const seen = this.dedupe.lookup(r.key, now);",
		replace: "const seen = undefined as ReturnType<typeof this.dedupe.lookup>;",
		tests: [PUBLISH, TIMERS],
		only: "concurrent publishes with the same key",
	},
	{
		name: "groups: a pull consumer's ack answers 500",
		file: "src/durable/groups/consumer-groups.ts",
		find: "return this.#call(group, { dispatch: true }, () => ({ acked: this.#leases.ack(group, seqs, pullOwner(lease)) }));",
		replace: 'return fail("internal", "mutant");',
		tests: [AUTH, GROUPS],
		only: "each right opens exactly its endpoints",
	},

	// The client (src/client), beyond the scope of the score above: reported on their own.
	{
		name: "client: a late handler of a dropped socket voids the new socket's queued acks",
		file: "src/client/consumer.ts",
		find: "\t\tif (generation !== this.#link.generation) return;\n",
		replace: "",
		tests: [CLIENT],
		only: "attempt 2",
		client: true,
	},
	{
		name: "client: a reconnect leaves the filter out",
		file: "src/client/subscription.ts",
		find: "filter: filter && JSON.stringify(filter)",
		replace: "filter: this.lastSeq === undefined && filter ? JSON.stringify(filter) : undefined",
		tests: [CLIENT],
		only: "re-sends the filter",
		client: true,
	},
	{
		name: "client: a 4401 close keeps the old token",
		file: "src/client/link.ts",
		find: "this.#refreshToken = !opened || code === CLOSE_CODES.tokenExpired;",
		replace: "this.#refreshToken = !opened;",
		tests: [CLIENT],
		only: "4401",
		client: true,
	},
	{
		name: "client: a 401 answer is not retried with a new token",
		file: "src/client/http.ts",
		find: "if (res.status === 401 && !retried && this.#options.getToken)",
		replace: "if (res.status === 499 && !retried && this.#options.getToken)",
		tests: [CLIENT],
		only: "answered 401",
		client: true,
	},
	{
		name: "client: a 4429 close backs off no longer than a drop",
		file: "src/client/link.ts",
		find: "if (code === CLOSE_CODES.rateLimited) this.#failures += 3;",
		replace: "",
		tests: [CLIENT],
		only: "4429",
		client: true,
	},
	{
		name: "client: a refused publish is sent again at once",
		file: "src/client/drainer.ts",
		find: "await this.#backoff(connection.backoff(failures++));",
		replace: "await this.#backoff(0 * failures++);",
		tests: [CLIENT],
		only: "refuses with 429",
		client: true,
	},
	{
		name: "client: a 4408 close ends the subscription",
		file: "src/client/link.ts",
		find: "if (code === CLOSE_CODES.groupDeleted)",
		replace: "if (code === CLOSE_CODES.groupDeleted || code === CLOSE_CODES.slowConsumer)",
		tests: [CLIENT],
		only: "4408",
		client: true,
	},
];
