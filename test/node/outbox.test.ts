/**
 * The outbox contract (insertion order, peek/remove/size/clear) for the
 * IndexedDB outbox (on fake-indexeddb) and the memory one, the fallback that
 * degrades to memory, and the client's choice of outbox outside browsers.
 */
import "fake-indexeddb/auto";
import { afterEach, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import type { SocketClass } from "../../src/client/link.js";
import {
	FallbackOutbox,
	IndexedDbOutbox,
	MemoryOutbox,
	type Outbox,
	type OutboxEntry,
	Tidings,
} from "../../src/client/node.js";
import { eventually } from "../shared/eventually.js";

/** Nothing listens on port 1: every request fails at once with ECONNREFUSED. */
const NOWHERE = "http://127.0.0.1:1";

let seq = 0;
function entry(topic = "t", data: unknown = seq): OutboxEntry {
	const n = ++seq;
	return {
		id: `e${n}`,
		topic,
		message: { data, key: `k${n}`, attributes: { n: String(n) } },
		at: 1_700_000_000_000 + n,
	};
}
/** A database name of its own per outbox, so tests do not see each other's rows. */
let dbs = 0;
const dbName = () => `tidings-test-${++dbs}`;

const ids = (entries: OutboxEntry[]) => entries.map((e) => e.id);

describe.each([
	["IndexedDbOutbox", () => new IndexedDbOutbox(dbName())],
	["MemoryOutbox", () => new MemoryOutbox()],
] as [string, () => Outbox][])("%s: the Outbox contract", (_, make) => {
	it("keeps insertion order across add, peek(limit), remove(ids), size and clear", async () => {
		const box = make();
		expect(await box.size()).toBe(0);
		expect(await box.peek(10)).toEqual([]);
		const es = [entry("a"), entry("b"), entry("a"), entry("c"), entry("a")];
		for (const e of es) await box.add(e);
		expect(await box.size()).toBe(5);
		// Entries come back as they went in (structured-cloned, nothing added).
		expect(await box.peek(10)).toEqual(es);
		expect(ids(await box.peek(2))).toEqual(ids(es.slice(0, 2)));
		expect(ids(await box.peek(1))).toEqual([es[0]?.id]);

		// Removing from the head and the middle keeps the rest in order.
		await box.remove([es[0]?.id as string, es[3]?.id as string]);
		expect(await box.size()).toBe(3);
		expect(ids(await box.peek(10))).toEqual([es[1], es[2], es[4]].map((e) => e?.id));
		expect(ids(await box.peek(2))).toEqual([es[1], es[2]].map((e) => e?.id));

		// Later adds go after what is left.
		const late = entry("d");
		await box.add(late);
		expect(ids(await box.peek(10))).toEqual([es[1], es[2], es[4], late].map((e) => e?.id));

		await box.clear();
		expect(await box.size()).toBe(0);
		expect(await box.peek(10)).toEqual([]);
		// Usable after clear, still in order.
		const after = [entry(), entry()];
		for (const e of after) await box.add(e);
		expect(await box.peek(10)).toEqual(after);
	});

	it("remove of absent ids is a no-op, and of a mix removes only the present ones", async () => {
		const box = make();
		const es = [entry(), entry(), entry()];
		for (const e of es) await box.add(e);
		await box.remove([]);
		await box.remove(["nope", "also-not-there"]);
		expect(await box.size()).toBe(3);
		expect(await box.peek(10)).toEqual(es);
		await box.remove(["nope", es[1]?.id as string, es[1]?.id as string]);
		expect(ids(await box.peek(10))).toEqual([es[0]?.id, es[2]?.id]);
		// Removing again what is gone is fine too.
		await box.remove([es[1]?.id as string]);
		expect(await box.size()).toBe(2);
	});

	it("keeps order over many entries, and peek(limit) is a prefix of it", async () => {
		const box = make();
		const es = Array.from({ length: 250 }, (_, i) => entry(`t${i % 3}`));
		for (const e of es) await box.add(e);
		expect(await box.size()).toBe(250);
		expect(ids(await box.peek(100))).toEqual(ids(es.slice(0, 100)));
		// Drain in batches the way the client's flusher does.
		const seen: string[] = [];
		for (;;) {
			const batch = await box.peek(100);
			if (!batch.length) break;
			seen.push(...ids(batch));
			await box.remove(ids(batch));
		}
		expect(seen).toEqual(ids(es));
		expect(await box.size()).toBe(0);
	});
});

describe("IndexedDbOutbox", () => {
	it("entries survive a reload: a second instance on the same database sees them, in order", async () => {
		const name = dbName();
		const first = new IndexedDbOutbox(name);
		const es = [entry("a"), entry("b"), entry("c")];
		for (const e of es) await first.add(e);
		await first.remove([es[1]?.id as string]);

		const reloaded = new IndexedDbOutbox(name);
		expect(reloaded.name).toBe(name);
		expect(await reloaded.size()).toBe(2);
		expect(await reloaded.peek(10)).toEqual([es[0], es[2]]);

		// Another database name is another outbox.
		expect(await new IndexedDbOutbox(dbName()).size()).toBe(0);
	});

	it("two instances on one database (two tabs) interleave adds in one global order", async () => {
		const name = dbName();
		const tabA = new IndexedDbOutbox(name);
		const tabB = new IndexedDbOutbox(name);
		const es = [entry(), entry(), entry(), entry(), entry()];
		await tabA.add(es[0] as OutboxEntry);
		await tabB.add(es[1] as OutboxEntry);
		await tabA.add(es[2] as OutboxEntry);
		await tabB.add(es[3] as OutboxEntry);
		await tabB.add(es[4] as OutboxEntry);
		expect(await tabA.peek(10)).toEqual(es);
		expect(await tabB.peek(10)).toEqual(es);
		// What one tab removes the other no longer sees.
		await tabB.remove([es[0]?.id as string, es[2]?.id as string]);
		expect(ids(await tabA.peek(10))).toEqual([es[1], es[3], es[4]].map((e) => e?.id));
		await tabA.clear();
		expect(await tabB.size()).toBe(0);
	});

	it("concurrent adds from two instances all land, each instance's own adds in its order", async () => {
		const name = dbName();
		const tabA = new IndexedDbOutbox(name);
		const tabB = new IndexedDbOutbox(name);
		const fromA = Array.from({ length: 20 }, () => entry("a"));
		const fromB = Array.from({ length: 20 }, () => entry("b"));
		await Promise.all([...fromA.map((e) => tabA.add(e)), ...fromB.map((e) => tabB.add(e))]);
		const all = await tabA.peek(100);
		expect(all).toHaveLength(40);
		expect(all.filter((e) => e.topic === "a")).toEqual(fromA);
		expect(all.filter((e) => e.topic === "b")).toEqual(fromB);
	});

	// IndexedDB's getAll reads a count of 0 as "no limit"; the contract says none.
	it("peek(0) returns no entries, like MemoryOutbox", async () => {
		const box = new IndexedDbOutbox(dbName());
		await box.add(entry());
		await box.add(entry());
		expect(await new MemoryOutbox().peek(0)).toEqual([]);
		expect(await box.peek(0)).toEqual([]);
	});
});

/** A stub of our own Outbox interface whose `add` fails after `okAdds` successful ones. */
class FailingOutbox extends MemoryOutbox {
	adds = 0;
	constructor(
		private okAdds: number,
		private cause: unknown = new DOMException("the quota has been exceeded", "QuotaExceededError"),
	) {
		super();
	}
	override async add(e: OutboxEntry) {
		if (++this.adds > this.okAdds) throw this.cause;
		await super.add(e);
	}
}

/** An outbox on which every operation fails (IndexedDB that cannot open, say). */
const broken = (cause: unknown): Outbox => ({
	add: () => Promise.reject(cause),
	peek: () => Promise.reject(cause),
	remove: () => Promise.reject(cause),
	size: () => Promise.reject(cause),
	clear: () => Promise.reject(cause),
});

describe("FallbackOutbox", () => {
	it("a durable add that throws goes to memory; onDegrade once; durable entries first; size sums both", async () => {
		const quota = new DOMException("the quota has been exceeded", "QuotaExceededError");
		const durable = new FailingOutbox(2, quota);
		const onDegrade = vi.fn();
		const box = new FallbackOutbox(durable, onDegrade);
		const es = [entry(), entry(), entry(), entry(), entry()];
		for (const e of es) await box.add(e); // resolves: nothing is lost, nothing throws
		expect(onDegrade).toHaveBeenCalledTimes(1);
		expect(onDegrade).toHaveBeenCalledWith(quota);
		// The first two made it to the durable outbox; once degraded, the rest
		// go straight to memory (the durable add is not tried again).
		expect(await durable.peek(10)).toEqual(es.slice(0, 2));
		expect(durable.adds).toBe(3);
		expect(await box.peek(10)).toEqual(es);
		expect(ids(await box.peek(3))).toEqual(ids(es.slice(0, 3)));
		expect(ids(await box.peek(1))).toEqual([es[0]?.id]);
		expect(await box.size()).toBe(5);

		// remove reaches both; clear empties both.
		await box.remove([es[0]?.id as string, es[3]?.id as string, "absent"]);
		expect(ids(await box.peek(10))).toEqual([es[1], es[2], es[4]].map((e) => e?.id));
		expect(await durable.size()).toBe(1);
		expect(await box.size()).toBe(3);
		await box.clear();
		expect(await box.size()).toBe(0);
		expect(await durable.size()).toBe(0);
		expect(onDegrade).toHaveBeenCalledTimes(1);
	});

	it("an outbox that fails everywhere degrades once and works as memory", async () => {
		const cause = new Error("IndexedDB is broken");
		const onDegrade = vi.fn();
		const box = new FallbackOutbox(broken(cause), onDegrade);
		// A read fails first (the client peeks on start): that degrades too.
		expect(await box.size()).toBe(0);
		expect(await box.peek(10)).toEqual([]);
		const es = [entry(), entry(), entry()];
		for (const e of es) await box.add(e);
		expect(await box.peek(10)).toEqual(es);
		expect(await box.size()).toBe(3);
		await box.remove([es[1]?.id as string]);
		expect(ids(await box.peek(10))).toEqual([es[0]?.id, es[2]?.id]);
		await box.clear();
		expect(await box.size()).toBe(0);
		expect(onDegrade).toHaveBeenCalledTimes(1);
		expect(onDegrade).toHaveBeenCalledWith(cause);
	});

	it("over a working IndexedDbOutbox: everything durable, never degraded, visible after a reload", async () => {
		const name = dbName();
		const onDegrade = vi.fn();
		const box = new FallbackOutbox(new IndexedDbOutbox(name), onDegrade);
		const es = [entry(), entry(), entry()];
		for (const e of es) await box.add(e);
		expect(await box.peek(10)).toEqual(es);
		expect(await new IndexedDbOutbox(name).peek(10)).toEqual(es);
		await box.remove([es[0]?.id as string]);
		expect(await new IndexedDbOutbox(name).size()).toBe(2);
		expect(onDegrade).not.toHaveBeenCalled();
	});

	it("with no durable outbox works as memory, and never calls onDegrade", async () => {
		const onDegrade = vi.fn();
		const box = new FallbackOutbox(undefined, onDegrade);
		const es = [entry(), entry(), entry()];
		for (const e of es) await box.add(e);
		expect(await box.size()).toBe(3);
		expect(await box.peek(10)).toEqual(es);
		expect(ids(await box.peek(2))).toEqual(ids(es.slice(0, 2)));
		await box.remove([es[0]?.id as string, "absent"]);
		expect(ids(await box.peek(10))).toEqual([es[1]?.id, es[2]?.id]);
		await box.clear();
		expect(await box.size()).toBe(0);
		expect(onDegrade).not.toHaveBeenCalled();
	});
});

describe("Tidings picks its outbox", () => {
	const clients: Tidings[] = [];
	const saved = Object.getOwnPropertyDescriptor(globalThis, "indexedDB");
	afterEach(async () => {
		await Promise.all(clients.splice(0).map((c) => c.close()));
		if (saved) Object.defineProperty(globalThis, "indexedDB", saved);
		vi.unstubAllGlobals();
		vi.resetModules();
	});

	it("in Node without IndexedDB: memory, silently (no warning: not a browser)", async () => {
		delete (globalThis as { indexedDB?: unknown }).indexedDB;
		expect("indexedDB" in globalThis).toBe(false);
		const c = new Tidings({ url: NOWHERE, backoff: { minMs: 10_000, maxMs: 10_000 } });
		clients.push(c);
		const warnings: unknown[] = [];
		c.on("warning", (w) => warnings.push(w));
		// The server is unreachable: the publish is queued in the outbox.
		const published = await c.publish("t", { hello: 1 }, { key: "k-mem" });
		expect(published).toEqual({ queued: true, key: "k-mem" });
		expect(await c.outbox.size()).toBe(1);
		const [queued] = await c.outbox.entries();
		expect(queued?.topic).toBe("t");
		expect(queued?.message).toMatchObject({ data: { hello: 1 }, key: "k-mem" });
		await new Promise((r) => setTimeout(r, 20));
		expect(warnings).toEqual([]);
		await c.close();
		// Memory: a new client on the same name starts empty.
		const next = new Tidings({ url: NOWHERE, backoff: { minMs: 10_000, maxMs: 10_000 } });
		clients.push(next);
		expect(await next.outbox.size()).toBe(0);
	});

	it("with IndexedDB present (fake-indexeddb): a queued publish is still there for the next client", async () => {
		const name = dbName();
		const opts = { url: NOWHERE, name, backoff: { minMs: 10_000, maxMs: 10_000 } };
		const c = new Tidings(opts);
		clients.push(c);
		const warnings: unknown[] = [];
		c.on("warning", (w) => warnings.push(w));
		expect(await c.publish("t", "kept", { key: "k-idb" })).toEqual({ queued: true, key: "k-idb" });
		await c.close();
		expect(await new IndexedDbOutbox(name).size()).toBe(1);
		const next = new Tidings(opts);
		clients.push(next);
		const [kept] = await next.outbox.entries();
		expect(kept?.message).toMatchObject({ data: "kept", key: "k-idb" });
		expect(warnings).toEqual([]);
		// The new client tries to send it at once; let that attempt fail before closing.
		await eventually(() => next.state === "offline", "the failed attempt", 5000);
		expect(await next.outbox.size()).toBe(1);
	});

	// A request still in flight at close() settles after the BroadcastChannel is closed; nothing may throw then.
	it("close() while a publish request is in flight: the flush ends cleanly when the request fails", async () => {
		let fail: (e: Error) => void = () => {};
		let calls = 0;
		const c = new Tidings({
			url: "http://tidings.invalid",
			fetch: () => {
				calls++;
				return new Promise<Response>((_, reject) => {
					fail = reject;
				});
			},
			backoff: { minMs: 10_000, maxMs: 10_000 },
			// This fetch ignores its abort signal: close() waits at most this long for the send in flight.
			requestTimeoutMs: 200,
		});
		clients.push(c);
		const published = c.publish("t", 1, { key: "k-flight" });
		await eventually(() => calls === 1, "the request in flight", 5000);
		// The flush in flight (flush() returns the running one); handled here, so a
		// rejection fails this test instead of the run.
		const flushing = c.flush();
		await c.close();
		expect(await published).toEqual({ queued: true, key: "k-flight" });
		fail(new TypeError("fetch failed"));
		await expect(flushing).resolves.toBeUndefined();
		expect(await c.outbox.size()).toBe(1);
	});

	// In a browser without IndexedDB the `outbox_memory` warning must reach a
	// listener added right after `new` (it used to be emitted inside the
	// constructor, before anyone could listen).
	it("in a browser without IndexedDB: a listener added after construction gets the outbox_memory warning", async () => {
		delete (globalThis as { indexedDB?: unknown }).indexedDB;
		// `browser` is decided when the module loads: a navigator with `onLine`.
		vi.stubGlobal("navigator", { onLine: true });
		vi.resetModules();
		const { Tidings: BrowserTidings } = await import("../../src/client/tidings.js");
		const c = new BrowserTidings({
			url: NOWHERE,
			WebSocket: WebSocket as unknown as SocketClass,
			backoff: { minMs: 10_000, maxMs: 10_000 },
		});
		const warnings: { code: string }[] = [];
		c.on("warning", (w) => warnings.push(w));
		try {
			await new Promise((r) => setTimeout(r, 20));
			expect(warnings.map((w) => w.code)).toEqual(["outbox_memory"]);
		} finally {
			await c.close();
		}
	});
});
