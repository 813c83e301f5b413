/**
 * The socket gate: every check a WebSocket upgrade passes before it is
 * accepted as a live subscriber or a group member. The Worker has already
 * checked credentials and rights and passes the grant in a header.
 *
 * A plain GET of a socket URL runs the same checks and is answered 426 only
 * when all pass: a browser cannot read why its socket was refused, so the
 * client asks this way after a failed connect.
 * @module
 */
import * as v from "valibot";
import { chooseSubprotocol, PACK_SUBPROTOCOL, splitProtocols } from "../../protocol/frames.js";
import { decodeGrant, fail, failureResponse, GRANT_HEADER, noGroup } from "../../protocol/internal.js";
import { describeIssues, LiveQuerySchema } from "../../protocol/schema.js";
import type { ConsumerGroups } from "../groups/consumer-groups.js";
import type { LiveStreams } from "../live/live-streams.js";

export interface GateRooms {
	topic: string;
	groups: ConsumerGroups;
	live: LiveStreams;
	/** Sockets open on the topic now, and how many it allows. */
	sockets: () => { open: number; max: number };
	/** Called once every check passed, before the socket is accepted. */
	accepting: () => void;
}

export function openSocket(request: Request, rooms: GateRooms): Response {
	const { topic } = rooms;
	const query = v.safeParse(LiveQuerySchema, Object.fromEntries(new URL(request.url).searchParams));
	if (!query.success) {
		const { code, message } = describeIssues(query.issues, "query: ");
		return failureResponse(fail(code, message));
	}
	const { group, prefetch, from, filter } = query.output;
	const protocol = chooseSubprotocol(splitProtocols(request.headers.get("Sec-WebSocket-Protocol")));
	const pack = query.output.pack || protocol === PACK_SUBPROTOCOL;
	if (group !== undefined && !rooms.groups.exists(group)) return failureResponse(noGroup(topic, group));
	const sockets = rooms.sockets();
	if (sockets.open >= sockets.max) {
		return failureResponse(
			fail("rate_limited", `topic ${topic} has its ${sockets.max} sockets (max_sockets); try again later`),
		);
	}
	if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
		return failureResponse(
			fail("upgrade_required", "every check passed; connect with a WebSocket client (Upgrade: websocket)"),
		);
	}
	rooms.accepting();
	const pair = new WebSocketPair();
	const [client, server] = [pair[0], pair[1]];
	const grant = decodeGrant(request.headers.get(GRANT_HEADER));
	if (group !== undefined) rooms.groups.accept(server, group, prefetch, grant, pack);
	else rooms.live.accept(server, from, filter, grant, pack);
	return new Response(null, {
		status: 101,
		webSocket: client,
		...(protocol ? { headers: { "Sec-WebSocket-Protocol": protocol } } : {}),
	});
}
