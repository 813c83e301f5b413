/**
 * The tidings HTTP app: auth, then the routes, with one error format.
 * @module
 */
import { Hono } from "hono";
import { authorize } from "./auth.js";
import type { Env } from "./env.js";
import { errorResponse, onError } from "./errors.js";
import { groups } from "./routes/groups.js";
import { topics } from "./routes/topics.js";

export const app = new Hono<{ Bindings: Env }>()
	.get("/healthz", (c) => c.json({ ok: true }))
	.use("/v1/*", authorize)
	.route("/v1/topics", topics)
	.route("/v1/topics", groups);

app.notFound((c) =>
	errorResponse(c, "not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}; see docs/http-api.md`),
);
app.onError(onError);
