/**
 * The tidings Worker: the Hono app for HTTP and WebSocket, the `Topic`
 * Durable Object class it routes to, and the `TidingsRpc` entrypoint for
 * other Workers.
 * @module
 */
import { app } from "./app.js";
import type { Env } from "./env.js";

export { Topic } from "../durable/topic.js";
export { TidingsRpc } from "./rpc.js";
export default app satisfies ExportedHandler<Env>;
