/**
 * The soak's verdict: the client-side records (records.ts) against the log,
 * the group and its dead letters as the server holds them at the end. Pure
 * functions, so that oracle.test.ts can feed them a broken history and watch
 * each check turn red.
 *
 * The guarantees checked (issue 10, "Proven under chaos"):
 * 1. Every acknowledged publish is in the log exactly once, at the seq and
 *    with the id it was acknowledged with; no key is stored twice; the log
 *    holds nothing nobody sent, and has no holes.
 * 2. Every message was acked by the group or dead-lettered, none lost: each
 *    message a handler would accept was handled to completion by some
 *    member, or is in the DLQ after `max_retries + 1` attempts of which the
 *    last ended by a fault (a disconnect or an ack timeout: docs/groups.md
 *    counts those as failed attempts; the table reports how many); each
 *    poison message (which every handler fails) is in the DLQ after exactly
 *    `max_retries + 1` attempts; the group settled each message once
 *    (`acked + dead` = messages) and holds nothing at the end.
 * 3. Duplicate deliveries happen only after a crash, a cut or a timeout, and
 *    are counted: every redelivery of a seq follows a nack of the previous
 *    attempt, the end of the socket that had it (and that end was caused by
 *    a fault the driver made, or by the client's own heartbeat timeout), or
 *    the group's ack timeout.
 * 4. Every live subscriber saw every retained seq once, in order, with the
 *    message the log holds at that seq, up to the head.
 * @module
 */
import type { Delivery, FaultEvent, GroupSettings, Handling, Records, ServerView, SocketRecord } from "./records.js";

/** Why a seq was delivered again. */
export type RedeliveryCause =
	| "nack"
	| "kill"
	| "cut"
	| "blackhole"
	| "lose-replies"
	| "crash"
	| "heartbeat timeout"
	| "ack timeout";

export interface Verdict {
	violations: string[];
	counts: {
		acknowledged: number;
		unacknowledged: number;
		unacknowledgedStored: number;
		duplicateAnswers: number;
		inLog: number;
		deliveries: number;
		handled: number;
		nacked: number;
		redeliveries: Map<RedeliveryCause, number>;
		/** Deliveries of a seq after a handler had already completed it. */
		duplicates: Map<RedeliveryCause, number>;
		/** Handler runs of a seq that began while another run of it was still going. */
		overlapping: number;
		deadLetters: number;
		/**
		 * Messages no handler ever failed, dead-lettered because disconnects and
		 * lapsed leases spent all their attempts; and how many of those a handler
		 * had completed (its ack lost).
		 */
		deadByFaults: number;
		deadByFaultsHandled: number;
		/** Sockets that had opened and then closed, by role and cause. */
		socketsClosed: Map<string, number>;
	};
}

/** How long after a fault's end a socket may still be seen to close because of it. */
export function graceMs(kind: FaultEvent["kind"], heartbeatMs: number): number {
	switch (kind) {
		case "blackhole":
			// A dead link is noticed by the client within two heartbeats of the last answer.
			return 2 * heartbeatMs + 1000;
		case "kill":
			return 1000;
		default:
			return 500;
	}
}

/** The fault (or timeout) that ended a socket, or undefined when nothing the driver did explains it. */
export function closeCause(
	socket: SocketRecord,
	faults: FaultEvent[],
	heartbeatMs: number,
): RedeliveryCause | "shutdown" | undefined {
	if (socket.closedBy === "crash") return "crash";
	if (socket.closedBy === "shutdown") return "shutdown";
	const t = socket.closedAt;
	if (t === undefined) return undefined;
	// The latest fault whose window holds the close: a kill right after a blackhole is what closed the sockets.
	let cause: FaultEvent | undefined;
	for (const f of faults) {
		if (f.kind === "crash" || f.kind === "slow") continue;
		if (t >= f.at - 50 && t <= f.until + graceMs(f.kind, heartbeatMs) && (!cause || f.at > cause.at)) cause = f;
	}
	if (cause) return cause.kind as RedeliveryCause;
	// The client gave up on a socket whose ping went unanswered: a timeout, with no fault to blame.
	if (socket.closedBy === "local") return "heartbeat timeout";
	return undefined;
}

