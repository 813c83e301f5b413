import type { Topic } from "../durable/topic.js";

/** Bindings and configuration of the tidings Worker (see wrangler.toml and docs/operations.md). */
export interface Env {
	TOPIC: DurableObjectNamespace<Topic>;
	ASSETS?: Fetcher;
	/** `"true"` lets anyone do anything: local development only (`npm start` sets it). */
	TIDINGS_ALLOW_ANONYMOUS?: string;
	/** Bearer key that may do everything (a Wrangler secret). */
	TIDINGS_ADMIN_KEY?: string;
	/** HMAC secret of scoped tokens (a Wrangler secret); see src/tokens. */
	TIDINGS_TOKEN_SECRET?: string;
	/** Origins allowed by CORS, comma-separated, or `*` (default: none; all in local development). */
	TIDINGS_CORS_ORIGINS?: string;
}

/** The Hono environment of every route: bindings, and who is asking. */
export interface AppEnv {
	Bindings: Env;
	Variables: { principal: import("./auth.js").Principal };
}

/** The Durable Object that holds `topic`: one per topic name. */
export function topicStub(env: Env, topic: string) {
	return env.TOPIC.get(env.TOPIC.idFromName(topic));
}
