/**
 * WebSocket members of consumer groups: hibernatable sockets tagged with
 * their group, each holding at most `prefetch` unacknowledged messages.
 * Deliveries go round-robin over the members that have room, as RabbitMQ
 * spreads a queue over its consumers, not all to the first one.
 * @module
 */
import { memberTag, OWNER_PREFIX, type SocketGrant } from "../../protocol/internal.js";
import { attach, closeQuietly, type MemberAttachment, memberOf, send, sendRaw } from "../sockets/attachments.js";
import { closeIfExpired } from "../sockets/grant.js";
import type { Transaction } from "../storage/transaction.js";
import type { Leases } from "./leases.js";
import type { GroupRegistry } from "./registry.js";

export class GroupMembers {
	/** Where the next round-robin pass starts, per group. */
	readonly #next = new Map<string, number>();

	constructor(
		private readonly ctx: DurableObjectState,
		private readonly groups: GroupRegistry,
		private readonly leases: Leases,
		private readonly transaction: Transaction,
	) {}

	count(group: string): number {
		return this.ctx.getWebSockets(memberTag(group)).length;
	}

	accept(ws: WebSocket, topic: string, group: string, prefetch: number, head: number, grant: SocketGrant): void {
		this.ctx.acceptWebSocket(ws, [memberTag(group)]);
		attach(ws, { kind: "member", group, prefetch, id: `${OWNER_PREFIX.member}${crypto.randomUUID()}`, grant });
		send(ws, { type: "ready", topic, group, head_seq: head, from: this.groups.cursor(group) });
		this.dispatch(group);
	}

	/** Owner ids of the members connected to this instance (after a wake, hibernated sockets count). */
	connectedIds(): Set<string> {
		const ids = new Set<string>();
		for (const ws of this.ctx.getWebSockets()) {
			const att = memberOf(ws);
			if (att) ids.add(att.id);
		}
		return ids;
	}

	/** Hands out ready messages to members with room, one at a time, round-robin. */
	dispatch(group: string, leaving?: WebSocket): void {
		const sockets = this.ctx.getWebSockets(memberTag(group)).filter((ws) => ws !== leaving);
		if (sockets.length === 0) return;
		const settings = this.groups.settings(group);
		if (!settings) return;
		const now = Date.now();
		const members = sockets.flatMap((ws) => {
			const att = memberOf(ws);
			// An expired member gets nothing more; its close hands its leases back.
			if (!att || closeIfExpired(ws, att.grant, now)) return [];
			return [{ ws, att, room: att.prefetch - this.leases.inFlight(group, att.id) }];
		});
		if (members.length === 0) return;
		const n = members.length;
		let i = (this.#next.get(group) ?? 0) % n;
		let idle = 0;
		while (idle < n) {
			const m = members[i % n] as (typeof members)[number];
			i = (i + 1) % n;
			if (m.room <= 0) {
				idle++;
				continue;
			}
			const [d] = this.transaction(() => this.leases.take(group, m.att.id, 1, settings.ack_timeout_ms, now));
			if (!d) break;
			sendRaw(m.ws, `{"type":"message","message":${d.json}}`);
			m.room--;
			idle = 0;
		}
		this.#next.set(group, i);
	}

	/** A member stopping: no more deliveries to it (its prefetch becomes 0, kept across hibernation). */
	drain(ws: WebSocket, att: MemberAttachment): void {
		attach(ws, { ...att, prefetch: 0 });
	}

	ack(ws: WebSocket, att: MemberAttachment, seq: number, ref?: string): void {
		const done = this.transaction(() => this.leases.ack(att.group, [seq], att.id));
		if (done.length === 0) notLeased(ws, seq, ref);
	}

	nack(ws: WebSocket, att: MemberAttachment, seq: number, delayMs?: number, error?: string, ref?: string): void {
		const now = Date.now();
		const { done } = this.transaction(() =>
			this.leases.nack(att.group, [seq], now, {
				owner: att.id,
				...(delayMs === undefined ? {} : { delayMs }),
				...(error === undefined ? {} : { error }),
			}),
		);
		if (done.length === 0) notLeased(ws, seq, ref);
	}

	closeAll(group: string, code: number, reason: string): void {
		for (const ws of this.ctx.getWebSockets(memberTag(group))) closeQuietly(ws, code, reason);
	}

	/** A member left: its leases go back to the group (the caller dispatches them to the others). */
	closed(att: MemberAttachment): void {
		this.transaction(() => this.leases.release(att.group, att.id, Date.now()));
	}
}

function notLeased(ws: WebSocket, seq: number, ref: string | undefined): void {
	send(ws, {
		type: "error",
		code: "not_found",
		message: `seq ${seq} is not leased to this member (settled already, or its ack timeout ran out)`,
		...(ref === undefined ? {} : { ref }),
	});
}
