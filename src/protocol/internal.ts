/**
 * The contract between the Worker and the `Topic` object, which users never
 * see: the object's RPC surface (`TopicApi`), the result type failures cross
 * the boundary in, the header that carries a socket's grant, the owner ids of
 * leases and the tags of sockets, and the Worker's `Env`.
 *
 * Imports point one way: `worker/` → `durable/` → `protocol/`. Both sides
 * import this module; it imports nothing from either.
 * @module
 */
import { ERROR_STATUS, type ErrorBody, type ErrorCode } from "./errors.js";
import type { DeadLetter, GroupInfo, PublishResult, TopicSettings, TopicStats, TopicSummary } from "./message.js";
import { type Grants, RIGHTS, type Right } from "./rights.js";
import type { GroupSettingsInput, PublishRecord, TopicSettingsInput } from "./schema.js";
import type { ForkSeed, ParsedOffset, StreamAppend, StreamCreate, StreamReply } from "./streams.js";

// --- Results ----------------------------------------------------------------------

/**
 * A refusal that crosses from the object to the Worker: a named code and a
 * message that says what to do, as in the HTTP error contract. It becomes an
 * HTTP answer in one place (`failureResponse`, below) and an RPC error in one
 * place (`rpcError` in src/worker/rpc.ts). Faults (storage errors, an
 * overloaded object) are not refusals: they stay exceptions.
 */
export interface Failure {
	ok: false;
	error: { code: ErrorCode; message: string };
	/** When a retry may succeed, in seconds: sent as `Retry-After`. */
	retryAfterS?: number;
}
export type Result<T> = { ok: true; value: T } | Failure;

export function ok<T>(value: T): { ok: true; value: T } {
	return { ok: true, value };
}

export function fail(code: ErrorCode, message: string, retryAfterS?: number): Failure {
	return { ok: false, error: { code, message }, ...(retryAfterS === undefined ? {} : { retryAfterS }) };
}

/** The one text for a group that does not exist, wherever it is asked for. */
export function noGroup(topic: string, group: string): Failure {
	return fail(
		"not_found",
		`no group ${group} on topic ${topic}; create it with PUT /v1/topics/${topic}/groups/${group}`,
	);
}

// --- The object's RPC surface -------------------------------------------------------

/** What a nack may carry besides its seqs. */
export interface NackOptions {
	delay_ms?: number | undefined;
	error?: string | undefined;
	/** Settle only the leases of this pull. */
	lease?: string | undefined;
}

/**
 * What the Worker may ask of a topic's object (besides `fetch`, the socket
 * upgrade). The object knows its own topic name (`ctx.id.name`); inputs are
 * validated by the Worker before they get here.
 */
export interface TopicApi extends Rpc.DurableObjectBranded {
	/** Stores messages atomically; refused with `rate_limited` when `limitKey`'s budget is spent. */
	publish(records: PublishRecord[], limitKey?: string): Result<PublishResult[]>;
	/** A history page as JSON text (`HistoryPage`): stored message text is spliced in, never parsed. */
	history(after: number, limit: number): string;
	/** `not_found` for a topic never written (no publish, settings or group). */
	stats(): Result<TopicStats>;
	groups(): Result<GroupInfo[]>;
	/** Removes everything of the topic and closes its sockets (4410); the name starts again from seq 1. */
	destroy(): Promise<Result<{ deleted: true; messages: number }>>;
	configure(change: TopicSettingsInput): TopicSettings;
	configureGroup(group: string, input: GroupSettingsInput): Result<{ info: GroupInfo; created: boolean }>;
	group(group: string): Result<GroupInfo>;
	deleteGroup(group: string): Result<{ deleted: true }>;
	/** A pull's leases as JSON text: `{lease, messages}`. */
	pull(group: string, max: number, ackTimeoutMs?: number): Result<string>;
	ack(group: string, seqs: number[], lease?: string): Result<{ acked: number[] }>;
	nack(group: string, seqs: number[], options: NackOptions): Result<{ nacked: number[]; dead: number[] }>;
	deadLetters(group: string, after: number, limit: number): Result<{ count: number; messages: DeadLetter[] }>;
	redrive(group: string, seqs?: number[]): Result<{ redriven: number }>;
	purgeDeadLetters(group: string, seqs?: number[]): Result<{ purged: number }>;
	/** Durable Streams (`/v1/stream/:name`): answers carry the protocol's status and headers. */
	streamCreate(req: StreamCreate): StreamReply;
	streamAppend(req: StreamAppend): StreamReply;
	streamRead(offset: ParsedOffset): StreamReply;
	streamHead(): StreamReply;
	streamDelete(): StreamReply;
	/** A fork's source hands over what the fork inherits, and counts the fork. */
	streamForkSource(
		contentType: string | undefined,
		offset: ParsedOffset | undefined,
		sub: number,
	): StreamReply & { seed?: Omit<ForkSeed, "source" | "offset" | "sub"> };
	/** A fork of this stream was deleted or expired. */
	streamForkRelease(): void;
}

