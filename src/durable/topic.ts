/**
 * The `Topic` Durable Object, one per topic name: the wiring of its rooms.
 *
 * - `storage/`: the SQLite schema, `meta` values, settings, transactions and
 *   the one alarm every timer shares;
 * - `schema/`: the topic's JSON Schema, compiled once per revision, and the
 *   check every publish path runs (`checkSchema`);
 * - `log/`: the ordered log, publish keys, the publish pipeline, retention;
 * - `live/`: live subscribers, replay, fan-out, flow control;
 * - `groups/`: consumer groups, their leases, dead letters, member sockets
 *   and push delivery;
 * - `sockets/`: the upgrade gate, the frame table, abuse limits and what is
 *   attached to each socket.
 *
 * This class builds them, answers the Worker's RPC calls (`TopicApi`,
 * inputs already validated) and hands sockets and the alarm to their owners.
 * @module
 */
import { DurableObject } from "cloudflare:workers";
import { CLOSE_CODES } from "../protocol/errors.js";
import { PING, PONG } from "../protocol/frames.js";
import { type Env, fail, type NackOptions, ok, type Result, type TopicApi } from "../protocol/internal.js";
import { LIMITS } from "../protocol/limits.js";
import type {
	DeadLetter,
	GroupInfo,
	PublishResult,
	TopicSchema,
	TopicSettings,
	TopicStats,
	TopicSummary,
} from "../protocol/message.js";
import type { GroupSettingsInput, PublishRecord, TopicSettingsInput } from "../protocol/schema.js";
import {
	type ParsedOffset,
	type StreamAppend,
	type StreamCreate,
	type StreamReply,
	WAITER_HEADER,
	WAITER_SSE_HEADER,
} from "../protocol/streams.js";
import { CatalogReporter, TIMER_CATALOG } from "./catalog/reporter.js";
import { catalogShardOf } from "./catalog/shards.js";
import { ConsumerGroups } from "./groups/consumer-groups.js";
import { LiveStreams } from "./live/live-streams.js";
import { Dedupe } from "./log/dedupe.js";
import { Publisher, TIMER_DELAYED } from "./log/publisher.js";
import { Retention, TIMER_RETENTION } from "./log/retention.js";
import { renderMessage, TopicLog } from "./log/topic-log.js";
import { type Checked, TopicSchemas } from "./schema/topic-schema.js";
import { AbuseLimits, PUBLISH_LIMIT_MESSAGE } from "./sockets/abuse.js";
import { closeQuietly } from "./sockets/attachments.js";
import { frameReceiver } from "./sockets/frames.js";
import { openSocket } from "./sockets/gate.js";
import { Meta } from "./storage/meta.js";
import { migrate } from "./storage/migrations.js";
import { Scheduler } from "./storage/scheduler.js";
import { Settings } from "./storage/settings.js";
import { type Transaction, transactional } from "./storage/transaction.js";
import { Streams } from "./streams/streams.js";

