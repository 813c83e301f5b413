/**
 * The tidings HTTP app: CORS, auth, then the routes, with one error format.
 * @module
 */
import { Hono } from "hono";
import { authenticate } from "./auth.js";
import { cors } from "./cors.js";
import type { AppEnv } from "./env.js";
import { errorResponse, onError } from "./errors.js";
import { groups } from "./routes/groups.js";
import { stream, streamSecurityHeaders } from "./routes/stream.js";
import { tokens } from "./routes/tokens.js";
import { topicSse } from "./routes/topic-sse.js";
import { topics } from "./routes/topics.js";

export const app = new Hono<AppEnv>()
	.get("/healthz", (c) => c.json({ ok: true }))
	// Before CORS and auth, so refusals carry them too.
	.use("/v1/stream/*", streamSecurityHeaders)
	// CORS first: a preflight carries no credentials.
	.use("/v1/*", cors)
	.use("/v1/*", authenticate)
	.route("/v1/topics", topics)
	.route("/v1/topics", groups)
	.route("/v1/topics", topicSse)
	.route("/v1/tokens", tokens)
	.route("/v1/stream", stream);

app.notFound((c) =>
	errorResponse("not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}; see docs/http-api.md`),
);
app.onError(onError);