/** A page of one catalog shard; `stoppedAt` is where it stopped reading, null when it read to the end. */
export interface CatalogPage {
	topics: TopicSummary[];
	stoppedAt: string | null;
}

/** A shard of the topic catalog (src/durable/catalog): topics report to it, listings read it. */
export interface CatalogApi extends Rpc.DurableObjectBranded {
	report(summary: TopicSummary): void;
	/** A topic was deleted: its entry goes, and reports of that incarnation (`createdAt`) arriving late are ignored. */
	remove(topic: string, createdAt: number): void;
	list(query: { prefix: string; after: string; limit: number; grants: Grants | null }): CatalogPage;
}

/** Bindings and configuration of the tidings Worker (see wrangler.toml and docs/operations.md). */
export interface Env {
	TOPIC: DurableObjectNamespace<TopicApi>;
	CATALOG: DurableObjectNamespace<CatalogApi>;
	ASSETS?: Fetcher;
	/** `"true"` lets anyone do anything: local development only (`npm start` sets it). */
	TIDINGS_ALLOW_ANONYMOUS?: string;
	/** Bearer key that may do everything (a Wrangler secret). */
	TIDINGS_ADMIN_KEY?: string;
	/** HMAC secret of scoped tokens (a Wrangler secret); see src/tokens. */
	TIDINGS_TOKEN_SECRET?: string;
	/** Origins allowed by CORS, comma-separated, or `*` (default: none; all in local development). */
	TIDINGS_CORS_ORIGINS?: string;
	/** Durable Streams: how long a long-poll waits, in ms (default 20 s). */
	TIDINGS_STREAM_LONG_POLL_MS?: string;
	/** Durable Streams: how long one SSE response lasts before the client reconnects, in ms (default 60 s). */
	TIDINGS_STREAM_SSE_MS?: string;
}

// --- Sockets --------------------------------------------------------------------------

/**
 * What a socket may do, as the Worker resolved it at the upgrade. Sent in a
 * header the Worker always sets itself (a client cannot name its own
 * rights); the object keeps it in the socket's attachment.
 */
export interface SocketGrant {
	rights: Right[];
	/** Whose publish budget this socket spends (tokens only; keys are not limited). */
	limitKey?: string;
	/** Token expiry (ms since the epoch), if the credential was a token. */
	expires?: number;
}

export const GRANT_HEADER = "x-tidings-grant";

export function encodeGrant(grant: SocketGrant): string {
	return JSON.stringify(grant);
}

/** Reads the grant header; anything malformed grants nothing. */
export function decodeGrant(header: string | null): SocketGrant {
	let raw: Partial<SocketGrant> | null = null;
	try {
		raw = JSON.parse(header ?? "null") as Partial<SocketGrant> | null;
	} catch {
		// malformed: no rights
	}
	const rights = Array.isArray(raw?.rights)
		? raw.rights.filter((r): r is Right => (RIGHTS as readonly unknown[]).includes(r))
		: [];
	const expires = raw?.expires;
	const limitKey = raw?.limitKey;
	return {
		rights,
		...(typeof expires === "number" && Number.isFinite(expires) ? { expires } : {}),
		...(typeof limitKey === "string" && limitKey !== "" ? { limitKey } : {}),
	};
}

/** Hibernation tags: every live socket has `live`; a group member has its group's tag. */
export const LIVE_TAG = "live";
export function memberTag(group: string): string {
	return `g:${group}`;
}

/**
 * Owner ids of leases, by who holds them: a member socket, one pull request
 * (its id is the lease id a pull answers with), one push request.
 */
export const OWNER_PREFIX = {
	member: "member:",
	pull: "pull:",
	push: "push:",
} as const;

// --- Failures as HTTP ------------------------------------------------------------------

/**
 * A failure as the HTTP error contract: `{"error": {code, message}}` with
 * the status its code implies. The one mapping from failures to HTTP, used
 * by the Worker and by the object's socket gate alike.
 */
export function failureResponse({ error, retryAfterS }: Failure): Response {
	return Response.json({ error } satisfies ErrorBody, {
		status: ERROR_STATUS[error.code],
		...(retryAfterS === undefined ? {} : { headers: { "Retry-After": String(retryAfterS) } }),
	});
}
