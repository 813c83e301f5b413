/**
 * One WebSocket to one topic, kept open for a subscription or a consumer:
 * it reconnects with the client's backoff, and declares the connection dead
 * when a `ping` gets no answer within a heartbeat, because a socket can look
 * open long after the network is gone. A socket refused before it opened
 * says nothing of why, so the link asks the same URL over HTTP, and gives up
 * only on a refusal that a retry cannot mend. A subscription whose upgrade
 * is refused though the server would take it (a proxy that strips
 * upgrades) reads the same frames over SSE (sse.ts, loaded only then), and
 * tries its WebSocket again each time that response ends.
 * @module
 */
import { CLOSE_CODES } from "../protocol/errors.js";
import {
	BEARER_SUBPROTOCOL_PREFIX,
	PACK_SUBPROTOCOL,
	PING,
	PONG,
	type ServerFrame,
	SUBPROTOCOL,
} from "../protocol/frames.js";
import { DEFAULTS } from "./defaults.js";
import { TidingsError } from "./errors.js";
import type { Emitter } from "./events.js";
import type { Http } from "./http.js";

export type LinkState = "connecting" | "open" | "closed";

/** What the client needs of a WebSocket: the browser's, the one of Workers, Node's `ws`. */
export interface Socket {
	send(data: string): void;
	close(code?: number): void;
	onopen: ((e: unknown) => void) | null;
	onmessage: ((e: { data: unknown }) => void) | null;
	onclose: ((e: { code: number; reason: string }) => void) | null;
	onerror: ((e: unknown) => void) | null;
}
export type SocketClass = new (url: string, protocols: string[]) => Socket;

/** What a link needs of its client (the connection, in connection.ts). */
export interface LinkHost {
	readonly http: Pick<Http, "url" | "timeoutMs" | "token" | "request">;
	readonly events: Pick<Emitter, "emit">;
	readonly WebSocket: SocketClass;
	readonly heartbeatMs: number;
	backoff(failures: number): number;
	/** The link's state changed. */
	update(): void;
	/** A socket opened: the network is reachable. */
	reachable(): void;
}

/** The owner (a subscription or a consumer) builds the query for each connect, so it can resume from where it stopped. */
export class Link {
	state: LinkState = "connecting";
	/** Counts sockets; a frame or ack belongs to the socket it came on. */
	generation = 0;
	readonly #host: LinkHost;
	readonly #topic: string;
	readonly #query: () => Record<string, string | undefined>;
	readonly #onFrame: (frame: ServerFrame) => void;
	readonly #onFatal: ((error: TidingsError) => void) | undefined;
	#ws?: Socket;
	#failures = 0;
	#timer?: ReturnType<typeof setTimeout>;
	#heartbeat?: ReturnType<typeof setInterval>;
	#openTimer?: ReturnType<typeof setTimeout>;
	#awaitingPong = false;
	#pingAt = 0;
	#refreshToken = false;
	/** Ends the SSE response this link reads instead of a socket, if any. */
	#sse?: AbortController;

	constructor(
		host: LinkHost,
		topic: string,
		query: () => Record<string, string | undefined>,
		onFrame: (frame: ServerFrame) => void,
		/** Called when the server ends the socket for good, or refuses it for a reason a retry cannot mend. */
		onFatal?: (error: TidingsError) => void,
		/** Read over SSE when WebSocket upgrades are refused on the way (live subscriptions). */
		readonly sse = false,
	) {
		this.#host = host;
		this.#topic = topic;
		this.#query = query;
		this.#onFrame = onFrame;
		this.#onFatal = onFatal;
		this.#connect();
	}

	send(frame: object, generation = this.generation): boolean {
		if (this.state !== "open" || generation !== this.generation) return false;
		this.#ws?.send(JSON.stringify(frame));
		return true;
	}

	/**
	 * Closes for good. Resolves when the server answered the close (or after
	 * `DEFAULTS.closeWaitMs`): it handles a socket's messages in order, so
	 * what was sent before (a consumer's last acks) has been processed by then.
	 */
	async close() {
		this.state = "closed";
		const ws = this.#ws;
		this.#drop(CLOSE_CODES.normal);
		this.#host.update();
		if (ws)
			await new Promise<void>((resolve) => {
				const timer = setTimeout(resolve, DEFAULTS.closeWaitMs);
				ws.onclose = () => {
					clearTimeout(timer);
					resolve();
				};
			});
	}

