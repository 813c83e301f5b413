/**
 * The ceiling: the least a topic can do and still speak tidings' wire
 * protocol. Parse, append to SQLite, broadcast, answer. No validation, auth,
 * dedupe, retention or replay, so the gap to tidings is what those cost.
 * Only the bench runs this.
 * @module
 */
import { DurableObject } from "cloudflare:workers";

interface Env {
	CEILING: DurableObjectNamespace<Ceiling>;
}

interface Item {
	data: unknown;
}

interface Result {
	id: string;
	seq: number;
}

const ROUTE = /^\/v1\/topics\/([^/]+)\/(messages|ws)$/;

export class Ceiling extends DurableObject<Env> {
	/** Mirrors MAX(seq), so a publish never reads before it writes. */
	#seq: number;

	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
		const sql = ctx.storage.sql;
		sql.exec(
			"CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, ts INTEGER NOT NULL, data TEXT NOT NULL)",
		);
		this.#seq = sql.exec<{ head: number | null }>("SELECT MAX(seq) AS head FROM messages").one().head ?? 0;
		// Same as tidings: heartbeats never wake the object.
		ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
	}

	override async fetch(request: Request): Promise<Response> {
		const topic = ROUTE.exec(new URL(request.url).pathname)?.[1] ?? "";
		if (request.headers.get("Upgrade")?.toLowerCase() === "websocket") {
			const { 0: client, 1: server } = new WebSocketPair();
			this.ctx.acceptWebSocket(server, [topic]);
			server.send(JSON.stringify({ type: "ready", topic, head_seq: this.#seq, from: this.#seq }));
			return new Response(null, { status: 101, webSocket: client });
		}
		const body = (await request.json()) as Item | { messages: Item[] };
		if ("messages" in body) {
			return Response.json({ messages: this.#publish(topic, body.messages) }, { status: 201 });
		}
		return Response.json(this.#publish(topic, [body])[0], { status: 201 });
	}

	override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
		if (typeof message !== "string") return;
		const frame = JSON.parse(message) as { ref: string } & Item;
		const topic = this.ctx.getTags(ws)[0] ?? "";
		const result = this.#publish(topic, [frame])[0];
		ws.send(JSON.stringify({ type: "published", ref: frame.ref, ...result }));
	}

	override webSocketClose(ws: WebSocket, code: number, reason: string): void {
		// Completes the close handshake, as tidings does, so clients see a clean close.
		try {
			ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
		} catch {
			// already closed
		}
	}

	#publish(topic: string, items: Item[]): Result[] {
		const ts = Date.now();
		const results: Result[] = [];
		const frames: string[] = [];
		for (const item of items) {
			const seq = ++this.#seq;
			const id = crypto.randomUUID();
			const data = JSON.stringify(item.data);
			this.ctx.storage.sql.exec("INSERT INTO messages (seq, id, ts, data) VALUES (?, ?, ?, ?)", seq, id, ts, data);
			results.push({ id, seq });
			frames.push(
				`{"type":"message","message":{"id":"${id}","seq":${seq},"topic":${JSON.stringify(topic)},"data":${data},"attributes":{},"ts":${ts}}}`,
			);
		}
		for (const ws of this.ctx.getWebSockets()) {
			for (const frame of frames) {
				try {
					ws.send(frame);
				} catch {
					// closing; its close handler cleans up
				}
			}
		}
		return results;
	}
}

export default {
	fetch(request, env) {
		const topic = ROUTE.exec(new URL(request.url).pathname)?.[1];
		if (topic === undefined) return new Response("not found", { status: 404 });
		return env.CEILING.get(env.CEILING.idFromName(topic)).fetch(request);
	},
} satisfies ExportedHandler<Env>;