export class Topic extends DurableObject<Env> implements TopicApi {
	/** The topic's name: the object's own (`idFromName`), or as stored by its first write. */
	readonly #topic: string;
	readonly #topicJson: string;
	#meta!: Meta;
	#settings!: Settings;
	#schemas!: TopicSchemas;
	#log!: TopicLog;
	#scheduler!: Scheduler;
	#publisher!: Publisher;
	#retention!: Retention;
	#live!: LiveStreams;
	#groups!: ConsumerGroups;
	#streams!: Streams;
	#abuse!: AbuseLimits;
	#reporter!: CatalogReporter;
	#receive!: ReturnType<typeof frameReceiver>;
	#transaction!: Transaction;
	/** Whether the topic name is in storage (an alarm may wake the object without one). */
	#named!: boolean;
	/** When the topic was first written (a publish, its settings, a group); undefined: it does not exist. */
	#createdAt!: number | undefined;
	/** When the newest message joined the log, as far as this instance knows (read from the log after a wake). */
	#lastPublishAt: number | null | undefined;

	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
		const stored = this.#build();
		this.#topic = ctx.id.name ?? stored ?? "";
		this.#topicJson = JSON.stringify(this.#topic);
		this.#wire();
	}

	/** Storage and its mirrors: at construction, and again after the topic is deleted. Answers the stored name. */
	#build(): string | undefined {
		const sql = this.ctx.storage.sql;
		migrate(sql);
		this.#meta = new Meta(sql);
		const stored = this.#meta.get("topic");
		this.#named = stored !== undefined;
		const created = this.#meta.get("created_at");
		this.#createdAt = created === undefined ? undefined : Number(created);
		this.#lastPublishAt = undefined;
		this.#abuse = new AbuseLimits();
		return stored;
	}

	/** The rooms, built on the storage `#build` prepared. */
	#wire(): void {
		const { ctx, env } = this;
		const sql = ctx.storage.sql;
		const transaction = transactional(ctx.storage, () => this.#reload());
		this.#transaction = transaction;
		this.#settings = new Settings(this.#meta);
		this.#schemas = new TopicSchemas(this.#meta);
		this.#log = new TopicLog(sql, this.#meta);
		const dedupe = new Dedupe(sql);
		this.#scheduler = new Scheduler(ctx.storage, transaction);
		this.#reporter = new CatalogReporter(
			this.#scheduler,
			() => this.#summary(),
			async (summary) => env.CATALOG.getByName(catalogShardOf(this.#topic)).report(summary),
		);
		this.#live = new LiveStreams(ctx, this.#log, this.#topic, this.#topicJson);
		this.#groups = new ConsumerGroups({
			ctx,
			topic: this.#topic,
			log: this.#log,
			scheduler: this.#scheduler,
			transaction,
			forward: (topic, record) => env.TOPIC.getByName(topic).publish([record]),
		});
		this.#retention = new Retention(
			this.#log,
			dedupe,
			this.#scheduler,
			() => this.#settings.current,
			(upTo) => this.#groups.keepBeforeTrim(upTo),
		);
		this.#publisher = new Publisher(this.#log, dedupe, this.#scheduler, this.#retention, transaction, (rows) => {
			this.#lastPublishAt = Date.now();
			this.#reporter.changed();
			this.#live.broadcast(rows);
			this.#groups.dispatchAll();
			this.#streams.notify(rows);
		});
		this.#streams = new Streams({
			ctx,
			meta: this.#meta,
			log: this.#log,
			topicJson: this.#topicJson,
			dedupe,
			scheduler: this.#scheduler,
			transaction,
			publish: (records) => this.#publish(records),
			isTopic: () => this.#createdAt !== undefined,
			wipe: () => this.#wipe(),
			release: (source) => {
				env.TOPIC.getByName(source)
					.streamForkRelease()
					.catch((err: unknown) => console.error("tidings: releasing a fork's source failed", err));
			},
		});
		this.#scheduler.handle({
			[TIMER_DELAYED]: (t, now) => this.#publisher.joinDelayed(t, now),
			[TIMER_RETENTION]: (_t, now) => this.#retention.run(now),
			[TIMER_CATALOG]: this.#reporter.run,
			...this.#groups.timers(),
			...this.#streams.timers(),
		});
		this.#receive = frameReceiver({
			live: this.#live,
			members: this.#groups.members,
			abuse: this.#abuse,
			publish: (records) => this.#publish(records),
			refuses: () => this.#streams.refusesPublish(),
			dispatch: (group) => this.#groups.dispatchSoon(group),
		});
		ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
		void ctx.blockConcurrencyWhile(async () => {
			await this.#scheduler.restore();
			this.#groups.releaseOrphans();
		});
	}

	// --- RPC (TopicApi) -------------------------------------------------------------

	publish(records: PublishRecord[], limitKey?: string): Result<PublishResult[]> {
		if (!this.#abuse.takePublishes(limitKey, records.length)) return fail("rate_limited", PUBLISH_LIMIT_MESSAGE, 1);
		const refused = this.#streams.refusesPublish();
		if (refused !== undefined) return fail("conflict", refused);
		return this.#publish(records);
	}

	/**
	 * The topic's schema check, which every publish path runs before it
	 * stores anything (HTTP, sockets, RPC, delayed messages at publish time,
	 * dead letters forwarded here; a new path must call it too): the schema
	 * revision to store with the records, or a `schema_mismatch` naming the
	 * first bad record (a batch is refused whole).
	 */
	checkSchema(records: readonly Checked[]): Result<number | undefined> {
		return this.#schemas.check(records);
	}

	// --- Durable Streams (the other door to the same log; see streams/streams.ts) ----------

	streamCreate(req: StreamCreate): StreamReply {
		const answer = this.#streams.create(req);
		// After: creating the topic first would make the stream exist, and the create a repeat.
		if (answer.status === 201) this.#create();
		return answer;
	}

	streamAppend(req: StreamAppend): StreamReply {
		return this.#streams.append(req);
	}

	streamRead(offset: ParsedOffset): StreamReply {
		return this.#streams.read(offset);
	}

	streamHead(): StreamReply {
		return this.#streams.head();
	}

	streamDelete(): StreamReply {
		return this.#streams.delete();
	}

	streamForkSource(contentType: string | undefined, offset: ParsedOffset | undefined, sub: number) {
		return this.#streams.forkSource(contentType, offset, sub);
	}

	streamForkRelease(): void {
		this.#streams.forkRelease();
	}

	history(after: number, limit: number): string {
		const log = this.#log;
		const rows = log.readBounded(after, limit, LIMITS.pageMaxBytes);
		const messages = rows.map((r) => renderMessage(this.#topicJson, r)).join(",");
		const next = rows.at(-1)?.seq ?? Math.max(after, 0);
		return `{"messages":[${messages}],"next_after":${next},"head_seq":${log.head},"first_seq":${log.first}}`;
	}

	stats(): Result<TopicStats> {
		if (this.#createdAt === undefined) return this.#notFound();
		const log = this.#log;
		return ok({
			topic: this.#topic,
			head_seq: log.head,
			first_seq: log.first,
			retained: log.retained,
			delayed: this.#publisher.delayed,
			subscribers: this.#live.count,
			settings: this.#settings.current,
			schema: this.#schemas.current,
			groups: this.#groups.infos(),
		});
	}

	groups(): Result<GroupInfo[]> {
		if (this.#createdAt === undefined) return this.#notFound();
		return ok(this.#groups.infos());
	}

	async destroy(): Promise<Result<{ deleted: true; messages: number }>> {
		const createdAt = this.#createdAt;
		if (createdAt === undefined) return this.#notFound();
		const messages = this.#log.retained;
		for (const ws of this.ctx.getWebSockets()) closeQuietly(ws, CLOSE_CODES.topicDeleted, "topic deleted");
		this.#groups.retire();
		await this.ctx.storage.deleteAlarm();
		await this.ctx.storage.deleteAll();
		// The same object goes on serving the name, as a new topic from seq 1.
		this.#build();
		this.#wire();
		await this.env.CATALOG.getByName(catalogShardOf(this.#topic)).remove(this.#topic, createdAt);
		return ok({ deleted: true, messages });
	}

	/**
	 * Changes the topic's settings and schema; a trim runs in the background
	 * soon after. A schema that does not compile changes nothing.
	 */
	configure(change: TopicSettingsInput): Result<{ settings: TopicSettings; schema: TopicSchema | null }> {
		const { schema, ...retention } = change;
		const now = Date.now();
		const result = this.#transaction(() => {
			if (schema !== undefined) {
				const changed = this.#schemas.change(schema, now);
				if (!changed.ok) return changed;
			}
			const settings = Object.keys(retention).length > 0 ? this.#settings.change(retention) : this.#settings.current;
			this.#retention.settingsChanged(now);
			return ok({ settings, schema: this.#schemas.current });
		});
		if (result.ok) this.#create();
		return result;
	}

	configureGroup(group: string, input: GroupSettingsInput): Result<{ info: GroupInfo; created: boolean }> {
		this.#create();
		const result = this.#groups.configure(group, input);
		this.#reporter.changed();
		return result;
	}

	group(group: string): Result<GroupInfo> {
		return this.#groups.info(group);
	}

	deleteGroup(group: string): Result<{ deleted: true }> {
		this.#changed();
		return this.#groups.delete(group);
	}

	pull(group: string, max: number, ackTimeoutMs?: number): Result<string> {
		return this.#groups.pull(group, max, ackTimeoutMs);
	}

	ack(group: string, seqs: number[], lease?: string): Result<{ acked: number[] }> {
		return this.#groups.ack(group, seqs, lease);
	}

	nack(group: string, seqs: number[], options: NackOptions): Result<{ nacked: number[]; dead: number[] }> {
		this.#changed();
		return this.#groups.nack(group, seqs, options);
	}

	deadLetters(group: string, after: number, limit: number): Result<{ count: number; messages: DeadLetter[] }> {
		return this.#groups.deadLetters(group, after, limit);
	}

	redrive(group: string, seqs?: number[]): Result<{ redriven: number }> {
		this.#changed();
		return this.#groups.redrive(group, seqs);
	}

	purgeDeadLetters(group: string, seqs?: number[]): Result<{ purged: number }> {
		this.#changed();
		return this.#groups.purge(group, seqs);
	}

	// --- Sockets and the alarm -----------------------------------------------------------

	override async fetch(request: Request): Promise<Response> {
		const waiting = request.headers.get(WAITER_HEADER);
		if (waiting !== null) {
			return this.#streams.acceptWaiter(Number(waiting) || 0, request.headers.get(WAITER_SSE_HEADER) !== null);
		}
		return openSocket(request, {
			topic: this.#topic,
			groups: this.#groups,
			live: this.#live,
			sockets: () => ({ open: this.ctx.getWebSockets().length, max: this.#settings.current.max_sockets }),
			accepting: () => {
				this.#remember();
				this.#changed();
			},
		});
	}

	override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
		this.#receive(ws, message);
	}

	override webSocketClose(ws: WebSocket, code: number, reason: string): void {
		this.#socketGone(ws);
		// Finish the close handshake, or the client sees 1006.
		closeQuietly(ws, code, reason);
	}

	override webSocketError(ws: WebSocket): void {
		this.#socketGone(ws);
	}

	/**
	 * Runs the due timers, and ends once the next alarm they set is stored:
	 * an alarm that ends first can lose it (the runtime clears the alarm that
	 * ran), and with it every timer. A catalog report they start is not
	 * awaited; one that fails schedules itself again.
	 */
	override async alarm(): Promise<void> {
		this.#scheduler.runDue();
		await this.#scheduler.settled();
	}

	// --- Internals ------------------------------------------------------------------------

	#publish(records: PublishRecord[]): Result<PublishResult[]> {
		const checked = this.checkSchema(records);
		if (!checked.ok) return checked;
		this.#create();
		return ok(this.#publisher.publish(records, checked.value));
	}

	/** A socket closed or failed: every room forgets it; a member's leases go to the others. */
	#socketGone(ws: WebSocket): void {
		this.#changed();
		this.#live.forget(ws);
		this.#abuse.forget(ws);
		this.#groups.socketGone(ws);
	}

	/**
	 * A deleted stream (or topic): every row goes, in one synchronous step, and
	 * every socket is told. Seqs start again at 1; the stream's new incarnation
	 * has other ETags.
	 */
	#wipe(): void {
		const sql = this.ctx.storage.sql;
		this.#transaction(() => {
			for (const table of ["messages", "dedupe", "timers", "groups", "group_messages", "dead_letters"]) {
				sql.exec(`DELETE FROM ${table}`);
			}
			sql.exec("DELETE FROM meta WHERE key <> 'schema_version'");
		});
		this.#named = false;
		this.#reload();
		// As `DELETE /v1/topics/:topic` does: the sockets close with 4410 and the topic leaves the list.
		for (const ws of this.ctx.getWebSockets()) closeQuietly(ws, CLOSE_CODES.topicDeleted, "topic deleted");
		this.#groups.retire();
		const createdAt = this.#createdAt;
		this.#createdAt = undefined;
		this.#lastPublishAt = undefined;
		if (createdAt !== undefined) {
			this.env.CATALOG.getByName(catalogShardOf(this.#topic))
				.remove(this.#topic, createdAt)
				.catch((err: unknown) => console.error("tidings: removing a deleted stream from the catalog failed", err));
		}
	}

	/** In-memory mirrors reload after a rolled-back transaction. */
	#reload(): void {
		this.#scheduler.forgetAlarm();
		this.#reporter.forget();
		this.#groups.forget();
		this.#log.reload();
		this.#settings.reload();
		this.#schemas.reload();
		this.#retention.reload();
	}

	/** The first write (a publish, settings, a group) creates the topic: from then on it is listed and has stats. */
	#create(): void {
		this.#remember();
		if (this.#createdAt !== undefined || this.#topic === "") return;
		this.#createdAt = Date.now();
		this.#meta.set("created_at", String(this.#createdAt));
		this.#reporter.changed();
	}

	/** Something the catalog lists changed (sockets, groups, dead letters): report it, if the topic exists. */
	#changed(): void {
		if (this.#createdAt !== undefined) this.#reporter.changed();
	}

	/** What the catalog lists of this topic; undefined while it does not exist. */
	#summary(): TopicSummary | undefined {
		const createdAt = this.#createdAt;
		if (createdAt === undefined || this.#topic === "") return undefined;
		const sql = this.ctx.storage.sql;
		this.#lastPublishAt ??=
			sql.exec<{ ts: number }>("SELECT ts FROM messages ORDER BY seq DESC LIMIT 1").toArray()[0]?.ts ?? null;
		return {
			topic: this.#topic,
			head_seq: this.#log.head,
			retained: this.#log.retained,
			sockets: this.ctx.getWebSockets().length,
			groups: this.#groups.infos().length,
			dead_letters: sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM dead_letters").one().n,
			last_publish_at: this.#lastPublishAt,
			created_at: createdAt,
			reported_at: Date.now(),
		};
	}

	#notFound() {
		return fail(
			"not_found",
			`topic ${this.#topic} does not exist: nothing was published to it and it has no settings or groups (history and live reads of it still work)`,
		);
	}

	/** Stores the topic name on the first write: an alarm may wake the object where `ctx.id.name` is not known. */
	#remember(): void {
		// An object reached without a name (not through `getByName`) has none to keep.
		if (this.#named || this.#topic === "") return;
		if (this.#meta.get("topic") === undefined) this.#meta.set("topic", this.#topic);
		this.#named = true;
	}
}
