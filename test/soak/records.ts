/**
 * What the soak's actors write down as they go, client side: every publish
 * and its acknowledgement, every WebSocket and how it ended, every group
 * delivery as it came off the wire, every handler run and how it ended,
 * every message a live subscriber was handed, and every fault the driver
 * caused. The oracle (oracle.ts) judges these against what the server holds
 * at the end, so nothing here reads the server's code or trusts its counts.
 * @module
 */
import type { GroupCounts } from "../../src/protocol/message.js";

/** Faults the driver causes. `crash` and `slow` happen inside a member's handler. */
export const FAULT_KINDS = ["kill", "cut", "blackhole", "lose-replies", "crash", "slow"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultEvent {
	kind: FaultKind;
	/** When it began (ms since the epoch). */
	at: number;
	/** When it ended: the runtime answered again, the proxy forwarded again; `at` for instant faults. */
	until: number;
	detail?: string;
}

export const PUBLISH_VIAS = ["http-single", "http-batch", "ws-single", "ws-batch", "client"] as const;
export type PublishVia = (typeof PUBLISH_VIAS)[number];

/** One message a publisher made up, with its idempotency key. */
export interface Sent {
	key: string;
	via: PublishVia;
	/** Group members fail this message every time: it must end in the dead-letter queue. */
	poison: boolean;
	/** Requests or frames that carried it. */
	attempts: number;
	/** The acknowledgement (2xx answer or `published` frame), if one came. */
	acked?: { id: string; seq: number; at: number };
	/** Answers with `duplicate: true`: a retry the server recognised by the key. */
	duplicateAnswers: number;
	/** A refusal (4xx or an error frame that is not worth retrying): never expected. */
	rejected?: string;
}

export type Role = "member" | "subscriber";

export interface SocketRecord {
	id: number;
	/** The member or subscriber incarnation that owned it (`m2#3`, `s1#1`). */
	owner: string;
	role: Role;
	openedAt?: number;
	closedAt?: number;
	/**
	 * `local`: the client closed it (a heartbeat that got no answer, or a
	 * subscription closed on purpose); `remote`: the connection ended under
	 * it; `crash`: the driver killed the member that owned it; `shutdown`:
	 * the end of the run.
	 */
	closedBy?: "local" | "remote" | "crash" | "shutdown";
	code?: number;
}

/** A `message` frame on a member socket, as it arrived. */
export interface Delivery {
	socket: number;
	owner: string;
	seq: number;
	attempt: number;
	id: string;
	at: number;
}

/** One run of a member's handler. */
export interface Handling {
	owner: string;
	socket: number;
	seq: number;
	attempt: number;
	start: number;
	end?: number;
	/** `ok`: resolved (the client acks); `failed`: threw (the client nacks); `crashed`: the member died in it. */
	outcome?: "ok" | "failed" | "crashed";
}

export interface SubscriberRecord {
	name: string;
	/** Every message handed to the handler, across the subscriber's restarts. */
	seen: { seq: number; id: string }[];
	gaps: { from: number; to: number }[];
	/** Times the subscriber was thrown away and made again from its last seq. */
	restarts: number;
}

export interface Records {
	startedAt: number;
	/** When the chaos phase ended. */
	chaosEndedAt: number;
	faults: FaultEvent[];
	sent: Map<string, Sent>;
	sockets: Map<number, SocketRecord>;
	deliveries: Delivery[];
	handlings: Handling[];
	subscribers: SubscriberRecord[];
	/** `error` events the clients emitted, by code. */
	clientErrors: Map<string, number>;
}

export function newRecords(): Records {
	return {
		startedAt: Date.now(),
		chaosEndedAt: 0,
		faults: [],
		sent: new Map(),
		sockets: new Map(),
		deliveries: [],
		handlings: [],
		subscribers: [],
		clientErrors: new Map(),
	};
}

/** What the server holds at the end, read over plain HTTP straight from the runtime. */
export interface ServerView {
	/** Every message of the log, oldest first. */
	log: { id: string; seq: number; key?: string; data: unknown }[];
	headSeq: number;
	firstSeq: number;
	group: { cursor: number; counts: GroupCounts };
	dlq: { seq: number; attempts: number; last_error: string | null; message: { id: string; seq: number } }[];
}

/** The group's settings the soak creates it with; the oracle needs two of them. */
export interface GroupSettings {
	max_retries: number;
	retry_delay_ms: number;
	ack_timeout_ms: number;
}
