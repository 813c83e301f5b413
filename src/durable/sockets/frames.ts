/**
 * What the object does with each frame a client sends on a socket: the
 * abuse limit first, then parsing, then a table by frame type. Each entry
 * says which sockets may send it (live subscribers, group members, or any);
 * a frame on the wrong kind of socket is answered `invalid_frame`.
 * @module
 */
import { PING, PONG } from "../../protocol/frames.js";
import type { Result } from "../../protocol/internal.js";
import type { PublishResult } from "../../protocol/message.js";
import { type ClientFrameParsed, type PublishRecord, parseClientFrame } from "../../protocol/schema.js";
import type { GroupMembers } from "../groups/group-members.js";
import type { LiveStreams } from "../live/live-streams.js";
import type { AbuseLimits } from "./abuse.js";
import { attachmentOf, type LiveAttachment, type MemberAttachment, send, sendRaw } from "./attachments.js";
import { closeIfExpired, publishDenied } from "./grant.js";

export interface FrameRooms {
	live: LiveStreams;
	members: GroupMembers;
	abuse: AbuseLimits;
	/** Checks (the topic's schema) and stores; a refusal stores nothing. */
	publish: (records: PublishRecord[]) => Result<PublishResult[]>;
	/** Why the topic takes no publishes now (a closed stream, a byte stream), if so. */
	refuses: () => string | undefined;
	/** Hand out what a group has ready, after its members settled something. */
	dispatch: (group: string) => void;
}

type FrameType = ClientFrameParsed["type"];
type FrameOf<K extends FrameType> = Extract<ClientFrameParsed, { type: K }>;
type Entry<K extends FrameType> =
	| { on: "live"; run: (ws: WebSocket, frame: FrameOf<K>, att: LiveAttachment) => void }
	| { on: "member"; run: (ws: WebSocket, frame: FrameOf<K>, att: MemberAttachment) => void }
	| { on: "any"; run: (ws: WebSocket, frame: FrameOf<K>) => void };
type Table = { [K in FrameType]: Entry<K> };

const WRONG_SOCKET = {
	live: (type: string) => `${type} is for live sockets; members ack`,
	member: (type: string) => `${type} is for consumer group sockets (?group=)`,
};

/** The handler of every WebSocket message from a client. */
export function frameReceiver(rooms: FrameRooms): (ws: WebSocket, message: string | ArrayBuffer) => void {
	const table = frameTable(rooms);
	return (ws, message) => receive(table, rooms.abuse, ws, message);
}

function frameTable(rooms: FrameRooms): Table {
	const { live, members, abuse } = rooms;
	return {
		received: { on: "live", run: (ws, f) => live.received(ws, f.seq) },
		drain: { on: "member", run: (ws, _f, att) => members.drain(ws, att) },
		ack: {
			on: "member",
			run: (ws, f, att) => {
				members.ack(ws, att, f.seqs, f.ref);
				rooms.dispatch(att.group);
			},
		},
		nack: {
			on: "member",
			run: (ws, f, att) => {
				members.nack(ws, att, f.seqs, f.delay_ms, f.error, f.ref);
				rooms.dispatch(att.group);
			},
		},
		publish: {
			on: "any",
			run: (ws, frame) => {
				const { type: _type, ref, ...body } = frame;
				const { grant } = attachmentOf(ws);
				const denied = publishDenied(grant);
				if (denied) {
					send(ws, { type: "error", ...denied.error, ref });
					// An expired token gets nothing more on this socket: the client reconnects with a fresh one.
					if (denied.error.code === "unauthorized") closeIfExpired(ws, grant);
					return;
				}
				const refused = rooms.refuses();
				if (refused !== undefined) {
					send(ws, { type: "error", code: "conflict", message: refused, ref });
					return;
				}
				const records = "messages" in body ? body.messages : [body];
				if (!abuse.takePublishes(grant.limitKey, records.length)) {
					abuse.refusePublish(ws, ref);
					return;
				}
				try {
					const published = rooms.publish(records);
					if (!published.ok) {
						send(ws, { type: "error", ...published.error, ref });
						return;
					}
					const results = published.value;
					if ("messages" in body) send(ws, { type: "published", ref, messages: results });
					else send(ws, { type: "published", ref, ...(results[0] as PublishResult) });
				} catch (err) {
					console.error("tidings: publish over socket failed", err);
					send(ws, {
						type: "error",
						code: "internal",
						message: "the publish failed and nothing was stored; send it again",
						ref,
					});
				}
			},
		},
	};
}

function receive(table: Table, abuse: AbuseLimits, ws: WebSocket, message: string | ArrayBuffer): void {
	const att = attachmentOf(ws);
	if (!abuse.admitFrame(ws, att.grant.limitKey)) return;
	if (typeof message !== "string") {
		send(ws, { type: "error", code: "invalid_frame", message: "frames are JSON text; binary frames are not accepted" });
		return;
	}
	// Auto-response answers pings without waking the object; one that arrives while awake is answered here.
	if (message === PING) {
		sendRaw(ws, PONG);
		return;
	}
	const parsed = parseClientFrame(message);
	if (!parsed.ok) {
		const { ok: _, ...error } = parsed;
		send(ws, { type: "error", ...error });
		return;
	}
	run(table[parsed.frame.type] as Entry<FrameType>, ws, parsed.frame, att);
}

function run(entry: Entry<FrameType>, ws: WebSocket, frame: ClientFrameParsed, att: LiveAttachment | MemberAttachment) {
	if (entry.on === "any") return entry.run(ws, frame);
	if (att.kind !== entry.on) {
		send(ws, { type: "error", code: "invalid_frame", message: WRONG_SOCKET[entry.on](frame.type) });
		return;
	}
	// The table is keyed by frame type, so the entry fits this frame and this kind of socket.
	(entry.run as (ws: WebSocket, frame: ClientFrameParsed, att: LiveAttachment | MemberAttachment) => void)(
		ws,
		frame,
		att,
	);
}
