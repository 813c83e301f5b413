/**
 * The `Topic` Durable Object: one per topic name. It owns the topic's log,
 * publish keys, delayed messages, retention, live sockets and consumer
 * groups. The Worker calls its RPC methods after validating input; sockets
 * reach `fetch`.
 * @module
 */
import { DurableObject } from "cloudflare:workers";
import * as v from "valibot";
import { CLOSE_CODES, ERROR_STATUS, type ErrorBody, type ErrorCode } from "../protocol/errors.js";
import { PING, PONG } from "../protocol/frames.js";
import { DEFAULT_TOPIC_SETTINGS, LIMITS, TUNING } from "../protocol/limits.js";
import type { Attributes, GroupInfo, PublishResult, TopicSettings, TopicStats } from "../protocol/message.js";
import {
	describeIssues,
	type GroupSettingsInput,
	LiveQuerySchema,
	type PublishRecord,
	parseClientFrame,
	TopicName,
} from "../protocol/schema.js";
import type { Env } from "../worker/env.js";
import { Dedupe } from "./dedupe.js";
import { closeIfExpired, grantOf, grantOfSocket, publishDenied, type SocketGrant } from "./grant.js";
import { GroupMembers, memberOf } from "./group-members.js";
import {
	ConsumerGroups,
	type DeadLetterForward,
	type Owner,
	PULL_OWNER_PREFIX,
	parseTimerKey,
	TIMER_DEAD_LETTER,
	TIMER_LEASE,
	TIMER_RETRY,
} from "./groups.js";
import { uuidv7 } from "./ids.js";
import { LiveStreams, type Outgoing, send } from "./live-streams.js";
import { Meta } from "./meta.js";
import { migrate } from "./migrations.js";
import { PushDelivery } from "./push-delivery.js";
import { BucketMap, TokenBucket } from "./rate-limit.js";
import { Scheduler, type Timer } from "./scheduler.js";
import { type LogEntry, renderMessage, TopicLog } from "./topic-log.js";

/** Header by which the Worker tells the object its topic name on socket upgrades. */
export const TOPIC_HEADER = "x-tidings-topic";
export { EXPIRES_HEADER, LIMIT_KEY_HEADER, RIGHTS_HEADER } from "./grant.js";

const TIMER_DELAYED = "delayed";
const TIMER_RETENTION = "retention";

