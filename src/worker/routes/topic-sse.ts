/**
 * `GET /v1/topics/:topic/sse?from=&filter=`: a topic's live stream as
 * Server-Sent Events, for clients whose WebSocket upgrade is refused (a
 * proxy that strips it). Each event's data is one server frame of the
 * WebSocket protocol (`ready`, `gap`, `message`), so the client reads both
 * transports with the same code and a handler cannot tell them apart.
 *
 * The Worker holds the response and waits on the topic's waiter socket (as
 * stream readers do), so idle readers cost the object nothing. A response
 * ends after the SSE lifetime; the client resumes from its last seq, on a
 * WebSocket if it can by then.
 * @module
 */
import { Hono } from "hono";
import * as v from "valibot";
import { matchesFilter } from "../../protocol/filter.js";
import type { ServerFrame } from "../../protocol/frames.js";
import { TUNING } from "../../protocol/limits.js";
import type { Message } from "../../protocol/message.js";
import { describeIssues, LiveQuerySchema, TopicName } from "../../protocol/schema.js";
import { requireRight } from "../auth.js";
import { type AppEnv, topicStub } from "../env.js";
import { errorResponse } from "../errors.js";
import { sseResponse } from "../streams/read.js";
import { Follow } from "../streams/waiter.js";
import { validate } from "../validate.js";

interface Page {
	messages: Message[];
	next_after: number;
	head_seq: number;
	first_seq: number;
}

const PAGE = 500;
const KEEPALIVE_MS = 15_000;

export const topicSse = new Hono<AppEnv>().get(
	"/:topic/sse",
	validate("param", v.object({ topic: TopicName })),
	requireRight("subscribe"),
	async (c) => {
		const { topic } = c.req.valid("param");
		const query = v.safeParse(LiveQuerySchema, c.req.query());
		if (!query.success) {
			const { code, message } = describeIssues(query.issues, "query: ");
			return errorResponse(code, message);
		}
		if (query.output.group !== undefined) {
			return errorResponse("invalid_request", "consumer groups need a WebSocket (or pull); SSE carries live streams");
		}
		const { from, filter } = query.output;
		const follow = new Follow(() => topicStub(c.env, topic));
		const page = async (after: number) => JSON.parse(await follow.ask((s) => s.history(after, PAGE))) as Page;
		let first = await page(from === "earliest" ? 0 : from === "latest" ? Number.MAX_SAFE_INTEGER : from);
		let after =
			from === "earliest" ? first.first_seq - 1 : from === "latest" ? first.head_seq : Math.min(from, first.head_seq);
		if (from === "latest") first = { ...first, messages: [] };
		const lifetimeMs = Number(c.env.TIDINGS_STREAM_SSE_MS) || TUNING.streamSseLifetimeMs;
		const headers = new Headers({ "Content-Type": "text/event-stream", "Cache-Control": "no-store" });
		return sseResponse(headers, async (write, gone) => {
			const send = (frame: ServerFrame) => write(`data: ${JSON.stringify(frame)}\n\n`);
			const deadline = Date.now() + lifetimeMs;
			await send({ type: "ready", topic, head_seq: first.head_seq, from: after });
			let p = first;
			try {
				for (;;) {
					if (after < p.first_seq - 1 && p.first_seq <= p.head_seq) {
						await send({ type: "gap", from: after + 1, to: p.first_seq - 1 });
						after = p.first_seq - 1;
					}
					for (const message of p.messages) {
						if (message.seq <= after) continue;
						after = message.seq;
						if (!filter || matchesFilter(filter, message.attributes)) await send({ type: "message", message });
					}
					if (p.messages.length === 0 || after >= p.head_seq) {
						const left = deadline - Date.now();
						if (left <= 0) break;
						// A comment now and then shows a client on a quiet topic that the response still lives.
						if (!(await follow.wait(after, Math.min(left, KEEPALIVE_MS), gone))) {
							if (follow.ended || Date.now() >= deadline) break;
							await write(": keepalive\n\n");
							continue;
						}
					}
					const tail = follow.take(after);
					p = tail
						? { messages: tail.messages, head_seq: tail.head, first_seq: after + 1, next_after: tail.head }
						: await page(after);
				}
			} finally {
				follow.close();
			}
		});
	},
);
