/**
 * Consumers: members of a consumer group, whose handler's promise acks or
 * nacks each message. An ack goes only on the socket its message came on:
 * the server released what a dropped socket held and delivers it again, and
 * that new delivery is the one to settle.
 * @module
 */
import type { ServerFrame } from "../protocol/frames.js";
import { LIMITS } from "../protocol/limits.js";
import type { GroupDelivery } from "../protocol/message.js";
import { ranges } from "../protocol/seq-list.js";
import { connectionOf } from "./connection.js";
import { DEFAULTS } from "./defaults.js";
import { TidingsError } from "./errors.js";
import type { Emitter } from "./events.js";
import type { Link, LinkState } from "./link.js";
import type { Tidings } from "./tidings.js";

export interface ConsumeOptions {
	/** The consumer group (created beforehand with `PUT …/groups/:group`). */
	group: string;
	/**
	 * Handlers running at once.
	 * @default 1
	 */
	concurrency?: number;
	/**
	 * Messages the server may lease to this consumer ahead of the handlers.
	 * The default, `concurrency`, means every leased message is being worked
	 * on, so `stop()` hands nothing back unstarted.
	 * @default concurrency
	 */
	prefetch?: number;
}

type Delivery<T> = { message: GroupDelivery<T>; generation: number };

/**
 * A member of a consumer group. The handler's promise settles each message:
 * resolved → `ack`, thrown → `nack` with the error's message (retried or
 * dead-lettered by the group's settings). At most `concurrency` handlers run
 * at once. A reconnect re-joins the group; what the old socket held was
 * released by the server and is delivered again, to this or another member.
 */
export class Consumer<T = unknown> {
	readonly #handler: (message: GroupDelivery<T>) => unknown;
	readonly #events: Emitter;
	readonly #link: Link;
	readonly #concurrency: number;
	#queue: Delivery<T>[] = [];
	#running = 0;
	#stopped = false;
	#stopping?: Promise<void>;
	#drained?: () => void;
	/** Acks waiting to go as one frame, and the socket generation they belong to. */
	#acks: number[] = [];
	#acksGeneration = 0;
	#ackTimer: ReturnType<typeof setTimeout> | undefined;

	constructor(
		client: Tidings,
		readonly topic: string,
		handler: (message: GroupDelivery<T>) => unknown,
		options: ConsumeOptions,
	) {
		this.#handler = handler;
		const connection = connectionOf(client);
		this.#events = connection.events;
		this.#concurrency = Math.max(1, options.concurrency ?? DEFAULTS.concurrency);
		const prefetch = String(options.prefetch ?? this.#concurrency);
		this.#link = connection.open(
			this,
			topic,
			() => ({ group: options.group, prefetch }),
			(frame: ServerFrame) => this.#frame(frame),
			// Ended for good (an `error` event says why): take nothing more.
			() => {
				this.#stopped = true;
				this.#queue = [];
			},
		);
	}

	/** This consumer's socket. */
	get state(): LinkState {
		return this.#link.state;
	}

	/** How many handlers are running now. */
	get busy(): number {
		return this.#running;
	}

	/** Takes no more messages, waits for the running handlers to settle theirs, then leaves the group. */
	stop(): Promise<void> {
		if (!this.#stopped) this.#link.send({ type: "drain" }); // the server leases us nothing more
		this.#stopped = true;
		this.#stopping ??= new Promise<void>((resolve) => {
			this.#drained = resolve;
			this.#settleIdle();
		}).then(() => this.#link.close());
		return this.#stopping;
	}

	/** Same as `stop()`. */
	close(): Promise<void> {
		return this.stop();
	}

	#frame(frame: ServerFrame) {
		if (frame.type === "message") {
			if (this.#stopped) return; // released to the others when the socket closes
			this.#queue.push({ message: frame.message as GroupDelivery<T>, generation: this.#link.generation });
			this.#pump();
		} else if (frame.type === "error") this.#events.emit("error", new TidingsError(frame.code, frame.message));
	}

	#pump() {
		while (this.#running < this.#concurrency && this.#queue.length && !this.#stopped) {
			const { message, generation } = this.#queue.shift() as Delivery<T>;
			// A message of a socket that has since dropped is already back in the group.
			if (generation !== this.#link.generation) continue;
			this.#running++;
			this.#run(message, generation);
		}
	}

	async #run(message: GroupDelivery<T>, generation: number) {
		const { seq } = message;
		try {
			await this.#handler(message);
			this.#ack(seq, generation);
		} catch (e) {
			const error = String((e as Error)?.message ?? e).slice(0, LIMITS.errorMaxLength);
			this.#link.send({ type: "nack", seq, error }, generation);
		}
		this.#running--;
		this.#pump();
		// Nothing else running: no ack to wait for.
		if (this.#running === 0) this.#flushAcks();
		this.#settleIdle();
	}

	/** Queues an ack; acks of handlers that finish close together go as one frame. */
	#ack(seq: number, generation: number) {
		// An ack for a socket that has since dropped is void: the server gave that message back,
		// and its new delivery is the one to settle. It must not void the acks of the socket there is now.
		if (generation !== this.#link.generation) return;
		// Acks still queued for an older socket are void too.
		if (generation !== this.#acksGeneration) this.#acks = [];
		this.#acksGeneration = generation;
		this.#acks.push(seq);
		if (this.#acks.length >= LIMITS.settleMaxSeqs) this.#flushAcks();
		else this.#ackTimer ??= setTimeout(() => this.#flushAcks(), DEFAULTS.ackBatchMs);
	}

	#flushAcks() {
		if (this.#ackTimer !== undefined) clearTimeout(this.#ackTimer);
		this.#ackTimer = undefined;
		const seqs = this.#acks;
		if (seqs.length === 0) return;
		this.#acks = [];
		this.#link.send(
			seqs.length === 1 ? { type: "ack", seq: seqs[0] } : { type: "ack", seqs: ranges(seqs) },
			this.#acksGeneration,
		);
	}

	#settleIdle() {
		if (this.#stopped && !this.#running) this.#drained?.();
	}
}