export class Topic extends DurableObject<Env> {
	readonly #meta: Meta;
	readonly #log: TopicLog;
	readonly #dedupe: Dedupe;
	readonly #scheduler: Scheduler;
	readonly #live: LiveStreams;
	readonly #groups: ConsumerGroups;
	readonly #members: GroupMembers;
	readonly #push: PushDelivery;
	readonly #frameBuckets = new BucketMap<WebSocket>(
		() => new TokenBucket(LIMITS.socketFramesPerSecond, LIMITS.socketFramesBurst),
	);
	readonly #grants = new WeakMap<WebSocket, SocketGrant>();
	/** Frames refused per socket within the current window. */
	readonly #refused = new WeakMap<WebSocket, { count: number; since: number }>();
	/** Publish buckets per token (its `sub`, or the token itself when it has none). */
	readonly #publishBuckets = new BucketMap<string>(
		() => new TokenBucket(LIMITS.tokenPublishesPerSecond, LIMITS.tokenPublishesBurst),
	);
	/** Group names, mirrored from storage: publishes wake each group's members. */
	#groupNames: string[];
	#topic: string | undefined;
	/** Whether the topic name is in storage. */
	#named = false;
	#topicJson = '""';
	#settings: TopicSettings;
	/** Due time of the retention timer, mirrored from the timers table. */
	#retentionDue: number | undefined;

	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
		const sql = ctx.storage.sql;
		migrate(sql);
		this.#meta = new Meta(sql);
		this.#log = new TopicLog(sql, this.#meta);
		this.#dedupe = new Dedupe(sql);
		this.#live = new LiveStreams(ctx, this.#log, () => this.#topicJson);
		this.#scheduler = new Scheduler(
			ctx.storage,
			{
				[TIMER_DELAYED]: (t, now) => this.#joinDelayed(t, now),
				[TIMER_RETENTION]: (_t, now) => this.#retain(now),
				[TIMER_LEASE]: (t, now) => {
					const group = t.key;
					this.#groups.expireDue(group, now);
					return () => this.#dispatch(group);
				},
				// A retry is due: its group's members may take it now.
				[TIMER_RETRY]: (t) => () => this.#dispatch(parseTimerKey(t.key).group),
				[TIMER_DEAD_LETTER]: (t, now) => {
					// Stays scheduled until the publish succeeds: a crash or a failure retries it.
					this.#scheduler.schedule(TIMER_DEAD_LETTER, t.key, now + TUNING.forwardRetryMs, t.payload);
					return () => void this.#forwardDeadLetter(t.key, JSON.parse(t.payload ?? "null") as DeadLetterForward);
				},
			},
			() => this.#reload(),
		);
		this.#groups = new ConsumerGroups(sql, this.#log, this.#scheduler, () => this.#topicJson);
		this.#members = new GroupMembers(ctx, this.#groups, (fn) => this.#transaction(fn));
		this.#push = new PushDelivery(
			this.#groups,
			(fn) => this.#transaction(fn),
			(g) => this.#dispatch(g),
		);
		this.#groupNames = this.#groups.names();
		this.#settings = { ...DEFAULT_TOPIC_SETTINGS, ...this.#meta.getJson<Partial<TopicSettings>>("settings") };
		this.#retentionDue = this.#scheduler.dueAt(TIMER_RETENTION, "log");
		const name = this.#meta.get("topic");
		if (name !== undefined) {
			this.#name(name);
			this.#named = true;
		}
		ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
		void ctx.blockConcurrencyWhile(async () => {
			await this.#scheduler.restore();
			const orphaned = this.#transaction(() => this.#groups.releaseOrphans(this.#members.connectedIds(), Date.now()));
			// Dispatch once the constructor is done and members can reconnect.
			for (const group of orphaned) queueMicrotask(() => this.#dispatch(group));
		});
	}

	// --- RPC ------------------------------------------------------------------

	/**
	 * Publishes one or more messages atomically: the immediate ones get
	 * consecutive seqs; the answer leaves only once the write is durable
	 * (the output gate holds it).
	 */
	publish(topic: string, records: PublishRecord[]): PublishResult[] {
		this.#name(topic, true);
		const now = Date.now();
		const { results, rows } = this.#transaction(() => this.#publish(records, now));
		this.#fanOut(rows);
		return results;
	}

	/**
	 * `publish` for callers with a rate limit (HTTP with a token): answers
	 * `undefined`, storing nothing, when `limitKey` is over its budget.
	 */
	publishLimited(topic: string, records: PublishRecord[], limitKey: string): PublishResult[] | undefined {
		if (!this.#publishBuckets.get(limitKey).take(records.length)) return undefined;
		return this.publish(topic, records);
	}

	/** History as JSON text: the stored message text is spliced in, never parsed. */
	history(topic: string, after: number, limit: number): string {
		this.#name(topic);
		const rows = this.#log.readBounded(after, limit, LIMITS.pageMaxBytes);
		const messages = rows.map((r) => renderMessage(this.#topicJson, r)).join(",");
		const next = rows.length > 0 ? (rows[rows.length - 1] as { seq: number }).seq : Math.max(after, 0);
		return `{"messages":[${messages}],"next_after":${next},"head_seq":${this.#log.head},"first_seq":${this.#log.first}}`;
	}

	stats(topic: string): TopicStats {
		this.#name(topic);
		return {
			topic,
			head_seq: this.#log.head,
			first_seq: this.#log.first,
			retained: this.#log.retained,
			delayed: this.#scheduler.count(TIMER_DELAYED),
			subscribers: this.#live.count,
			settings: this.#settings,
			groups: this.#groupNames.flatMap((g) => this.#groupInfo(g) ?? []),
		};
	}

	/** Changes retention; the trim itself runs in the background soon after. */
	configure(topic: string, change: Partial<TopicSettings>): TopicSettings {
		this.#name(topic, true);
		const next = { ...this.#settings, ...change };
		this.#transaction(() => {
			this.#meta.setJson("settings", next);
			this.#settings = next;
			this.#scheduleRetention(Date.now() + TUNING.retentionDelayMs);
		});
		return next;
	}

	// --- Consumer groups -----------------------------------------------------------

	/** Creates a group or changes its settings; answers `undefined` when the topic has too many groups. */
	configureGroup(
		topic: string,
		group: string,
		input: GroupSettingsInput,
	): { info: GroupInfo; created: boolean } | undefined {
		this.#name(topic, true);
		if (!this.#groupNames.includes(group) && this.#groupNames.length >= LIMITS.groupsPerTopicMax) return undefined;
		const { created } = this.#transaction(() => this.#groups.upsert(group, input));
		this.#groupNames = this.#groups.names();
		this.#dispatch(group);
		return { info: this.#groupInfo(group) as GroupInfo, created };
	}

	group(topic: string, group: string): GroupInfo | undefined {
		this.#name(topic);
		return this.#groupInfo(group);
	}

	deleteGroup(topic: string, group: string): boolean {
		this.#name(topic);
		const existed = this.#transaction(() => this.#groups.delete(group));
		this.#groupNames = this.#groups.names();
		for (const ws of this.ctx.getWebSockets(`g:${group}`)) {
			try {
				ws.close(CLOSE_CODES.groupDeleted, "group deleted");
			} catch {
				// already closing
			}
		}
		return existed;
	}

	/**
	 * Leases up to `max` messages for consumers that cannot hold a socket,
	 * under a lease id of this pull's own. `undefined`: no such group.
	 */
	pull(topic: string, group: string, max: number, ackTimeoutMs?: number): string | undefined {
		this.#name(topic);
		const settings = this.#groups.settings(group);
		if (!settings) return undefined;
		const now = Date.now();
		const lease = `${PULL_OWNER_PREFIX}${crypto.randomUUID()}`;
		const leased = this.#transaction(() =>
			this.#groups.take(group, lease, max, ackTimeoutMs ?? settings.ack_timeout_ms, now),
		);
		return `{"lease":"${lease}","messages":[${leased.map((d) => d.json).join(",")}]}`;
	}

	/** Acks pulled messages: of one pull when `lease` is given, else of any pull (never a socket's or push's). */
	ack(topic: string, group: string, seqs: number[], lease?: string): { acked: number[] } | undefined {
		this.#name(topic);
		if (!this.#groups.settings(group)) return undefined;
		const acked = this.#transaction(() => this.#groups.ack(group, seqs, pullOwner(lease)));
		this.#dispatch(group);
		return { acked };
	}

	nack(
		topic: string,
		group: string,
		seqs: number[],
		opts: { delay_ms?: number | undefined; error?: string | undefined; lease?: string | undefined },
	): { nacked: number[]; dead: number[] } | undefined {
		this.#name(topic);
		if (!this.#groups.settings(group)) return undefined;
		const now = Date.now();
		const { done, dead } = this.#transaction(() =>
			this.#groups.nack(group, seqs, now, {
				owner: pullOwner(opts.lease),
				...(opts.delay_ms === undefined ? {} : { delayMs: opts.delay_ms }),
				...(opts.error === undefined ? {} : { error: opts.error }),
			}),
		);
		this.#dispatch(group);
		return { nacked: done, dead: dead.map((d) => d.seq) };
	}

	deadLetters(topic: string, group: string, after: number, limit: number) {
		this.#name(topic);
		if (!this.#groups.settings(group)) return undefined;
		return this.#groups.deadLetters(group, after, limit);
	}

	redrive(topic: string, group: string, seqs?: number[]): { redriven: number } | undefined {
		this.#name(topic);
		if (!this.#groups.settings(group)) return undefined;
		const redriven = this.#transaction(() => this.#groups.redrive(group, Date.now(), seqs));
		this.#dispatch(group);
		return { redriven };
	}

	purgeDeadLetters(topic: string, group: string, seqs?: number[]): { purged: number } | undefined {
		this.#name(topic);
		if (!this.#groups.settings(group)) return undefined;
		return { purged: this.#transaction(() => this.#groups.purge(group, seqs)) };
	}

	// --- Sockets ----------------------------------------------------------------

	override async fetch(request: Request): Promise<Response> {
		const topic = v.safeParse(TopicName, request.headers.get(TOPIC_HEADER) ?? "");
		if (!topic.success) return errorResponse(describeIssues(topic.issues, "topic: "));
		const query = v.safeParse(LiveQuerySchema, Object.fromEntries(new URL(request.url).searchParams));
		if (!query.success) return errorResponse(describeIssues(query.issues, "query: "));
		const { group, prefetch, from, filter } = query.output;
		if (group !== undefined && !this.#groups.settings(group)) {
			return errorResponse({
				code: "not_found",
				message: `no group ${group} on this topic; create it with PUT /v1/topics/${topic.output}/groups/${group}`,
			});
		}
		if (this.ctx.getWebSockets().length >= this.#settings.max_sockets) {
			return errorResponse({
				code: "rate_limited",
				message: `topic ${topic.output} has its ${this.#settings.max_sockets} sockets (max_sockets); try again later`,
			});
		}
		if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
			// The preflight a client makes after a failed connect: everything else passed.
			return errorResponse({
				code: "upgrade_required",
				message: "every check passed; connect with a WebSocket client (Upgrade: websocket)",
			});
		}
		this.#name(topic.output, true);
		const pair = new WebSocketPair();
		const [client, server] = [pair[0], pair[1]];
		const grant = grantOf(request);
		if (group !== undefined) this.#members.accept(server, topic.output, group, prefetch, this.#log.head, grant);
		else this.#live.accept(server, topic.output, from, filter, grant);
		const protocol = request.headers.get("Sec-WebSocket-Protocol");
		return new Response(null, {
			status: 101,
			webSocket: client,
			...(protocol ? { headers: { "Sec-WebSocket-Protocol": protocol } } : {}),
		});
	}

	override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
		if (!this.#admitFrame(ws)) return;
		if (typeof message !== "string") {
			send(ws, {
				type: "error",
				code: "invalid_frame",
				message: "frames are JSON text; binary frames are not accepted",
			});
			return;
		}
		if (message === PING) {
			ws.send(PONG);
			return;
		}
		const parsed = parseClientFrame(message);
		if (!parsed.ok) {
			const { ok: _, ...error } = parsed;
			send(ws, { type: "error", ...error });
			return;
		}
		const frame = parsed.frame;
		if (frame.type === "received") {
			if (memberOf(ws))
				send(ws, { type: "error", code: "invalid_frame", message: "received is for live sockets; members ack" });
			else this.#live.received(ws, frame.seq);
			return;
		}
		if (frame.type === "drain") {
			const member = memberOf(ws);
			if (member) this.#members.drain(ws, member);
			else send(ws, { type: "error", code: "invalid_frame", message: "drain is for consumer group sockets (?group=)" });
			return;
		}
		if (frame.type === "ack" || frame.type === "nack") {
			const member = memberOf(ws);
			if (!member) {
				send(ws, {
					type: "error",
					code: "invalid_frame",
					message: `${frame.type} is for consumer group sockets (?group=)`,
				});
				return;
			}
			if (frame.type === "ack") this.#members.ack(ws, member, frame.seq, frame.ref);
			else this.#members.nack(ws, member, frame.seq, frame.delay_ms, frame.error, frame.ref);
			this.#dispatch(member.group);
			return;
		}
		const { type: _type, ref, ...body } = frame;
		const grant = this.#grant(ws);
		const denied = publishDenied(grant);
		if (denied) {
			send(ws, { type: "error", ...denied, ref });
			// An expired token gets nothing more on this socket: the client reconnects with a fresh one.
			if (denied.code === "unauthorized") closeIfExpired(ws, grant);
			return;
		}
		const count = "messages" in body ? body.messages.length : 1;
		if (grant.limitKey !== undefined && !this.#publishBuckets.get(grant.limitKey).take(count)) {
			// Persistent abuse closes the socket like frame flooding does.
			if (this.#refuse(ws) > 0) send(ws, { type: "error", code: "rate_limited", message: publishLimitMessage(), ref });
			return;
		}
		try {
			if ("messages" in body) {
				const results = this.publish(this.#topic ?? "", body.messages);
				send(ws, { type: "published", ref, messages: results });
			} else {
				const [result] = this.publish(this.#topic ?? "", [body]);
				send(ws, { type: "published", ref, ...(result as PublishResult) });
			}
		} catch (err) {
			console.error("tidings: publish over socket failed", err);
			send(ws, {
				type: "error",
				code: "internal",
				message: "the publish failed and nothing was stored; send it again",
				ref,
			});
		}
	}

	override webSocketClose(ws: WebSocket, code: number, reason: string): void {
		this.#live.forget(ws);
		this.#frameBuckets.delete(ws);
		const member = memberOf(ws);
		if (member) {
			this.#members.closed(member);
			this.#dispatch(member.group, ws);
		}
		// Finish the close handshake, or the client sees 1006.
		try {
			ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
		} catch {
			// already closed
		}
	}

	override webSocketError(ws: WebSocket): void {
		this.#live.forget(ws);
		const member = memberOf(ws);
		if (member) {
			this.#members.closed(member);
			this.#dispatch(member.group, ws);
		}
	}

	override async alarm(): Promise<void> {
		this.#scheduler.runDue();
	}

	// --- Internals ----------------------------------------------------------------

	/** Publishes a dead letter to its dead-letter topic (another object) with this object's own authority. */
	async #forwardDeadLetter(key: string, forward: DeadLetterForward): Promise<void> {
		try {
			const target = this.env.TOPIC.get(this.env.TOPIC.idFromName(forward.topic));
			await target.publish(forward.topic, [forward.record]);
			this.#scheduler.cancel(TIMER_DEAD_LETTER, key);
		} catch (err) {
			console.error(`tidings: forwarding dead letter ${key} to ${forward.topic} failed; retrying`, err);
		}
	}

	/** A socket's grant, read from its attachment once per instance. */
	#grant(ws: WebSocket): SocketGrant {
		let g = this.#grants.get(ws);
		if (!g) {
			g = grantOfSocket(ws);
			this.#grants.set(ws, g);
		}
		return g;
	}

	/**
	 * Counts a frame refused for a rate limit (the socket's frames, or its
	 * token's publishes); a socket with too many in a window is closed with
	 * 4429. Answers the count so far in the window, or 0 once closed.
	 */
	#refuse(ws: WebSocket): number {
		const now = Date.now();
		const window = this.#refused.get(ws);
		const fresh = !window || now - window.since > LIMITS.socketRefusedWindowMs;
		const refused = fresh ? 1 : window.count + 1;
		this.#refused.set(ws, { count: refused, since: fresh ? now : window.since });
		if (refused < LIMITS.socketRefusedBeforeClose) return refused;
		try {
			ws.close(CLOSE_CODES.rateLimited, "rate limited");
		} catch {
			// already closing
		}
		return 0;
	}

	/**
	 * The per-socket frame limit: a frame over it is refused with a
	 * `rate_limited` error; a socket with too many refused in a window is
	 * closed with 4429.
	 */
	#admitFrame(ws: WebSocket): boolean {
		// Only token sockets have a budget (the same sockets that have a publish limit key).
		if (this.#grant(ws).limitKey === undefined) return true;
		if (this.#frameBuckets.get(ws).take()) return true;
		const refused = this.#refuse(ws);
		if (refused === 1 || (refused > 0 && refused % 10 === 0)) {
			// Tell the client, without answering every flooded frame.
			send(ws, {
				type: "error",
				code: "rate_limited",
				message: `at most ${LIMITS.socketFramesPerSecond} frames a second per socket; frames are being dropped`,
			});
		}
		return false;
	}

	#groupInfo(group: string): GroupInfo | undefined {
		const settings = this.#groups.settings(group);
		const counts = this.#groups.counts(group);
		if (!settings || !counts) return undefined;
		// The push secret is write-only.
		const shown = settings.push ? { ...settings, push: { ...settings.push, secret: "***" } } : settings;
		return { group, settings: shown, cursor: this.#groups.cursor(group), counts, members: this.#members.count(group) };
	}

	/** Hands ready messages of a group to its socket members and its push endpoint. */
	#dispatch(group: string, leaving?: WebSocket): void {
		this.#members.dispatch(group, leaving);
		this.#push.dispatch(group);
	}

	#publish(records: PublishRecord[], now: number): { results: PublishResult[]; rows: Outgoing[] } {
		const results: PublishResult[] = new Array(records.length);
		const entries: LogEntry[] = [];
		/** For each entry, the result slot it answers. */
		const slots: number[] = [];
		/** Keys first seen in this request: a repeat inside a batch answers the first. */
		const batchKeys = new Map<string, number>();
		const repeats: Array<[slot: number, of: number]> = [];

		records.forEach((r, slot) => {
			if (r.key !== undefined) {
				const first = batchKeys.get(r.key);
				if (first !== undefined) {
					repeats.push([slot, first]);
					return;
				}
				const seen = this.#dedupe.lookup(r.key, now);
				if (seen) {
					results[slot] = seen;
					return;
				}
				batchKeys.set(r.key, slot);
			}
			const id = uuidv7(now);
			const entry: LogEntry = {
				id,
				key: r.key,
				data_json: r.data_json,
				attributes: r.attributes,
				traceparent: r.traceparent,
				baggage: r.baggage,
			};
			if (r.delay_ms !== undefined && r.delay_ms > 0) {
				const deliverAt = now + r.delay_ms;
				this.#scheduler.schedule(TIMER_DELAYED, id, deliverAt, JSON.stringify(entry));
				results[slot] = { id, deliver_at: deliverAt };
				if (r.key !== undefined) this.#dedupe.remember(r.key, id, { deliver_at: deliverAt }, now);
			} else {
				entries.push(entry);
				slots.push(slot);
			}
		});

		const appended = this.#log.append(entries, now);
		const rows: Outgoing[] = appended.map((row, i) => {
			const entry = entries[i] as LogEntry;
			results[slots[i] as number] = { id: row.id, seq: row.seq };
			if (entry.key !== undefined) this.#dedupe.remember(entry.key, row.id, { seq: row.seq }, now);
			return { row, attributes: entry.attributes as Attributes | undefined };
		});
		for (const [slot, of] of repeats) results[slot] = { ...(results[of] as PublishResult), duplicate: true };
		if (appended.length > 0 || batchKeys.size > 0) this.#afterAppend(now, batchKeys.size > 0);
		return { results, rows };
	}

	/** A delayed message is due: it joins the log now and gets its seq. */
	#joinDelayed(timer: Timer, now: number): () => void {
		const entry = JSON.parse(timer.payload ?? "null") as LogEntry;
		const [row] = this.#log.append([entry], now);
		if (!row) throw new Error("delayed message was not appended");
		if (entry.key !== undefined) this.#dedupe.delivered(entry.key, entry.id, row.seq);
		this.#afterAppend(now, false);
		const out: Outgoing = { row, attributes: entry.attributes as Attributes | undefined };
		return () => this.#fanOut([out]);
	}

	/** New messages joined the log: live subscribers get them, and each group may hand them out. */
	#fanOut(rows: Outgoing[]): void {
		if (rows.length === 0) return;
		// The messages are stored: a failure from here on must not report the publish as failed.
		try {
			this.#live.broadcast(rows);
			for (const group of this.#groupNames) this.#dispatch(group);
		} catch (err) {
			console.error("tidings: fan-out after a publish failed", err);
		}
	}

	/**
	 * Makes sure a retention timer covers what was just written: soon when the
	 * log is over its count, else when the oldest message or key expires.
	 * Cheap on the hot path: it writes only when the timer must move sooner.
	 */
	#afterAppend(now: number, keyed: boolean): void {
		if (this.#log.retained > this.#settings.max_messages) {
			this.#scheduleRetention(now + TUNING.retentionDelayMs);
		} else if (this.#retentionDue === undefined) {
			const oldest = this.#log.oldestTs();
			const candidates = [
				oldest === undefined ? Number.POSITIVE_INFINITY : oldest + this.#settings.max_age_ms,
				keyed ? now + LIMITS.dedupeWindowMs : Number.POSITIVE_INFINITY,
			];
			const due = Math.min(...candidates);
			if (Number.isFinite(due)) this.#scheduleRetention(due);
		}
	}

	#scheduleRetention(due: number): void {
		if (this.#retentionDue !== undefined && this.#retentionDue <= due) return;
		this.#scheduler.schedule(TIMER_RETENTION, "log", due, null, true);
		this.#retentionDue = due;
	}

	/** The retention timer: trims the log and forgets expired keys, in chunks. */
	#retain(now: number): undefined {
		this.#retentionDue = undefined;
		const { max_messages, max_age_ms } = this.#settings;
		const trimmed = this.#log.trim(max_messages, max_age_ms, now, TUNING.retentionChunk, (upTo) =>
			this.#groups.keepBeforeTrim(upTo),
		);
		const purged = this.#dedupe.purge(now, TUNING.retentionChunk);
		if (trimmed.more || purged >= TUNING.retentionChunk) {
			this.#scheduleRetention(now + 1);
			return;
		}
		const oldest = this.#log.oldestTs();
		const keyExpiry = this.#dedupe.nextExpiry();
		const due = Math.min(
			oldest === undefined ? Number.POSITIVE_INFINITY : oldest + max_age_ms,
			keyExpiry ?? Number.POSITIVE_INFINITY,
		);
		if (Number.isFinite(due)) this.#scheduleRetention(due);
		return undefined;
	}

	/** Runs `fn` in one SQLite transaction; on failure, in-memory mirrors are reloaded. */
	#transaction<T>(fn: () => T): T {
		try {
			return this.ctx.storage.transactionSync(fn);
		} catch (err) {
			this.#reload();
			throw err;
		}
	}

	#reload(): void {
		this.#scheduler.forgetAlarm();
		this.#groups.forgetSettings();
		this.#log.reload();
		this.#settings = { ...DEFAULT_TOPIC_SETTINGS, ...this.#meta.getJson<Partial<TopicSettings>>("settings") };
		this.#retentionDue = this.#scheduler.dueAt(TIMER_RETENTION, "log");
	}

	/**
	 * Learns the topic name from the caller. It is stored on the first write
	 * (the alarm needs it with no request in hand); reads leave storage alone.
	 */
	#name(topic: string, persist = false): void {
		if (this.#topic !== topic) {
			this.#topic = topic;
			this.#topicJson = JSON.stringify(topic);
		}
		if (persist && !this.#named) {
			if (this.#meta.get("topic") === undefined) this.#meta.set("topic", topic);
			this.#named = true;
		}
	}
}

function publishLimitMessage(): string {
	return `at most ${LIMITS.tokenPublishesPerSecond} messages a second per token on one topic; retry with back-off`;
}

function pullOwner(lease: string | undefined): Owner {
	return lease ?? { prefix: PULL_OWNER_PREFIX };
}

function errorResponse({ code, message }: { code: ErrorCode; message: string }): Response {
	return Response.json({ error: { code, message } } satisfies ErrorBody, { status: ERROR_STATUS[code] });
}
