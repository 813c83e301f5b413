/**
 * Live subscribers of a topic: hibernatable sockets tagged `live`, each with
 * its filter in the socket attachment.
 *
 * No gap, no duplicate: a resuming socket is "replaying" until it has read
 * the log up to the head. Broadcasts skip replaying sockets; the replay reads
 * pages from the log (which already holds anything published meanwhile) and
 * turns the socket live in the same synchronous step that reads the last
 * page, so no publish can slip between the two.
 * @module
 */

import { type Filter, matchesFilter } from "../protocol/filter.js";
import type { ServerFrame } from "../protocol/frames.js";
import { TUNING } from "../protocol/limits.js";
import type { Attributes } from "../protocol/message.js";
import { type LogRow, renderMessage, type TopicLog } from "./topic-log.js";

export const LIVE_TAG = "live";

export interface LiveAttachment {
	kind: "live";
	filter?: Filter;
}

/** A message ready to fan out: its frame text is rendered once for every socket. */
export interface Outgoing {
	seq: number;
	attributes: Attributes | undefined;
	frame: string;
}

export function send(ws: WebSocket, frame: ServerFrame): void {
	sendRaw(ws, JSON.stringify(frame));
}

/** Sends, ignoring sockets that are already closing: their close handler cleans up. */
export function sendRaw(ws: WebSocket, text: string): void {
	try {
		ws.send(text);
	} catch {
		// closing or closed
	}
}

export function messageFrame(topicJson: string, row: LogRow): string {
	return `{"type":"message","message":${renderMessage(topicJson, row)}}`;
}

/** `attributes` is passed when the caller still has them parsed (the publish path). */
export function outgoing(topicJson: string, row: LogRow, attributes?: Attributes): Outgoing {
	return {
		seq: row.seq,
		attributes: attributes ?? (row.attributes === null ? undefined : (JSON.parse(row.attributes) as Attributes)),
		frame: messageFrame(topicJson, row),
	};
}

export class LiveStreams {
	readonly #replaying = new Set<WebSocket>();
	/** Filters parsed from attachments, cached per socket for the life of this instance. */
	readonly #filters = new WeakMap<WebSocket, Filter | null>();

	constructor(
		private readonly ctx: DurableObjectState,
		private readonly log: TopicLog,
	) {}

	get count(): number {
		return this.ctx.getWebSockets(LIVE_TAG).length;
	}

	/**
	 * Accepts a live socket: `ready`, then `gap` if the resume point is gone,
	 * then the replay, then live messages.
	 */
	accept(ws: WebSocket, topic: string, from: number | "latest" | "earliest", filter: Filter | undefined): void {
		this.ctx.acceptWebSocket(ws, [LIVE_TAG]);
		ws.serializeAttachment({ kind: "live", ...(filter ? { filter } : {}) } satisfies LiveAttachment);
		this.#filters.set(ws, filter ?? null);
		const head = this.log.head;
		let after = from === "latest" ? head : from === "earliest" ? this.log.first - 1 : Math.min(from, head);
		send(ws, { type: "ready", topic, head_seq: head, from: after });
		if (after < this.log.first - 1) {
			send(ws, { type: "gap", from: after + 1, to: this.log.first - 1 });
			after = this.log.first - 1;
		}
		if (after >= head) return;
		this.#replaying.add(ws);
		void this.#replay(ws, JSON.stringify(topic), after);
	}

	async #replay(ws: WebSocket, topicJson: string, after: number): Promise<void> {
		let cursor = after;
		try {
			for (;;) {
				if (ws.readyState !== WebSocket.OPEN) return;
				if (cursor < this.log.first - 1) {
					// Retention trimmed ahead of us while we paused.
					send(ws, { type: "gap", from: cursor + 1, to: this.log.first - 1 });
					cursor = this.log.first - 1;
				}
				const rows = this.log.read(cursor, TUNING.replayPageSize);
				const filter = this.filterOf(ws);
				for (const row of rows) {
					const attributes = filter && row.attributes !== null ? (JSON.parse(row.attributes) as Attributes) : {};
					if (!filter || matchesFilter(filter, attributes)) sendRaw(ws, messageFrame(topicJson, row));
					cursor = row.seq;
				}
				if (cursor >= this.log.head) return;
				// Let publishes and other sockets in between pages.
				await new Promise((resolve) => setTimeout(resolve, 0));
			}
		} finally {
			this.#replaying.delete(ws);
		}
	}

	filterOf(ws: WebSocket): Filter | null {
		let f = this.#filters.get(ws);
		if (f === undefined) {
			const att = ws.deserializeAttachment() as LiveAttachment | null;
			f = att?.filter ?? null;
			this.#filters.set(ws, f);
		}
		return f;
	}

	/** Sends new messages to every live socket that is not replaying. */
	broadcast(messages: Outgoing[]): void {
		if (messages.length === 0) return;
		for (const ws of this.ctx.getWebSockets(LIVE_TAG)) {
			if (this.#replaying.has(ws)) continue;
			const filter = this.filterOf(ws);
			for (const m of messages) {
				if (!filter || matchesFilter(filter, m.attributes ?? {})) sendRaw(ws, m.frame);
			}
		}
	}

	forget(ws: WebSocket): void {
		this.#replaying.delete(ws);
	}
}
