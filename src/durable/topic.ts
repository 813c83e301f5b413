/**
 * The `Topic` Durable Object, one per topic name: the wiring of its rooms.
 * Each module owns one job (the log, keys, timers, publishing, retention,
 * live sockets, groups and their deliveries, the socket gate, frames, abuse
 * limits); this class builds them, answers the Worker's RPC calls
 * (`TopicApi`, inputs already validated) and hands sockets and the alarm to
 * the module that owns them.
 * @module
 */
import { DurableObject } from "cloudflare:workers";
import { CLOSE_CODES } from "../protocol/errors.js";
import { PING, PONG } from "../protocol/frames.js";
import {
	type Env,
	fail,
	memberTag,
	type NackOptions,
	noGroup,
	OWNER_PREFIX,
	ok,
	type Result,
	type TopicApi,
} from "../protocol/internal.js";
import { LIMITS, TUNING } from "../protocol/limits.js";
import type { GroupInfo, GroupSettings, PublishResult, TopicSettings, TopicStats } from "../protocol/message.js";
import type { GroupSettingsInput, PublishRecord, TopicSettingsInput } from "../protocol/schema.js";
import { AbuseLimits, PUBLISH_LIMIT_MESSAGE } from "./abuse.js";
import { type DeadLetterForward, DeadLetters, TIMER_DEAD_LETTER } from "./dead-letters.js";
import { Dedupe } from "./dedupe.js";
import { GroupMembers } from "./group-members.js";
import { ConsumerGroups } from "./groups.js";
import { groupOfTimer, Leases, type Owner, TIMER_LEASE, TIMER_RETRY } from "./leases.js";
import { LiveStreams, type Outgoing } from "./live-streams.js";
import { Meta } from "./meta.js";
import { migrate } from "./migrations.js";
import { Publisher, TIMER_DELAYED } from "./publisher.js";
import { PushDelivery } from "./push-delivery.js";
import { Retention, TIMER_RETENTION } from "./retention.js";
import { Scheduler } from "./scheduler.js";
import { Settings } from "./settings.js";
import { frameTable, receiveFrame } from "./socket-frames.js";
import { openSocket } from "./socket-gate.js";
import { closeQuietly, memberOf } from "./sockets.js";
import { renderMessage, TopicLog } from "./topic-log.js";
import { type Transaction, transactional } from "./transaction.js";

