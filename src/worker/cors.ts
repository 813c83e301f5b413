/**
 * CORS for pages on other origins. `TIDINGS_CORS_ORIGINS` lists the allowed
 * origins, comma-separated, or `*`. Unset, production allows none and local
 * development allows all. (WebSockets are not subject to CORS; their tokens
 * decide.)
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { cors as honoCors } from "hono/cors";
import { STREAM_REQUEST_HEADERS, STREAM_RESPONSE_HEADERS } from "../protocol/streams.js";
import { isDevelopment } from "./auth.js";
import type { AppEnv } from "./env.js";

export function allowedOrigin(origin: string, env: AppEnv["Bindings"]): string | null {
	const configured = env.TIDINGS_CORS_ORIGINS?.trim();
	const list = configured ? configured.split(",").map((o) => o.trim()) : isDevelopment(env) ? ["*"] : [];
	if (list.includes("*")) return origin || "*";
	return list.includes(origin) ? origin : null;
}

const honoCorsMiddleware = honoCors({
	origin: (origin, c) => allowedOrigin(origin, c.env as AppEnv["Bindings"]),
	allowMethods: ["GET", "HEAD", "POST", "PUT", "DELETE"],
	allowHeaders: [
		"Authorization",
		"Content-Type",
		"Idempotency-Key",
		"traceparent",
		"baggage",
		...STREAM_REQUEST_HEADERS,
	],
	exposeHeaders: STREAM_RESPONSE_HEADERS,
	maxAge: 600,
});

/** Only browsers on other origins send `Origin`: servers and edge functions skip the CORS work. */
export const cors: MiddlewareHandler<AppEnv> = (c, next) =>
	c.req.header("Origin") === undefined ? next() : honoCorsMiddleware(c, next);
