/**
 * Subscriptions: a topic's live stream handed to a handler. The guarantee
 * (each seq once, in order, across reconnects) rests on resuming from
 * `lastSeq` and dropping what is at or below it. The `received` frames are
 * flow control: they let the server pace a replay, and close a reader that
 * falls too far behind rather than buffer for it.
 * @module
 */
import type { Filter } from "../protocol/filter.js";
import type { ServerFrame } from "../protocol/frames.js";
import type { Message } from "../protocol/message.js";
import { connectionOf } from "./connection.js";
import { DEFAULTS } from "./defaults.js";
import { TidingsError } from "./errors.js";
import type { Link, LinkState } from "./link.js";
import type { Tidings } from "./tidings.js";

export interface SubscribeOptions {
	/**
	 * Where to start: `latest`, `earliest` (every retained message) or after this seq.
	 * @default "latest"
	 */
	from?: "latest" | "earliest" | number;
	/** Only messages whose attributes match ([filters](docs/protocol.md#filters)). */
	filter?: Filter;
	/** Messages `from`…`to` were removed by retention before this subscription could read them. */
	onGap?: (gap: { from: number; to: number }) => void;
}

/**
 * A live subscription. Every (re)connect asks for `from=<last seq>`, and
 * messages at or below the last seq are dropped, so the handler sees each
 * seq once and in order, across any number of reconnects.
 */
export class Subscription<T = unknown> {
	/** Seq of the last message handed to the handler (or the start point). */
	lastSeq: number | undefined;
	readonly #link: Link;
	readonly #handler: (message: Message<T>) => unknown;
	#confirming?: ReturnType<typeof setTimeout>;

	constructor(
		client: Tidings,
		readonly topic: string,
		handler: (message: Message<T>) => unknown,
		options: SubscribeOptions,
	) {
		this.#handler = handler;
		const connection = connectionOf(client);
		const { events } = connection;
		const { from, filter } = options;
		this.#link = connection.open(
			this,
			topic,
			() => ({ from: String(this.lastSeq ?? from ?? "latest"), filter: filter && JSON.stringify(filter) }),
			(frame: ServerFrame) => {
				if (frame.type === "ready") {
					this.lastSeq ??= frame.from;
					this.#confirm(0);
				} else if (frame.type === "gap") {
					this.lastSeq = Math.max(this.lastSeq ?? 0, frame.to);
					const gap = { from: frame.from, to: frame.to };
					events.call(() => options.onGap?.(gap));
				} else if (frame.type === "message" && frame.message.seq > (this.lastSeq ?? -1)) {
					this.lastSeq = frame.message.seq;
					events.call(() => this.#handler(frame.message as Message<T>));
					this.#confirm(DEFAULTS.receivedEveryMs);
				} else if (frame.type === "error") events.emit("error", new TidingsError(frame.code, frame.message));
			},
			undefined,
			true,
		);
	}

	/** This subscription's socket. */
	get state(): LinkState {
		return this.#link.state;
	}

	/** Closes the socket for good; resolves once the server answered the close. */
	close(): Promise<void> {
		clearTimeout(this.#confirming);
		return this.#link.close();
	}

	/**
	 * Tells the server how far this subscription has read, at most once per
	 * `DEFAULTS.receivedEveryMs`: it lets a reader that keeps up get
	 * everything, and closes one that falls megabytes behind (4408), which
	 * then resumes from `lastSeq`.
	 */
	#confirm(afterMs: number) {
		this.#confirming ??= setTimeout(() => {
			this.#confirming = undefined;
			if (this.lastSeq !== undefined) this.#link.send({ type: "received", seq: this.lastSeq });
		}, afterMs);
	}
}
