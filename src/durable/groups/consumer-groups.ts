/**
 * Consumer groups, as the rest of the object sees them: every group call the
 * Worker can make, the group timers, and `dispatch`, which hands what a
 * group has ready to its member sockets and its push endpoint.
 *
 * Every call has one shape: the group must exist (else the one `noGroup`
 * failure), the work runs in one transaction, and a call that frees
 * messages dispatches after it commits.
 * @module
 */
import { CLOSE_CODES } from "../../protocol/errors.js";
import {
	fail,
	type NackOptions,
	noGroup,
	OWNER_PREFIX,
	ok,
	type Result,
	type SocketGrant,
} from "../../protocol/internal.js";
import { LIMITS, TUNING } from "../../protocol/limits.js";
import type { DeadLetter, GroupInfo, GroupSettings } from "../../protocol/message.js";
import type { GroupSettingsInput, PublishRecord } from "../../protocol/schema.js";
import type { TopicLog } from "../log/topic-log.js";
import { memberOf } from "../sockets/attachments.js";
import type { Scheduler, TimerHandler } from "../storage/scheduler.js";
import type { Transaction } from "../storage/transaction.js";
import { type DeadLetterForward, DeadLetters, TIMER_DEAD_LETTER } from "./dead-letters.js";
import { GroupMembers } from "./group-members.js";
import { groupOfTimer, Leases, type Owner, TIMER_LEASE, TIMER_RETRY } from "./leases.js";
import { PushDelivery } from "./push-delivery.js";
import { GroupRegistry } from "./registry.js";

export interface GroupsContext {
	ctx: DurableObjectState;
	topic: string;
	log: TopicLog;
	scheduler: Scheduler;
	transaction: Transaction;
	/** Publishes a dead letter on another topic; a refusal or a throw is retried later. */
	forward: (topic: string, record: PublishRecord) => Promise<Result<unknown>>;
}

export class ConsumerGroups {
	readonly #topic: string;
	readonly #transaction: Transaction;
	readonly #registry: GroupRegistry;
	readonly #leases: Leases;
	readonly #deadLetters: DeadLetters;
	readonly #members: GroupMembers;
	readonly #push: PushDelivery;
	/** Groups whose members settled something since the last dispatch they caused (see `dispatchSoon`). */
	readonly #settled = new Set<string>();
	#settledTimer: ReturnType<typeof setTimeout> | undefined;

	constructor(private readonly context: GroupsContext) {
		const { ctx, topic, log, scheduler, transaction } = context;
		const sql = ctx.storage.sql;
		const topicJson = JSON.stringify(topic);
		this.#topic = topic;
		this.#transaction = transaction;
		this.#registry = new GroupRegistry(sql, log);
		this.#deadLetters = new DeadLetters(sql, scheduler);
		this.#leases = new Leases(sql, log, scheduler, this.#registry, this.#deadLetters, () => topicJson);
		this.#members = new GroupMembers(ctx, this.#registry, this.#leases, transaction);
		this.#push = new PushDelivery(this.#registry, this.#leases, transaction, (g) => this.dispatch(g));
	}

	/** The group timers, for the object's scheduler. */
	timers(): Record<string, TimerHandler> {
		return {
			[TIMER_LEASE]: (t, now) => {
				this.#leases.expireDue(t.key, now);
				return () => this.dispatch(t.key);
			},
			[TIMER_RETRY]: (t) => () => this.dispatch(groupOfTimer(t.key)),
			[TIMER_DEAD_LETTER]: (t, now) => {
				// Stays scheduled until the publish succeeds: a crash or a failure retries it.
				this.context.scheduler.schedule(TIMER_DEAD_LETTER, t.key, now + TUNING.forwardRetryMs, t.payload);
				return () => void this.#forward(t.key, JSON.parse(t.payload ?? "null") as DeadLetterForward);
			},
		};
	}

