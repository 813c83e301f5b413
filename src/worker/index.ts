/**
 * The tidings Worker: the Hono app for HTTP and WebSocket, the `Topic`
 * Durable Object class it routes to, the `Catalog` that lists topics, and the `TidingsRpc` entrypoint for
 * other Workers.
 * @module
 */
import { app } from "./app.js";
import type { Env } from "./env.js";

export { Catalog } from "../durable/catalog/catalog.js";
export { Topic } from "../durable/topic.js";
export { TidingsRpc } from "./rpc.js";
export default app satisfies ExportedHandler<Env>;
