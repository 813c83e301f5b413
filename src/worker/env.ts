/**
 * The Worker's environment: its bindings (`Env`, shared with the object in
 * the internal contract), the Hono environment of every route, and the stub
 * of a topic's object.
 * @module
 */
import type { Env } from "../protocol/internal.js";
import type { Principal } from "./auth.js";

export type { Env };

/** The Hono environment of every route: bindings, and who is asking. */
export interface AppEnv {
	Bindings: Env;
	Variables: { principal: Principal };
}

/** The Durable Object that holds `topic`: one per topic name, which it knows as `ctx.id.name`. */
export function topicStub(env: Env, topic: string) {
	return env.TOPIC.getByName(topic);
}