	/**
	 * After a restart: sockets from before are gone without a close event, so
	 * what their members held goes back to the groups now. Call once the
	 * constructor is done.
	 */
	releaseOrphans(): void {
		const orphaned = this.#transaction(() => this.#leases.releaseOrphans(this.#members.connectedIds(), Date.now()));
		// Dispatch once members can reconnect.
		for (const group of orphaned) queueMicrotask(() => this.dispatch(group));
	}

	/** Drops what is cached in memory, after a rolled-back transaction. */
	forget(): void {
		this.#registry.forget();
		this.#leases.forget();
	}

	/** Before retention deletes log rows up to `upTo`: what groups still owe keeps its text. */
	keepBeforeTrim(upTo: number): void {
		this.#leases.keepBeforeTrim(upTo);
	}

	exists(group: string): boolean {
		return this.#registry.settings(group) !== undefined;
	}

	/** Hands ready messages of a group to its socket members and its push endpoint. */
	dispatch(group: string, leaving?: WebSocket): void {
		this.#members.dispatch(group, leaving);
		this.#push.dispatch(group);
	}

	/**
	 * After a member's ack or nack: the dispatch waits for a zero-delay
	 * timer, so that the acks arriving together (members that read the same
	 * publish ack within a few hundred microseconds) share one dispatch, in
	 * which the least served go first. Dispatching on each ack hands what is
	 * there to whichever member acked first, and the members whose acks
	 * happen to land right after a publish keep taking more than their share.
	 */
	dispatchSoon(group: string): void {
		this.#settled.add(group);
		this.#settledTimer ??= setTimeout(() => {
			this.#settledTimer = undefined;
			const groups = [...this.#settled];
			this.#settled.clear();
			for (const g of groups) this.dispatch(g);
		}, 0);
	}

	/** The topic was deleted: a dispatch still waiting must not touch the new topic's storage. */
	retire(): void {
		clearTimeout(this.#settledTimer);
		this.#settledTimer = undefined;
		this.#settled.clear();
	}

	/** New messages are in the log: every group may hand them out. */
	dispatchAll(): void {
		for (const group of this.#registry.names) this.dispatch(group);
	}

	infos(): GroupInfo[] {
		return this.#registry.names.flatMap((g) => this.#info(g) ?? []);
	}

	// --- Member sockets -------------------------------------------------------------

	get members(): GroupMembers {
		return this.#members;
	}

	accept(ws: WebSocket, group: string, prefetch: number, grant: SocketGrant, pack: boolean): void {
		this.#members.accept(ws, this.#topic, group, prefetch, this.context.log.head, grant, pack);
	}

	/** A socket closed or failed: a member's leases go to the others. */
	socketGone(ws: WebSocket): void {
		const member = memberOf(ws);
		if (!member) return;
		this.#members.closed(member);
		this.dispatch(member.group, ws);
	}

	// --- The Worker's calls -----------------------------------------------------------

	configure(group: string, input: GroupSettingsInput): Result<{ info: GroupInfo; created: boolean }> {
		const names = this.#registry.names;
		if (!names.includes(group) && names.length >= LIMITS.groupsPerTopicMax) {
			return fail("limit_exceeded", `a topic has at most ${LIMITS.groupsPerTopicMax} consumer groups`);
		}
		const { created } = this.#transaction(() => this.#registry.upsert(group, input));
		this.dispatch(group);
		return ok({ info: this.#info(group) as GroupInfo, created });
	}

	info(group: string): Result<GroupInfo> {
		const info = this.#info(group);
		return info ? ok(info) : noGroup(this.#topic, group);
	}

	delete(group: string): Result<{ deleted: true }> {
		const existed = this.#transaction(() => {
			this.#leases.deleteGroup(group);
			this.#deadLetters.deleteGroup(group);
			return this.#registry.delete(group);
		});
		if (!existed) return noGroup(this.#topic, group);
		this.#members.closeAll(group, CLOSE_CODES.groupDeleted, "group deleted");
		return ok({ deleted: true });
	}

	/** Leases up to `max` messages under a lease id of this pull's own, for consumers that cannot hold a socket. */
	pull(group: string, max: number, ackTimeoutMs?: number): Result<string> {
		return this.#call(group, { dispatch: false }, (settings, now) => {
			const lease = `${OWNER_PREFIX.pull}${crypto.randomUUID()}`;
			const leased = this.#leases.take(group, lease, max, ackTimeoutMs ?? settings.ack_timeout_ms, now);
			return `{"lease":"${lease}","messages":[${leased.map((d) => d.json).join(",")}]}`;
		});
	}

	/** Acks pulled messages: of one pull when `lease` is given, else of any pull (never a socket's or push's). */
	ack(group: string, seqs: number[], lease?: string): Result<{ acked: number[] }> {
		return this.#call(group, { dispatch: true }, () => ({ acked: this.#leases.ack(group, seqs, pullOwner(lease)) }));
	}

	nack(group: string, seqs: number[], options: NackOptions): Result<{ nacked: number[]; dead: number[] }> {
		const { delay_ms, error, lease } = options;
		return this.#call(group, { dispatch: true }, (_s, now) => {
			const { done, dead } = this.#leases.nack(group, seqs, now, {
				owner: pullOwner(lease),
				...(delay_ms === undefined ? {} : { delayMs: delay_ms }),
				...(error === undefined ? {} : { error }),
			});
			return { nacked: done, dead: dead.map((d) => d.seq) };
		});
	}

	deadLetters(group: string, after: number, limit: number): Result<{ count: number; messages: DeadLetter[] }> {
		return this.#call(group, { dispatch: false }, () => this.#deadLetters.list(group, after, limit));
	}

	redrive(group: string, seqs?: number[]): Result<{ redriven: number }> {
		return this.#call(group, { dispatch: true }, (_s, now) => {
			const redriven = this.#deadLetters.redrive(group, now, seqs);
			this.#leases.retriesChanged(group);
			return { redriven };
		});
	}

	purge(group: string, seqs?: number[]): Result<{ purged: number }> {
		return this.#call(group, { dispatch: false }, () => ({ purged: this.#deadLetters.purge(group, seqs) }));
	}

	/** The shape of every group call: see the module comment. */
	#call<T>(
		group: string,
		{ dispatch }: { dispatch: boolean },
		fn: (settings: GroupSettings, now: number) => T,
	): Result<T> {
		const settings = this.#registry.settings(group);
		if (!settings) return noGroup(this.#topic, group);
		const value = this.#transaction(() => fn(settings, Date.now()));
		if (dispatch) this.dispatch(group);
		return ok(value);
	}

	#info(group: string): GroupInfo | undefined {
		const settings = this.#registry.settings(group);
		const counts = this.#registry.counts(group, this.#deadLetters.count(group));
		if (!settings || !counts) return undefined;
		// The push secret is write-only.
		const shown = settings.push ? { ...settings, push: { ...settings.push, secret: "***" } } : settings;
		return {
			group,
			settings: shown,
			cursor: this.#registry.cursor(group),
			counts,
			members: this.#members.count(group),
		};
	}

	/** Publishes a dead letter to its dead-letter topic (another object) with this object's own authority. */
	async #forward(key: string, forward: DeadLetterForward): Promise<void> {
		try {
			const result = await this.context.forward(forward.topic, forward.record);
			if (!result.ok && result.error.code === "schema_mismatch") {
				// Refused for good: retrying would be refused again. The dead letter stays in this group, saying why.
				const why = `${forward.topic} refused it: ${result.error.message}`;
				this.#transaction(() => {
					this.#deadLetters.forwardRefused(key, why);
					this.context.scheduler.cancel(TIMER_DEAD_LETTER, key);
				});
				console.error(`tidings: dead letter ${key} not forwarded: ${why}`);
				return;
			}
			if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
			this.context.scheduler.cancel(TIMER_DEAD_LETTER, key);
		} catch (err) {
			console.error(`tidings: forwarding dead letter ${key} to ${forward.topic} failed; retrying`, err);
		}
	}
}

function pullOwner(lease: string | undefined): Owner {
	return lease ?? { prefix: OWNER_PREFIX.pull };
}
