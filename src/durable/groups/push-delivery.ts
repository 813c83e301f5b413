/**
 * Push consumers: a group with `push` settings is delivered by HTTP POST from
 * the object, signed, at most `concurrency` requests at a time. A 2xx answer
 * acks; any other answer, a timeout or a network error is a failed attempt,
 * retried with the group's backoff. Each request holds a lease a little
 * longer than its timeout under an owner id of its own, so a late answer can
 * never settle a later attempt, and an object that dies mid-request retries
 * the message when the lease runs out.
 * @module
 */
import { OWNER_PREFIX } from "../../protocol/internal.js";
import { TUNING } from "../../protocol/limits.js";
import type { PushSettings } from "../../protocol/message.js";
import { SIGNATURE_HEADER, signPush } from "../../protocol/push-signature.js";
import type { Transaction } from "../storage/transaction.js";
import type { Leased, Leases } from "./leases.js";
import type { GroupRegistry } from "./registry.js";

export class PushDelivery {
	constructor(
		private readonly groups: GroupRegistry,
		private readonly leases: Leases,
		private readonly transaction: Transaction,
		/** Called after each settled request, to dispatch again. */
		private readonly settled: (group: string) => void,
	) {}

	dispatch(group: string): void {
		const push = this.groups.settings(group)?.push;
		if (!push) return;
		let room = push.concurrency - this.leases.inFlight(group, OWNER_PREFIX.push, true);
		const now = Date.now();
		while (room > 0) {
			const owner = `${OWNER_PREFIX.push}${crypto.randomUUID()}`;
			const lease = push.timeout_ms + TUNING.pushLeaseMarginMs;
			const [d] = this.transaction(() => this.leases.take(group, owner, 1, lease, now));
			if (!d) return;
			room--;
			void this.#send(group, push, owner, d);
		}
	}

	async #send(group: string, push: PushSettings, owner: string, d: Leased): Promise<void> {
		let error: string | undefined;
		try {
			const message = JSON.parse(d.json) as { topic: string; traceparent?: string; baggage?: string };
			const headers: Record<string, string> = {
				"Content-Type": "application/json",
				[SIGNATURE_HEADER]: await signPush(push.secret, d.json),
				"tidings-topic": message.topic,
				"tidings-group": group,
				"tidings-seq": String(d.seq),
				"tidings-attempt": String(d.attempt),
			};
			if (message.traceparent) headers.traceparent = message.traceparent;
			if (message.baggage) headers.baggage = message.baggage;
			const res = await fetch(push.url, {
				method: "POST",
				headers,
				body: d.json,
				redirect: "manual",
				signal: AbortSignal.timeout(push.timeout_ms),
			});
			// The answer's body is never needed: do not read what could be large.
			await res.body?.cancel();
			if (res.status < 200 || res.status > 299) error = `push endpoint answered HTTP ${res.status}`;
		} catch (err) {
			error =
				err instanceof Error && err.name === "TimeoutError"
					? `push endpoint did not answer within ${push.timeout_ms} ms`
					: `push request failed: ${err instanceof Error ? err.message : String(err)}`;
		}
		this.transaction(() =>
			error === undefined
				? this.leases.ack(group, [d.seq], owner)
				: this.leases.nack(group, [d.seq], Date.now(), { owner, error }),
		);
		this.settled(group);
	}
}