export class Topic extends DurableObject<Env> implements TopicApi {
	/** The topic's name: the object's own (`idFromName`), or as stored by its first write. */
	readonly #topic: string;
	readonly #topicJson: string;
	readonly #meta: Meta;
	readonly #settings: Settings;
	readonly #log: TopicLog;
	readonly #scheduler: Scheduler;
	readonly #publisher: Publisher;
	readonly #retention: Retention;
	readonly #live: LiveStreams;
	readonly #groups: ConsumerGroups;
	readonly #leases: Leases;
	readonly #deadLetters: DeadLetters;
	readonly #members: GroupMembers;
	readonly #push: PushDelivery;
	readonly #abuse = new AbuseLimits();
	readonly #frames: ReturnType<typeof frameTable>;
	readonly #transaction: Transaction;
	/** Whether the topic name is in storage (an alarm may wake the object without one). */
	#named: boolean;

	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
		const sql = ctx.storage.sql;
		migrate(sql);
		const meta = new Meta(sql);
		this.#meta = meta;
		const stored = meta.get("topic");
		this.#named = stored !== undefined;
		this.#topic = ctx.id.name ?? stored ?? "";
		const topicJson = JSON.stringify(this.#topic);
		this.#topicJson = topicJson;
		this.#transaction = transactional(ctx.storage, () => this.#reload());
		this.#settings = new Settings(meta);
		this.#log = new TopicLog(sql, meta);
		const dedupe = new Dedupe(sql);
		this.#scheduler = new Scheduler(
			ctx.storage,
			{
				[TIMER_DELAYED]: (t, now) => this.#publisher.joinDelayed(t, now),
				[TIMER_RETENTION]: (_t, now) => this.#retention.run(now),
				[TIMER_LEASE]: (t, now) => {
					this.#leases.expireDue(t.key, now);
					return () => this.#dispatch(t.key);
				},
				[TIMER_RETRY]: (t) => () => this.#dispatch(groupOfTimer(t.key)),
				[TIMER_DEAD_LETTER]: (t, now) => {
					// Stays scheduled until the publish succeeds: a crash or a failure retries it.
					this.#scheduler.schedule(TIMER_DEAD_LETTER, t.key, now + TUNING.forwardRetryMs, t.payload);
					return () => void this.#forwardDeadLetter(t.key, JSON.parse(t.payload ?? "null") as DeadLetterForward);
				},
			},
			() => this.#reload(),
		);
		this.#live = new LiveStreams(ctx, this.#log, this.#topic, topicJson);
		this.#groups = new ConsumerGroups(sql, this.#log);
		this.#deadLetters = new DeadLetters(sql, this.#scheduler);
		this.#leases = new Leases(sql, this.#log, this.#scheduler, this.#groups, this.#deadLetters, () => topicJson);
		this.#members = new GroupMembers(ctx, this.#groups, this.#leases, this.#transaction);
		this.#push = new PushDelivery(this.#groups, this.#leases, this.#transaction, (g) => this.#dispatch(g));
		this.#retention = new Retention(
			this.#log,
			dedupe,
			this.#scheduler,
			() => this.#settings.current,
			(upTo) => this.#leases.keepBeforeTrim(upTo),
		);
		this.#publisher = new Publisher(this.#log, dedupe, this.#scheduler, this.#retention, this.#transaction, (rows) =>
			this.#fanOut(rows),
		);
		this.#frames = frameTable({
			live: this.#live,
			members: this.#members,
			abuse: this.#abuse,
			publish: (records) => this.#publish(records),
			dispatch: (group) => this.#dispatch(group),
		});
		ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
		void ctx.blockConcurrencyWhile(async () => {
			await this.#scheduler.restore();
			const orphaned = this.#transaction(() => this.#leases.releaseOrphans(this.#members.connectedIds(), Date.now()));
			// Dispatch once the constructor is done and members can reconnect.
			for (const group of orphaned) queueMicrotask(() => this.#dispatch(group));
		});
	}

	// --- RPC (TopicApi) -------------------------------------------------------------

	publish(records: PublishRecord[], limitKey?: string): Result<PublishResult[]> {
		if (!this.#abuse.takePublishes(limitKey, records.length)) return fail("rate_limited", PUBLISH_LIMIT_MESSAGE);
		return ok(this.#publish(records));
	}

	history(after: number, limit: number): string {
		const log = this.#log;
		const rows = log.readBounded(after, limit, LIMITS.pageMaxBytes);
		const messages = rows.map((r) => renderMessage(this.#topicJson, r)).join(",");
		const next = rows.at(-1)?.seq ?? Math.max(after, 0);
		return `{"messages":[${messages}],"next_after":${next},"head_seq":${log.head},"first_seq":${log.first}}`;
	}

	stats(): TopicStats {
		return {
			topic: this.#topic,
			head_seq: this.#log.head,
			first_seq: this.#log.first,
			retained: this.#log.retained,
			delayed: this.#publisher.delayed,
			subscribers: this.#live.count,
			settings: this.#settings.current,
			groups: this.#groups.names.flatMap((g) => this.#groupInfo(g) ?? []),
		};
	}

	/** Changes the topic's settings; a trim runs in the background soon after. */
	configure(change: TopicSettingsInput): TopicSettings {
		this.#remember();
		return this.#transaction(() => {
			const next = this.#settings.change(change);
			this.#retention.settingsChanged(Date.now());
			return next;
		});
	}

	configureGroup(group: string, input: GroupSettingsInput): Result<{ info: GroupInfo; created: boolean }> {
		this.#remember();
		const names = this.#groups.names;
		if (!names.includes(group) && names.length >= LIMITS.groupsPerTopicMax) {
			return fail("limit_exceeded", `a topic has at most ${LIMITS.groupsPerTopicMax} consumer groups`);
		}
		const { created } = this.#transaction(() => this.#groups.upsert(group, input));
		this.#dispatch(group);
		return ok({ info: this.#groupInfo(group) as GroupInfo, created });
	}

	group(group: string): Result<GroupInfo> {
		const info = this.#groupInfo(group);
		return info ? ok(info) : noGroup(this.#topic, group);
	}

	deleteGroup(group: string): Result<{ deleted: true }> {
		const existed = this.#transaction(() => {
			this.#leases.deleteGroup(group);
			this.#deadLetters.deleteGroup(group);
			return this.#groups.delete(group);
		});
		if (!existed) return noGroup(this.#topic, group);
		for (const ws of this.ctx.getWebSockets(memberTag(group))) {
			closeQuietly(ws, CLOSE_CODES.groupDeleted, "group deleted");
		}
		return ok({ deleted: true });
	}

	/** Leases up to `max` messages under a lease id of this pull's own, for consumers that cannot hold a socket. */
	pull(group: string, max: number, ackTimeoutMs?: number): Result<string> {
		return this.#inGroup(group, false, (settings, now) => {
			const lease = `${OWNER_PREFIX.pull}${crypto.randomUUID()}`;
			const leased = this.#leases.take(group, lease, max, ackTimeoutMs ?? settings.ack_timeout_ms, now);
			return `{"lease":"${lease}","messages":[${leased.map((d) => d.json).join(",")}]}`;
		});
	}

	/** Acks pulled messages: of one pull when `lease` is given, else of any pull (never a socket's or push's). */
	ack(group: string, seqs: number[], lease?: string): Result<{ acked: number[] }> {
		return this.#inGroup(group, true, () => ({ acked: this.#leases.ack(group, seqs, pullOwner(lease)) }));
	}

	nack(group: string, seqs: number[], options: NackOptions): Result<{ nacked: number[]; dead: number[] }> {
		const { delay_ms, error, lease } = options;
		return this.#inGroup(group, true, (_s, now) => {
			const { done, dead } = this.#leases.nack(group, seqs, now, {
				owner: pullOwner(lease),
				...(delay_ms === undefined ? {} : { delayMs: delay_ms }),
				...(error === undefined ? {} : { error }),
			});
			return { nacked: done, dead: dead.map((d) => d.seq) };
		});
	}

	deadLetters(group: string, after: number, limit: number) {
		return this.#inGroup(group, false, () => this.#deadLetters.list(group, after, limit));
	}

	redrive(group: string, seqs?: number[]): Result<{ redriven: number }> {
		return this.#inGroup(group, true, (_s, now) => ({ redriven: this.#deadLetters.redrive(group, now, seqs) }));
	}

	purgeDeadLetters(group: string, seqs?: number[]): Result<{ purged: number }> {
		return this.#inGroup(group, false, () => ({ purged: this.#deadLetters.purge(group, seqs) }));
	}

	// --- Sockets and the alarm -----------------------------------------------------------

	override async fetch(request: Request): Promise<Response> {
		return openSocket(request, {
			topic: this.#topic,
			log: this.#log,
			groups: this.#groups,
			live: this.#live,
			members: this.#members,
			sockets: () => ({ open: this.ctx.getWebSockets().length, max: this.#settings.current.max_sockets }),
			accepting: () => this.#remember(),
		});
	}

	override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
		receiveFrame(this.#frames, this.#abuse, ws, message);
	}

	override webSocketClose(ws: WebSocket, code: number, reason: string): void {
		this.#socketGone(ws);
		// Finish the close handshake, or the client sees 1006.
		closeQuietly(ws, code, reason);
	}

	override webSocketError(ws: WebSocket): void {
		this.#socketGone(ws);
	}

	override async alarm(): Promise<void> {
		this.#scheduler.runDue();
	}

	// --- Internals ------------------------------------------------------------------------

	#publish(records: PublishRecord[]): PublishResult[] {
		this.#remember();
		return this.#publisher.publish(records);
	}

	/** New messages joined the log: live subscribers get them, and each group may hand them out. */
	#fanOut(rows: Outgoing[]): void {
		this.#live.broadcast(rows);
		for (const group of this.#groups.names) this.#dispatch(group);
	}

	/** Hands ready messages of a group to its socket members and its push endpoint. */
	#dispatch(group: string, leaving?: WebSocket): void {
		this.#members.dispatch(group, leaving);
		this.#push.dispatch(group);
	}

	/**
	 * The shape of every group call: the group must exist; `fn` runs in one
	 * transaction; with `dispatch`, what the call freed is handed out after.
	 */
	#inGroup<T>(group: string, dispatch: boolean, fn: (settings: GroupSettings, now: number) => T): Result<T> {
		const settings = this.#groups.settings(group);
		if (!settings) return noGroup(this.#topic, group);
		const value = this.#transaction(() => fn(settings, Date.now()));
		if (dispatch) this.#dispatch(group);
		return ok(value);
	}

	#groupInfo(group: string): GroupInfo | undefined {
		const settings = this.#groups.settings(group);
		const counts = this.#groups.counts(group, this.#deadLetters.count(group));
		if (!settings || !counts) return undefined;
		// The push secret is write-only.
		const shown = settings.push ? { ...settings, push: { ...settings.push, secret: "***" } } : settings;
		return { group, settings: shown, cursor: this.#groups.cursor(group), counts, members: this.#members.count(group) };
	}

	/** A socket closed or failed: forget it everywhere, and hand a member's leases to the others. */
	#socketGone(ws: WebSocket): void {
		this.#live.forget(ws);
		this.#abuse.forget(ws);
		const member = memberOf(ws);
		if (member) {
			this.#members.closed(member);
			this.#dispatch(member.group, ws);
		}
	}

	/** Publishes a dead letter to its dead-letter topic (another object) with this object's own authority. */
	async #forwardDeadLetter(key: string, forward: DeadLetterForward): Promise<void> {
		try {
			const target = this.env.TOPIC.getByName(forward.topic);
			const result = await target.publish([forward.record]);
			if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
			this.#scheduler.cancel(TIMER_DEAD_LETTER, key);
		} catch (err) {
			console.error(`tidings: forwarding dead letter ${key} to ${forward.topic} failed; retrying`, err);
		}
	}

	/** In-memory mirrors reload after a rolled-back transaction. */
	#reload(): void {
		this.#scheduler.forgetAlarm();
		this.#groups.forget();
		this.#leases.forget();
		this.#log.reload();
		this.#settings.reload();
		this.#retention.reload();
	}

	/** Stores the topic name on the first write: an alarm may wake the object where `ctx.id.name` is not known. */
	#remember(): void {
		if (this.#named) return;
		if (this.#meta.get("topic") === undefined) this.#meta.set("topic", this.#topic);
		this.#named = true;
	}
}

function pullOwner(lease: string | undefined): Owner {
	return lease ?? { prefix: OWNER_PREFIX.pull };
}
