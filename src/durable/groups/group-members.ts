/**
 * WebSocket members of consumer groups: hibernatable sockets tagged with
 * their group, each holding at most `prefetch` unacknowledged messages.
 * Deliveries go round-robin over the members that have room, as RabbitMQ
 * spreads a queue over its consumers, not all to the first one; each turn
 * is a batch, an even share of what is available.
 * @module
 */
import { memberTag, OWNER_PREFIX, type SocketGrant } from "../../protocol/internal.js";
import { attach, closeQuietly, type MemberAttachment, memberOf, send, sendFrames } from "../sockets/attachments.js";
import { closeIfExpired } from "../sockets/grant.js";
import type { Transaction } from "../storage/transaction.js";
import type { Leased, Leases } from "./leases.js";
import type { GroupRegistry } from "./registry.js";

export class GroupMembers {
	/**
	 * Members that drained, by owner id. The attachment says so too (it
	 * outlives hibernation), but the attachment cache is keyed by socket
	 * object, and the runtime may hand dispatch another object for the same
	 * socket than the one the drain frame came on.
	 */
	readonly #drained = new Set<string>();
	/** Where the next round-robin pass starts, per group (taken modulo the member count). */
	readonly #next = new Map<string, number>();
	/**
	 * Messages handed to each member (by owner id) since it joined, as far as
	 * this instance knows: when there is less work than room, the members
	 * that got least go first. Without it, a member whose acks happen to
	 * land just before the others' keeps finding room at their dispatches
	 * and takes more than its share, every time.
	 */
	readonly #taken = new Map<string, number>();

	constructor(
		private readonly ctx: DurableObjectState,
		private readonly groups: GroupRegistry,
		private readonly leases: Leases,
		private readonly transaction: Transaction,
	) {}

	count(group: string): number {
		return this.ctx.getWebSockets(memberTag(group)).length;
	}

	accept(
		ws: WebSocket,
		topic: string,
		group: string,
		prefetch: number,
		head: number,
		grant: SocketGrant,
		pack: boolean,
	): void {
		this.ctx.acceptWebSocket(ws, [memberTag(group)]);
		const id = `${OWNER_PREFIX.member}${crypto.randomUUID()}`;
		// A newcomer starts level with the least served member, not at 0: it gets its share, not a backlog's worth first.
		let least: number | undefined;
		for (const other of this.ctx.getWebSockets(memberTag(group))) {
			const n = this.#taken.get(memberOf(other)?.id ?? "");
			if (n !== undefined && (least === undefined || n < least)) least = n;
		}
		this.#taken.set(id, least ?? 0);
		attach(ws, { kind: "member", group, prefetch, id, grant, ...(pack ? { pack } : {}) });
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

	/**
	 * Hands out what the group has ready to members with room, one pass
	 * round-robin in batches: each member with room gets its share of what
	 * is available (available over the group's members, never more than its
	 * room), so a burst spreads evenly over the members and a backlog goes
	 * out a batch, not a message, per lease statement. One transaction for
	 * the pass; the frames go out after it commits.
	 */
	dispatch(group: string, leaving?: WebSocket): void {
		const sockets = this.ctx.getWebSockets(memberTag(group)).filter((ws) => ws !== leaving);
		if (sockets.length === 0) return;
		const settings = this.groups.settings(group);
		if (!settings) return;
		const now = Date.now();
		// Members that take work (a draining member has prefetch 0), with or without room now.
		const members = sockets.flatMap((ws) => {
			const att = memberOf(ws);
			// An expired member gets nothing more; its close hands its leases back.
			if (!att || att.prefetch <= 0 || this.#drained.has(att.id) || closeIfExpired(ws, att.grant, now)) return [];
			return [{ ws, att, room: att.prefetch - this.leases.inFlight(group, att.id) }];
		});
		if (!members.some((m) => m.room > 0)) return;
		const available = this.leases.available(group, now);
		if (available === 0) return;
		const n = members.length;
		// A share of what is available per member of the group, not per member with room: when work
		// is scarce, members that happen to ack first must not take it all, or shares drift apart.
		// What is left waits for the next ack or publish, which dispatches again.
		const share = Math.max(1, Math.ceil(available / n));
		const start = (this.#next.get(group) ?? 0) % n;
		let order = members.slice(start).concat(members.slice(0, start));
		const room = members.reduce((sum, m) => sum + Math.max(0, m.room), 0);
		// Scarce: the least served first (a stable sort keeps the round-robin order among equals).
		if (available < room) order = order.sort((a, b) => this.#takenBy(a.att.id) - this.#takenBy(b.att.id));
		const sends: { ws: WebSocket; batch: Leased[] }[] = [];
		this.transaction(() => {
			for (const m of order) {
				if (m.room <= 0) continue;
				const batch = this.leases.take(group, m.att.id, Math.min(m.room, share), settings.ack_timeout_ms, now);
				if (batch.length === 0) break;
				sends.push({ ws: m.ws, batch });
				this.#taken.set(m.att.id, this.#takenBy(m.att.id) + batch.length);
			}
		});
		this.#next.set(group, start + 1);
		for (const { ws, batch } of sends) {
			sendFrames(
				ws,
				batch.map((d) => `{"type":"message","message":${d.json}}`),
			);
		}
	}

	#takenBy(id: string): number {
		return this.#taken.get(id) ?? 0;
	}

	/** A member stopping: no more deliveries to it (its prefetch becomes 0, kept across hibernation). */
	drain(ws: WebSocket, att: MemberAttachment): void {
		this.#drained.add(att.id);
		attach(ws, { ...att, prefetch: 0 });
	}

	ack(ws: WebSocket, att: MemberAttachment, seqs: number[], ref?: string): void {
		const done = this.transaction(() => this.leases.ack(att.group, seqs, att.id));
		if (done.length < seqs.length) notLeased(ws, seqs, done, ref);
	}

	nack(ws: WebSocket, att: MemberAttachment, seqs: number[], delayMs?: number, error?: string, ref?: string): void {
		const now = Date.now();
		const { done } = this.transaction(() =>
			this.leases.nack(att.group, seqs, now, {
				owner: att.id,
				...(delayMs === undefined ? {} : { delayMs }),
				...(error === undefined ? {} : { error }),
			}),
		);
		if (done.length < seqs.length) notLeased(ws, seqs, done, ref);
	}

	closeAll(group: string, code: number, reason: string): void {
		for (const ws of this.ctx.getWebSockets(memberTag(group))) closeQuietly(ws, code, reason);
	}

	/** A member left: its leases go back to the group (the caller dispatches them to the others). */
	closed(att: MemberAttachment): void {
		this.#drained.delete(att.id);
		this.#taken.delete(att.id);
		this.transaction(() => this.leases.release(att.group, att.id, Date.now()));
	}
}

/** Names the first few seqs of `asked` that were not settled (a member settles up to 1,000 at a time). */
function notLeased(ws: WebSocket, asked: number[], done: number[], ref: string | undefined): void {
	const settled = new Set(done);
	const missing = asked.filter((seq) => !settled.has(seq));
	const named = missing.slice(0, 10).join(", ") + (missing.length > 10 ? ` and ${missing.length - 10} more` : "");
	send(ws, {
		type: "error",
		code: "not_found",
		message: `seq${missing.length === 1 ? "" : "s"} ${named} ${missing.length === 1 ? "is" : "are"} not leased to this member (settled already, or its ack timeout ran out)`,
		...(ref === undefined ? {} : { ref }),
	});
}
