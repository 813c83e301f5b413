/**
 * `/v1/stream/:name`: every topic is also a Durable Streams stream (see
 * docs/streams.md). Rights as everywhere: `subscribe` reads, `publish`
 * appends, `admin` creates, closes, forks and deletes. Headers and bodies
 * are parsed here (streams/request.ts); the object answers with the
 * protocol's status and headers.
 * @module
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import * as v from "valibot";
import type { Right } from "../../protocol/rights.js";
import { TopicName } from "../../protocol/schema.js";
import {
	DEFAULT_STREAM_CONTENT_TYPE,
	H,
	mediaType,
	type ParsedOffset,
	parseOffset,
	type StreamReply,
} from "../../protocol/streams.js";
import { rightsOf } from "../auth.js";
import { type AppEnv, topicStub } from "../env.js";
import { errorResponse } from "../errors.js";
import { catchUp, errorFor, longPoll, replyResponse, sse } from "../streams/read.js";
import {
	appendBody,
	type Bad,
	isBad,
	parseExpiry,
	parseProducer,
	parseUint,
	readBody,
	streamNameOf,
} from "../streams/request.js";

/** The browser security headers the protocol asks for, on every answer (errors included). */
export const streamSecurityHeaders: MiddlewareHandler<AppEnv> = async (c, next) => {
	await next();
	c.res.headers.set("X-Content-Type-Options", "nosniff");
	c.res.headers.set("Cross-Origin-Resource-Policy", "cross-origin");
};

function badResponse(b: Bad): Response {
	return errorFor({ status: b.bad, headers: {} }, b.message);
}

function allowed(c: Context<AppEnv>, name: string, right: Right): boolean {
	return c.get("principal").kind !== "token" || rightsOf(c, name).has(right);
}

function forbidden(name: string, right: Right): Response {
	return errorResponse("forbidden", `this token has no ${right} right on topic ${name}`);
}

function nameOf(c: Context<AppEnv>): string | Response {
	const name = c.req.param("name") ?? "";
	const parsed = v.safeParse(TopicName, name);
	if (!parsed.success) return errorResponse("invalid_request", parsed.issues[0]?.message ?? "invalid stream name");
	return name;
}

async function read(c: Context<AppEnv>, name: string): Promise<Response> {
	if (!allowed(c, name, "subscribe")) return forbidden(name, "subscribe");
	const stub = topicStub(c.env, name);
	if (c.req.method === "HEAD") {
		// The tail moves: a cached HEAD would hand out a stale offset.
		const res = replyResponse(await stub.streamHead());
		res.headers.set("Cache-Control", "no-store");
		return res;
	}
	const url = new URL(c.req.url);
	const offsets = url.searchParams.getAll("offset");
	const live = url.searchParams.get("live");
	if (offsets.length > 1) return badResponse({ bad: 400, message: "give one offset" });
	if (live !== null && live !== "long-poll" && live !== "sse") {
		return badResponse({ bad: 400, message: "live is long-poll or sse" });
	}
	if (live !== null && offsets.length === 0) return badResponse({ bad: 400, message: `live=${live} needs an offset` });
	const offset: ParsedOffset | undefined = parseOffset(offsets[0] ?? "-1");
	if (!offset) return badResponse({ bad: 400, message: "malformed offset: use -1, now, or a Stream-Next-Offset" });
	const cursor = url.searchParams.get("cursor") ?? undefined;
	const stubs = () => topicStub(c.env, name);
	if (live === "long-poll") return longPoll(stubs, c.env, offset, cursor);
	if (live === "sse") return sse(stubs, c.env, offset, cursor);
	return catchUp(await stub.streamRead(offset), offset, c.req.header("If-None-Match") ?? null);
}

