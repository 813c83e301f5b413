/**
 * Flow control of live sockets that confirm their reads. workerd has no
 * `bufferedAmount` (cloudflare/workerd#988), so the client's `received`
 * frames are the only honest measure of how far behind a reader is. From a
 * socket's first `received` frame on, the characters sent and confirmed are
 * counted: a live socket more than `LIMITS.liveUnreadMaxChars` behind is
 * closed with 4408 (it resumes from its last seq), and a replay waits for
 * its reader instead. Kept in memory: after hibernation a socket starts a
 * fresh account. Sockets that never confirm are not bounded.
 * @module
 */
import { CLOSE_CODES } from "../../protocol/errors.js";
import { LIMITS } from "../../protocol/limits.js";
import { closeQuietly, type FrameBatch, sendFrames } from "../sockets/attachments.js";

interface Account {
	/** Characters sent since the account started. */
	sent: number;
	/** Characters the client has confirmed. */
	confirmed: number;
	/** [last seq of a send, `sent` after it], oldest first. */
	marks: [number, number][];
	/** When the account started or last moved forward. */
	at: number;
}

export class FlowControl {
	readonly #accounts = new WeakMap<WebSocket, Account>();

	/** A `received` frame: the client has read everything up to `seq`. The first one starts the account. */
	received(ws: WebSocket, seq: number): void {
		let account = this.#accounts.get(ws);
		if (!account) {
			account = { sent: 0, confirmed: 0, marks: [], at: Date.now() };
			this.#accounts.set(ws, account);
		}
		let n = 0;
		while (n < account.marks.length && (account.marks[n] as [number, number])[0] <= seq) n++;
		if (n > 0) {
			account.confirmed = (account.marks[n - 1] as [number, number])[1];
			account.marks.splice(0, n);
			// Only progress counts against a stall: repeating an old seq does not keep a replay waiting.
			account.at = Date.now();
		}
	}

	/**
	 * Sends message frames ending with message `lastSeq`, as the socket reads
	 * them (`sendFrames`); false if that took the socket past its unread bound
	 * (it is then closed).
	 */
	send(ws: WebSocket, frames: readonly string[] | FrameBatch, lastSeq: number): boolean {
		const texts = sendFrames(ws, frames);
		const account = this.#accounts.get(ws);
		if (!account || texts.length === 0) return true;
		for (const text of texts) account.sent += text.length;
		account.marks.push([lastSeq, account.sent]);
		if (account.sent - account.confirmed <= LIMITS.liveUnreadMaxChars) return true;
		this.#closeSlow(ws);
		return false;
	}

	/** Replays wait while the socket has half its unread bound outstanding; false if it stalled for good. */
	async drained(ws: WebSocket): Promise<boolean> {
		for (;;) {
			const account = this.#accounts.get(ws);
			if (!account || account.sent - account.confirmed <= LIMITS.liveUnreadMaxChars / 2) return true;
			if (ws.readyState !== WebSocket.OPEN) return false;
			if (Date.now() - account.at > LIMITS.liveUnreadStallMs) {
				this.#closeSlow(ws);
				return false;
			}
			await new Promise((resolve) => setTimeout(resolve, 50));
		}
	}

	#closeSlow(ws: WebSocket): void {
		this.#accounts.delete(ws);
		closeQuietly(ws, CLOSE_CODES.slowConsumer, "too far behind; reconnect with from=<last seq>");
	}
}
