import { CLOSE_CODES } from "../protocol/errors.js";
import { BEARER_SUBPROTOCOL_PREFIX, PING, PONG, type ServerFrame, SUBPROTOCOL } from "../protocol/frames.js";
import { DEFAULTS } from "./defaults.js";
import { TidingsError } from "./errors.js";
import type { Tidings } from "./tidings.js";

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

/**
 * One WebSocket to one topic, kept open: reconnects with capped exponential
 * backoff and jitter, and declares the connection dead when a `ping` gets no
 * answer within a heartbeat. The owner (a subscription or a consumer) builds
 * the query for each connect, so it can resume from where it stopped.
 */
export class Link {
	state: LinkState = "connecting";
	/** Counts sockets; a frame or ack belongs to the socket it came on. */
	generation = 0;
	private ws?: Socket;
	private failures = 0;
	private timer?: ReturnType<typeof setTimeout>;
	private heartbeat?: ReturnType<typeof setInterval>;
	private openTimer?: ReturnType<typeof setTimeout>;
	private awaitingPong = false;
	private pingAt = 0;
	private refreshToken = false;

	constructor(
		private client: Tidings,
		private topic: string,
		private query: () => Record<string, string | undefined>,
		private onFrame: (frame: ServerFrame) => void,
		/** Called when the server ends the socket for good, or refuses it for a reason a retry cannot mend. */
		private onFatal?: (error: TidingsError) => void,
	) {
		this.connect();
	}

	send(frame: object, generation = this.generation): boolean {
		if (this.state !== "open" || generation !== this.generation) return false;
		this.ws?.send(JSON.stringify(frame));
		return true;
	}

	/**
	 * Closes for good. Resolves when the server answered the close (or after
	 * `DEFAULTS.closeWaitMs`): it handles a socket's messages in order, so
	 * what was sent before (a consumer's last acks) has been processed by then.
	 */
	async close() {
		this.state = "closed";
		const ws = this.ws;
		this.drop(CLOSE_CODES.normal);
		this.client.update();
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
		if (this.state === "connecting" && this.timer) {
			clearTimeout(this.timer);
			this.connect();
		}
	}

	/** Checks the socket now (the browser said it went offline). */
	probe() {
		if (this.state === "open" && !this.awaitingPong) this.ping();
	}

	private async connect() {
		this.timer = undefined;
		const token = await this.client.token(this.refreshToken).catch(() => undefined);
		if (this.state === "closed") return;
		const params = new URLSearchParams();
		for (const [k, v] of Object.entries(this.query())) if (v !== undefined) params.set(k, v);
		const path = `/v1/topics/${encodeURIComponent(this.topic)}/ws?${params}`;
		const protocols = [SUBPROTOCOL];
		// The subprotocol keeps the token out of URLs and logs; a credential that is not an HTTP token (RFC 9110 tchar) goes in the query.
		if (token)
			/^[\w!#$%&'*+.^`|~-]+$/.test(token)
				? protocols.push(BEARER_SUBPROTOCOL_PREFIX + token)
				: params.set("token", token);
		const url = `${this.client.url.replace(/^http/, "ws")}/v1/topics/${encodeURIComponent(this.topic)}/ws?${params}`;
		let ws: Socket;
		try {
			ws = new this.client.WebSocket(url, protocols);
		} catch {
			return this.retry();
		}
		const generation = ++this.generation;
		this.ws = ws;
		ws.onerror = () => {};
		let opened = false;
		// A handshake into a dead network can hang without a close event: give up on it like on a failed one.
		this.openTimer = setTimeout(() => {
			if (!opened) ws.onclose?.({ code: 1006, reason: "connect timeout" });
		}, this.client.requestTimeoutMs);
		ws.onopen = () => {
			clearTimeout(this.openTimer);
			opened = true;
			this.state = "open";
			this.awaitingPong = false;
			this.heartbeat = setInterval(() => this.tick(ws), this.client.heartbeatMs);
			this.client.reachable();
		};
		ws.onmessage = ({ data }) => {
			this.awaitingPong = false;
			if (generation !== this.generation || data === PONG) return;
			for (const line of String(data).split("\n")) {
				// A handler may have closed this link (or the client) mid-message.
				if (generation !== this.generation) return;
				const frame = JSON.parse(line) as ServerFrame;
				if (frame.type === "ready") this.failures = 0;
				this.onFrame(frame);
			}
		};
		ws.onclose = ({ code, reason }) => {
			if (ws !== this.ws) return;
			this.refreshToken = !opened || code === CLOSE_CODES.tokenExpired;
			if (code === CLOSE_CODES.groupDeleted)
				return this.fatal(new TidingsError("not_found", `the group was deleted (${reason})`));
			if (code === CLOSE_CODES.rateLimited) this.failures += 3;
			if (opened) return this.lost(ws);
			// Refused before it opened: a browser cannot read why, so ask the same URL over HTTP,
			// which runs every check of the upgrade and answers 426 when they all pass.
			this.drop(CLOSE_CODES.normal);
			this.state = "connecting";
			this.client.update();
			this.client.request("GET", path).then(
				() => this.retry(),
				(e: TidingsError) => {
					if (this.state === "closed") return;
					if (e.code === "upgrade_required" || e.retryable) {
						if (e.code === "unauthorized") this.client.emit("error", e);
						return this.retry();
					}
					this.fatal(e);
				},
			);
		};
	}

	private fatal(error: TidingsError) {
		this.state = "closed";
		this.drop(CLOSE_CODES.normal);
		this.client.emit("error", error);
		this.onFatal?.(error);
		this.client.update();
	}

	private ping() {
		this.awaitingPong = true;
		this.pingAt = Date.now();
		this.ws?.send(PING);
	}

	/**
	 * Pings, or gives up on a socket whose ping of a full heartbeat ago is
	 * unanswered. The verdict waits one task, so that an answer already
	 * received (behind a busy event loop) is read first.
	 */
	private tick(ws: Socket) {
		if (!this.awaitingPong) return this.ping();
		if (Date.now() - this.pingAt < this.client.heartbeatMs * 0.9) return; // a probe's ping, still young
		setTimeout(() => this.awaitingPong && this.lost(ws), 0);
	}

	/** The socket is gone (or as good as): forget it and connect again. */
	private lost(ws: Socket) {
		if (ws !== this.ws || this.state === "closed") return;
		this.drop(CLOSE_CODES.normal);
		this.retry();
	}

	private retry() {
		if (this.state === "closed") return;
		this.state = "connecting";
		this.client.update();
		this.timer = setTimeout(() => this.connect(), this.client.backoff(this.failures++));
	}

	private drop(code: number) {
		clearInterval(this.heartbeat);
		clearTimeout(this.timer);
		clearTimeout(this.openTimer);
		const ws = this.ws;
		this.ws = undefined;
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
