/**
 * The Node build of `tidings/client`: the same client, with `ws` as the
 * WebSocket where the runtime has none (Node 20). The outbox is in memory
 * unless one is passed (see `Outbox`).
 * @module
 */
import WebSocket from "ws";
import type { SocketClass } from "./link.js";
import { Tidings as Base } from "./tidings.js";
import type { TidingsOptions } from "./types.js";

export * from "./index.js";

export class Tidings extends Base {
	constructor(options: TidingsOptions) {
		super({ WebSocket: (globalThis.WebSocket ?? WebSocket) as unknown as SocketClass, ...options });
	}
}