async function create(c: Context<AppEnv>, name: string): Promise<Response> {
	if (!allowed(c, name, "admin")) return forbidden(name, "admin");
	const headers = c.req.raw.headers;
	const expiry = parseExpiry(headers);
	if (isBad(expiry)) return badResponse(expiry);
	const forkedFrom = headers.get(H.forkedFrom);
	const rawForkOffset = headers.get(H.forkOffset);
	const rawSub = headers.get(H.forkSubOffset);
	const requested = headers.get("Content-Type") || undefined;
	const body = await readBody(c.req.raw);
	if (isBad(body)) return badResponse(body);
	const closed = headers.get(H.closed)?.toLowerCase() === "true";
	const location = new URL(c.req.url).origin + new URL(c.req.url).pathname;
	const stub = topicStub(c.env, name);
	if (forkedFrom === null) {
		if (rawSub !== null || rawForkOffset !== null) {
			return badResponse({ bad: 400, message: `${H.forkSubOffset} and ${H.forkOffset} need ${H.forkedFrom}` });
		}
		const contentType = requested ?? DEFAULT_STREAM_CONTENT_TYPE;
		const content = appendBody(contentType, body, true);
		if (isBad(content)) return badResponse(content);
		return replyResponse(await stub.streamCreate({ contentType, ...expiry, closed, location, ...content }));
	}
	// A fork: the source hands over what the fork inherits, and counts it until the fork goes.
	const source = streamNameOf(forkedFrom);
	if (source === undefined || !v.safeParse(TopicName, source).success) {
		return badResponse({ bad: 400, message: `${H.forkedFrom} is a stream path, /v1/stream/<name>` });
	}
	if (!allowed(c, source, "subscribe")) return forbidden(source, "subscribe");
	const sub = rawSub === null ? 0 : parseUint(rawSub, H.forkSubOffset);
	if (isBad(sub)) return badResponse(sub);
	if (sub > 0 && rawForkOffset === null) {
		return badResponse({ bad: 400, message: `${H.forkSubOffset} counts from ${H.forkOffset}: give both` });
	}
	const forkOffset = rawForkOffset === null ? undefined : parseOffset(rawForkOffset);
	if (rawForkOffset !== null && forkOffset?.kind !== "seq") {
		return badResponse({ bad: 400, message: `malformed ${H.forkOffset}` });
	}
	const sourceStub = topicStub(c.env, source);
	const given = await sourceStub.streamForkSource(requested, forkOffset, sub);
	if (given.status !== 200 || !given.seed) return errorFor(given);
	const seed = given.seed;
	let answer: StreamReply | Bad;
	const content = appendBody(seed.contentType, body, true);
	if (isBad(content)) answer = content;
	else {
		const inherited = expiry.ttlS === undefined && expiry.expiresAt === undefined;
		answer = await stub.streamCreate({
			contentType: seed.contentType,
			...(inherited ? { ttlS: seed.ttlS, expiresAt: seed.expiresAt } : expiry),
			closed,
			location,
			...content,
			fork: { ...seed, source, offset: rawForkOffset ?? "", sub },
		});
	}
	// Only a fork that was created holds its source.
	if (isBad(answer) || answer.status !== 201) await sourceStub.streamForkRelease();
	return isBad(answer) ? badResponse(answer) : answer.status >= 400 ? errorFor(answer) : replyResponse(answer);
}

async function append(c: Context<AppEnv>, name: string): Promise<Response> {
	const headers = c.req.raw.headers;
	const close = headers.get(H.closed)?.toLowerCase() === "true";
	const right: Right = close ? "admin" : "publish";
	if (!allowed(c, name, right)) return forbidden(name, right);
	const producer = parseProducer(headers);
	if (isBad(producer)) return badResponse(producer);
	const writerSeq = headers.get(H.seq) ?? undefined;
	const contentType = headers.get("Content-Type") || undefined;
	const body = await readBody(c.req.raw);
	if (isBad(body)) return badResponse(body);
	if (body.length === 0 && !close) return badResponse({ bad: 400, message: "an append needs a body" });
	const content = appendBody(contentType, body, false);
	if (isBad(content)) return badResponse(content);
	const r = await topicStub(c.env, name).streamAppend({
		contentType: contentType === undefined ? undefined : mediaType(contentType),
		...content,
		close,
		producer,
		writerSeq,
	});
	return r.status >= 400 ? errorFor(r) : replyResponse(r);
}

async function remove(c: Context<AppEnv>, name: string): Promise<Response> {
	if (!allowed(c, name, "admin")) return forbidden(name, "admin");
	const r = await topicStub(c.env, name).streamDelete();
	return r.status >= 400 ? errorFor(r) : replyResponse(r);
}

export const stream = new Hono<AppEnv>().on(["GET", "HEAD", "PUT", "POST", "DELETE"], "/:name", async (c) => {
	const name = nameOf(c);
	if (typeof name !== "string") return name;
	switch (c.req.method) {
		case "PUT":
			return create(c, name);
		case "POST":
			return append(c, name);
		case "DELETE":
			return remove(c, name);
		default:
			return read(c, name);
	}
});