	/** The network may be back: skip the rest of the backoff. */
	wake() {
		if (this.state === "connecting" && this.#timer) {
			clearTimeout(this.#timer);
			this.#connect();
		}
	}

	/** Checks the socket now (the browser said it went offline). */
	probe() {
		if (this.state === "open" && !this.#awaitingPong) this.#ping();
	}

	async #connect() {
		this.#timer = undefined;
		const token = await this.#host.http.token(this.#refreshToken).catch(() => undefined);
		if (this.state === "closed") return;
		const params = new URLSearchParams();
		for (const [k, v] of Object.entries(this.#query())) if (v !== undefined) params.set(k, v);
		const path = `/v1/topics/${encodeURIComponent(this.#topic)}/ws?${params}`;
		// Packed messages cost the server less per socket; this reader splits them. `SUBPROTOCOL` too, for servers that predate packing by choice.
		const protocols = [PACK_SUBPROTOCOL, SUBPROTOCOL];
		// The subprotocol keeps the token out of URLs and logs; a credential that is not an HTTP token (RFC 9110 tchar) goes in the query.
		if (token)
			/^[\w!#$%&'*+.^`|~-]+$/.test(token)
				? protocols.push(BEARER_SUBPROTOCOL_PREFIX + token)
				: params.set("token", token);
		const url = `${this.#host.http.url.replace(/^http/, "ws")}/v1/topics/${encodeURIComponent(this.#topic)}/ws?${params}`;
		let ws: Socket;
		try {
			ws = new this.#host.WebSocket(url, protocols);
		} catch {
			return this.#retry();
		}
		const generation = ++this.generation;
		this.#ws = ws;
		ws.onerror = () => {};
		let opened = false;
		// A handshake into a dead network can hang without a close event: give up on it like on a failed one.
		this.#openTimer = setTimeout(() => {
			if (!opened) ws.onclose?.({ code: 1006, reason: "connect timeout" });
		}, this.#host.http.timeoutMs);
		ws.onopen = () => {
			clearTimeout(this.#openTimer);
			opened = true;
			this.state = "open";
			this.#awaitingPong = false;
			this.#heartbeat = setInterval(() => this.#tick(ws), this.#host.heartbeatMs);
			this.#host.reachable();
		};
		ws.onmessage = ({ data }) => {
			this.#awaitingPong = false;
			if (generation !== this.generation || data === PONG) return;
			// Asked for packing: one message may carry several frames, one per line (or one, from a server that does not pack).
			for (const line of String(data).split("\n")) {
				// A handler may have closed this link (or the client) mid-message.
				if (generation !== this.generation) return;
				let frame: ServerFrame;
				try {
					frame = JSON.parse(line) as ServerFrame;
				} catch {
					// A corrupt stream (a broken proxy): what follows cannot be trusted either. Resume on a new socket.
					return this.#lost(ws);
				}
				if (frame.type === "ready") this.#failures = 0;
				this.#onFrame(frame);
			}
		};
		ws.onclose = ({ code, reason }) => {
			if (ws !== this.#ws) return;
			this.#refreshToken = !opened || code === CLOSE_CODES.tokenExpired;
			if (code === CLOSE_CODES.groupDeleted)
				return this.#fatal(new TidingsError("not_found", `the group was deleted (${reason})`));
			// A resume would skip the first messages of a topic created again under the name.
			if (code === CLOSE_CODES.topicDeleted)
				return this.#fatal(new TidingsError("not_found", `the topic was deleted (${reason})`));
			if (code === CLOSE_CODES.rateLimited) this.#failures += 3;
			if (opened) return this.#lost(ws);
			// Refused before it opened: a browser cannot read why, so ask the same URL over HTTP,
			// which runs every check of the upgrade and answers 426 when they all pass.
			this.#drop(CLOSE_CODES.normal);
			this.state = "connecting";
			this.#host.update();
			this.#host.http.request("GET", path).then(
				() => this.#retry(),
				(e: TidingsError) => {
					if (this.state === "closed") return;
					if (e.code === "upgrade_required" && this.sse) return this.#overSse(path);
					if (e.code === "upgrade_required" || e.retryable) {
						if (e.code === "unauthorized") this.#host.events.emit("error", e);
						return this.#retry();
					}
					this.#fatal(e);
				},
			);
		};
	}

	/** The upgrade passed every check yet never happened: something on the way refuses WebSockets. */
	async #overSse(wsPath: string) {
		const generation = ++this.generation;
		const abort = new AbortController();
		this.#sse = abort;
		try {
			const { readSse } = await import("./sse.js");
			await readSse(
				this.#host.http,
				wsPath.replace("/ws?", "/sse?"),
				abort.signal,
				() => {
					this.state = "open";
					this.#host.update();
					this.#host.reachable();
				},
				(frame) => {
					if (generation !== this.generation) return;
					if (frame.type === "ready") this.#failures = 0;
					this.#onFrame(frame);
				},
			);
		} catch {
			// the network, or the server: as for a lost socket
		}
		abort.abort();
		if (generation === this.generation) this.#retry();
	}

	#fatal(error: TidingsError) {
		this.state = "closed";
		this.#drop(CLOSE_CODES.normal);
		this.#host.events.emit("error", error);
		this.#onFatal?.(error);
		this.#host.update();
	}

	#ping() {
		this.#awaitingPong = true;
		this.#pingAt = Date.now();
		this.#ws?.send(PING);
	}

	/**
	 * Pings, or gives up on a socket whose ping of a full heartbeat ago is
	 * unanswered. The verdict waits one task, so that an answer already
	 * received (behind a busy event loop) is read first.
	 */
	#tick(ws: Socket) {
		if (!this.#awaitingPong) return this.#ping();
		if (Date.now() - this.#pingAt < this.#host.heartbeatMs * 0.9) return; // a probe's ping, still young
		setTimeout(() => this.#awaitingPong && this.#lost(ws), 0);
	}

	/** The socket is gone (or as good as): forget it and connect again. */
	#lost(ws: Socket) {
		if (ws !== this.#ws || this.state === "closed") return;
		this.#drop(CLOSE_CODES.normal);
		this.#retry();
	}

	#retry() {
		if (this.state === "closed") return;
		this.state = "connecting";
		this.#host.update();
		this.#timer = setTimeout(() => this.#connect(), this.#host.backoff(this.#failures++));
	}

	#drop(code: number) {
		this.#sse?.abort();
		clearInterval(this.#heartbeat);
		clearTimeout(this.#timer);
		clearTimeout(this.#openTimer);
		const ws = this.#ws;
		this.#ws = undefined;
		this.generation++;
		if (!ws) return;
		ws.onopen = ws.onmessage = ws.onclose = null;
		// Node's `ws` throws an 'error' that has no listener; a late one of a dropped socket is expected.
		ws.onerror = () => {};
		try {
			ws.close(code);
		} catch {}
	}
}
