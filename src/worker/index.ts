/**
 * The tidings Worker: the Hono app for HTTP and WebSocket, and the `Topic`
 * Durable Object class it routes to.
 * @module
 */
import { app } from "./app.js";
import type { Env } from "./env.js";

export { Topic } from "../durable/topic.js";
export default app satisfies ExportedHandler<Env>;
