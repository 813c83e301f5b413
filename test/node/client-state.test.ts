/**
 * The client's connection state through network failures and `close()`,
 * with no server: a `fetch` that fails or answers as told, and a fake
 * WebSocket that opens at once and hands over the frames the test sends.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Socket } from "../../src/client/link.js";
import { type ConnectionState, MemoryOutbox, Tidings } from "../../src/client/node.js";
import { eventually } from "../shared/eventually.js";

/** Opens on the next microtask; closing answers on the next task, like a server would. */
class FakeSocket implements Socket {
	static last?: FakeSocket;
	sent: string[] = [];
	onopen: ((e: unknown) => void) | null = null;
	onmessage: ((e: { data: unknown }) => void) | null = null;
	onclose: ((e: { code: number; reason: string }) => void) | null = null;
	onerror: ((e: unknown) => void) | null = null;
	constructor() {
		FakeSocket.last = this;
		queueMicrotask(() => this.onopen?.({}));
	}
	send(data: string) {
		this.sent.push(data);
	}
	close(code = 1000) {
		setTimeout(() => this.onclose?.({ code, reason: "" }), 0);
	}
}

/** A fetch that fails for the network while `down`, and otherwise stores every message at the next seq. */
function network() {
	const net = { down: true, calls: 0, seq: 0 };
	const fetch = async (_url: string, init?: RequestInit) => {
		net.calls++;
		if (net.down) throw new TypeError("fetch failed");
		const { messages } = JSON.parse(String(init?.body)) as { messages: unknown[] };
		const stored = messages.map(() => ({ id: crypto.randomUUID(), seq: ++net.seq }));
		return Response.json({ messages: stored }, { status: 201 });
	};
	return { net, fetch };
}

const clients: Tidings[] = [];
afterEach(async () => {
	await Promise.all(clients.splice(0).map((c) => c.close()));
});

function client(fetch: (url: string, init?: RequestInit) => Promise<Response>, minMs = 10) {
	const c = new Tidings({
		url: "http://tidings.test",
		fetch,
		outbox: new MemoryOutbox(),
		WebSocket: FakeSocket,
		backoff: { minMs, maxMs: minMs },
	});
	clients.push(c);
	const states: ConnectionState[] = [];
	c.on("state", (s) => states.push(s));
	return { c, states };
}

describe("connection state", () => {
	it("a send that fails for the network makes the client offline; the next that succeeds, connected", async () => {
		const { net, fetch } = network();
		const { c, states } = client(fetch);
		expect(c.state).toBe("connected");
		expect(await c.publish("t", 1)).toMatchObject({ queued: true });
		expect(c.state).toBe("offline");
		const stored = c.publish("t", 2, { wait: true });
		net.down = false;
		expect(await stored).toMatchObject({ seq: 2 });
		expect(c.state).toBe("connected");
		expect(states).toEqual(["offline", "connected"]);
		await c.close();
		expect(states).toEqual(["offline", "connected", "closed"]);
	});

	it("closing while offline: stays offline while a consumer stops, queues publishes at once, then closed once", async () => {
		const { net, fetch } = network();
		const { c, states } = client(fetch, 60_000);
		let release = () => {};
		const worker = c.consume(
			"t",
			() =>
				new Promise<void>((resolve) => {
					release = resolve;
				}),
			{ group: "g" },
		);
		await eventually(() => worker.state === "open", "the socket", 5000, 5);
		const socket = FakeSocket.last as FakeSocket;
		expect(await c.publish("t", 1)).toMatchObject({ queued: true });
		await eventually(() => c.state === "offline", "the failed send", 5000, 5);
		const message = { id: "m1", seq: 1, topic: "t", data: 1, attributes: {}, ts: 0, group: "g", attempt: 1 };
		socket.onmessage?.({ data: JSON.stringify({ type: "message", message }) });
		await eventually(() => worker.busy === 1, "the handler", 5000, 5);

		const closing = c.close();
		// The consumer's handler still runs: publishes still go, and the network is still down.
		expect(c.state).toBe("offline");
		expect(await c.publish("t", 2)).toEqual({ queued: true, key: expect.any(String) });
		expect(net.calls).toBe(1); // the outbox waits out its backoff
		release();
		await closing;
		expect(socket.sent.filter((s) => s !== "ping").map((s) => JSON.parse(s).type)).toEqual(["drain", "ack"]);
		expect(states).toEqual(["connecting", "connected", "offline", "closed"]);
		await expect(c.publish("t", 3)).rejects.toMatchObject({ code: "closed" });
	});
});