/** The `last_error` of an attempt a fault ended (docs/groups.md, "Ending an attempt"). */
const FAULT_ERRORS = new Set(["consumer disconnected", "ack timeout"]);

/**
 * The earliest the server may have sent a delivery, whose lease started
 * then: when it arrived, unless it arrived during or right after a
 * blackhole, which held it back since the blackhole began.
 */
export function sentBy(d: Delivery, faults: FaultEvent[]): number {
	let t = d.at;
	for (const f of faults) if (f.kind === "blackhole" && d.at >= f.at && d.at <= f.until + 500) t = Math.min(t, f.at);
	return t;
}

const bump = <K>(m: Map<K, number>, k: K, by = 1) => m.set(k, (m.get(k) ?? 0) + by);

/** At most `max` violations of one kind are listed; the rest are counted. */
class Violations {
	readonly list: string[] = [];
	readonly #byKind = new Map<string, number>();
	constructor(readonly max = 8) {}
	add(kind: string, detail: string) {
		const n = bump(this.#byKind, kind).get(kind) as number;
		if (n <= this.max) this.list.push(`${kind}: ${detail}`);
	}
	done(): string[] {
		const out = [...this.list];
		for (const [kind, n] of this.#byKind) if (n > this.max) out.push(`${kind}: … ${n - this.max} more`);
		return out;
	}
}

export function judge(
	rec: Records,
	server: ServerView,
	settings: GroupSettings,
	{ heartbeatMs }: { heartbeatMs: number },
): Verdict {
	const v = new Violations();
	const counts: Verdict["counts"] = {
		acknowledged: 0,
		unacknowledged: 0,
		unacknowledgedStored: 0,
		duplicateAnswers: 0,
		inLog: server.log.length,
		deliveries: rec.deliveries.length,
		handled: 0,
		nacked: 0,
		redeliveries: new Map(),
		duplicates: new Map(),
		overlapping: 0,
		deadLetters: server.dlq.length,
		deadByFaults: 0,
		deadByFaultsHandled: 0,
		socketsClosed: new Map(),
	};

	// 1. The log against what was acknowledged.
	const bySeq = new Map<number, ServerView["log"][number]>();
	const byKey = new Map<string, ServerView["log"][number][]>();
	for (const [i, m] of server.log.entries()) {
		bySeq.set(m.seq, m);
		if (m.seq !== i + 1) v.add("log has a hole", `position ${i + 1} holds seq ${m.seq}`);
		if (m.key === undefined) {
			v.add("stored without a key", `seq ${m.seq}`);
			continue;
		}
		const same = byKey.get(m.key) ?? [];
		same.push(m);
		byKey.set(m.key, same);
		if (!rec.sent.has(m.key)) v.add("stored but never sent", `key ${m.key} at seq ${m.seq}`);
		else if ((m.data as { k?: unknown } | null)?.k !== m.key)
			v.add("stored with other data", `seq ${m.seq} key ${m.key}: ${JSON.stringify(m.data)}`);
	}
	if (server.log.length !== server.headSeq || server.firstSeq !== 1)
		v.add(
			"log has a hole",
			`${server.log.length} messages read, head_seq ${server.headSeq}, first_seq ${server.firstSeq}`,
		);
	for (const [key, stored] of byKey)
		if (stored.length > 1) v.add("stored more than once", `key ${key} at seqs ${stored.map((m) => m.seq).join(", ")}`);
	for (const s of rec.sent.values()) {
		counts.duplicateAnswers += s.duplicateAnswers;
		if (s.rejected) v.add("publish refused", `${s.key} (${s.via}): ${s.rejected}`);
		const stored = byKey.get(s.key);
		if (!s.acked) {
			counts.unacknowledged++;
			if (stored) counts.unacknowledgedStored++;
			continue;
		}
		counts.acknowledged++;
		if (!stored) v.add("acknowledged but not in the log", `${s.key} (${s.via}) acked at seq ${s.acked.seq}`);
		else if (stored[0]?.seq !== s.acked.seq || stored[0]?.id !== s.acked.id)
			v.add(
				"acknowledged as another message",
				`${s.key} (${s.via}) acked as seq ${s.acked.seq} id ${s.acked.id}, stored as seq ${stored[0]?.seq} id ${stored[0]?.id}`,
			);
	}

	// 3. Redeliveries and duplicates, seq by seq, in the order they came off the wire.
	const sockets = rec.sockets;
	for (const s of sockets.values()) {
		if (s.closedAt === undefined || s.openedAt === undefined) continue; // a connect that failed is no socket lost
		const cause = closeCause(s, rec.faults, heartbeatMs) ?? `unexplained (${s.closedBy} ${s.code ?? ""})`.trim();
		bump(counts.socketsClosed, `${s.role}: ${cause}`);
	}
	const handlingOf = new Map<string, Handling>();
	const runsBySeq = new Map<number, Handling[]>();
	for (const h of rec.handlings) {
		handlingOf.set(`${h.socket}/${h.seq}/${h.attempt}`, h);
		const runs = runsBySeq.get(h.seq) ?? [];
		runs.push(h);
		runsBySeq.set(h.seq, runs);
		if (h.outcome === "ok") counts.handled++;
		if (h.outcome === "failed") counts.nacked++;
	}
	const deliveriesBySeq = new Map<number, Delivery[]>();
	for (const d of rec.deliveries) {
		const list = deliveriesBySeq.get(d.seq) ?? [];
		list.push(d);
		deliveriesBySeq.set(d.seq, list);
		const m = bySeq.get(d.seq);
		if (m && m.id !== d.id) v.add("delivered another message", `seq ${d.seq}: delivered id ${d.id}, log id ${m.id}`);
		if (d.attempt > settings.max_retries + 1)
			v.add(
				"too many attempts",
				`seq ${d.seq} delivered as attempt ${d.attempt} (max_retries ${settings.max_retries})`,
			);
	}
	for (const [seq, list] of deliveriesBySeq) {
		// In the order the server sent them, as far as the clients can tell. Deliveries a blackhole
		// held back reach their sockets together when it lifts, in no particular order across
		// sockets (a 10-minute run saw attempt 2 arrive 1 ms before attempt 1 that way); each was
		// sent no later than the blackhole began, and among those the server's attempt count is the
		// only order there is. An attempt that repeats is still caught below.
		const sent = new Map(list.map((d) => [d, sentBy(d, rec.faults)]));
		list.sort((a, b) => (sent.get(a) as number) - (sent.get(b) as number) || a.attempt - b.attempt);
		for (let i = 1; i < list.length; i++) {
			const prev = list[i - 1] as Delivery;
			const cur = list[i] as Delivery;
			if (cur.attempt <= prev.attempt)
				v.add(
					"attempt not counted",
					`seq ${seq}: attempt ${prev.attempt} on socket ${prev.socket}, then attempt ${cur.attempt} on socket ${cur.socket}`,
				);
			let cause: RedeliveryCause | undefined;
			const run = handlingOf.get(`${prev.socket}/${prev.seq}/${prev.attempt}`);
			const sock = sockets.get(prev.socket);
			if (run?.outcome === "failed" && (run.end ?? Number.POSITIVE_INFINITY) <= cur.at) cause = "nack";
			else if (sock?.closedAt !== undefined && sock.closedAt <= cur.at) {
				const c = closeCause(sock, rec.faults, heartbeatMs);
				if (c === undefined || c === "shutdown") {
					v.add(
						"redelivered after an unexplained disconnect",
						`seq ${seq} attempt ${cur.attempt}: socket ${prev.socket} (${sock.owner}) closed ${sock.closedBy} code ${sock.code} at +${sock.closedAt - rec.startedAt} ms with no fault near`,
					);
					continue;
				}
				cause = c;
			} else if (cur.at - sentBy(prev, rec.faults) >= settings.ack_timeout_ms - 250) cause = "ack timeout";
			else {
				v.add(
					"unexplained redelivery",
					`seq ${seq}: attempt ${prev.attempt} to ${prev.owner} (socket ${prev.socket}, ${run?.outcome ?? "not run"}) at +${prev.at - rec.startedAt} ms, attempt ${cur.attempt} to ${cur.owner} ${cur.at - prev.at} ms later, the first socket still open`,
				);
				continue;
			}
			bump(counts.redeliveries, cause);
			const completedBefore = (runsBySeq.get(seq) ?? []).some((h) => h.outcome === "ok" && (h.end as number) <= cur.at);
			if (completedBefore) bump(counts.duplicates, cause);
		}
	}
	for (const runs of runsBySeq.values()) {
		runs.sort((a, b) => a.start - b.start);
		for (let i = 1; i < runs.length; i++) {
			const cur = runs[i] as Handling;
			if (runs.slice(0, i).some((h) => h.end === undefined || h.end > cur.start)) counts.overlapping++;
		}
	}

	// 2. Every message acked by the group or dead-lettered; none lost.
	const dead = new Map(server.dlq.map((d) => [d.seq, d]));
	if (dead.size !== server.dlq.length) v.add("dead-lettered twice", `${server.dlq.length} entries, ${dead.size} seqs`);
	for (const m of server.log) {
		const poison = (m.data as { poison?: boolean } | null)?.poison === true;
		const runs = runsBySeq.get(m.seq) ?? [];
		const d = dead.get(m.seq);
		if (poison) {
			if (!d) v.add("poison message not dead-lettered", `seq ${m.seq} (${runs.length} handler runs)`);
			else if (d.attempts !== settings.max_retries + 1)
				v.add("dead-lettered after the wrong number of attempts", `seq ${m.seq}: ${d.attempts} attempts`);
		} else if (d) {
			// Allowed (docs/groups.md: a disconnect or a lapsed lease is a failed attempt), but only
			// when every attempt was spent and the last one ended by a fault, not by a handler.
			if (d.attempts !== settings.max_retries + 1 || !FAULT_ERRORS.has(d.last_error ?? ""))
				v.add(
					"dead-lettered without cause",
					`seq ${m.seq}: ${d.attempts} attempts, last error ${JSON.stringify(d.last_error)}; no handler failed it`,
				);
			counts.deadByFaults++;
			if (runs.some((h) => h.outcome === "ok")) counts.deadByFaultsHandled++;
		} else if (!runs.some((h) => h.outcome === "ok"))
			v.add(
				"lost: neither handled nor dead-lettered",
				`seq ${m.seq} key ${m.key}: ${(deliveriesBySeq.get(m.seq) ?? []).length} deliveries, ${runs.length} handler runs`,
			);
		if (d && d.message.id !== m.id) v.add("dead letter is another message", `seq ${m.seq}`);
	}
	const g = server.group;
	if (g.counts.pending !== 0 || g.counts.in_flight !== 0 || g.cursor !== server.headSeq)
		v.add(
			"group not drained",
			`cursor ${g.cursor} of head ${server.headSeq}, pending ${g.counts.pending}, in_flight ${g.counts.in_flight}`,
		);
	if (g.counts.acked + g.counts.dead !== server.headSeq)
		v.add(
			"group settled a message other than once",
			`acked ${g.counts.acked} + dead ${g.counts.dead} ≠ ${server.headSeq} messages`,
		);
	if (g.counts.dead !== server.dlq.length)
		v.add("dead count disagrees with the DLQ", `count ${g.counts.dead}, list ${server.dlq.length}`);

	// 4. Live subscribers: every retained seq once, in order, up to the head.
	for (const s of rec.subscribers) {
		let last = server.firstSeq - 1;
		const gaps = [...s.gaps];
		for (const g of gaps)
			if (g.to >= server.firstSeq)
				v.add("gap over retained messages", `${s.name}: gap ${g.from}…${g.to}, first_seq ${server.firstSeq}`);
		for (const { seq, id } of s.seen) {
			if (seq <= last) {
				v.add("live: repeated or out of order", `${s.name}: seq ${seq} after ${last}`);
				continue;
			}
			if (seq !== last + 1 && !gaps.some((g) => g.from === last + 1 && g.to === seq - 1))
				v.add("live: missed messages", `${s.name}: seqs ${last + 1}…${seq - 1} (saw ${seq} after ${last})`);
			const m = bySeq.get(seq);
			if (!m) v.add("live: a seq not in the log", `${s.name}: seq ${seq}`);
			else if (m.id !== id) v.add("live: another message", `${s.name}: seq ${seq} id ${id}, log id ${m.id}`);
			last = seq;
		}
		if (last !== server.headSeq)
			v.add("live: did not reach the head", `${s.name}: last seq ${last}, head_seq ${server.headSeq}`);
	}
	return { violations: v.done(), counts };
}
