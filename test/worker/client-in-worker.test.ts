/**
 * The client inside a Worker (workerd): no IndexedDB, no Web Locks, no
 * `navigator.onLine`; publishes go through the `fetch` it is given, as a
 * service binding's would.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { MemoryOutbox, Tidings, TidingsError } from "../../src/client/index.js";
import { history, uniqueTopic } from "./helpers.js";

function client() {
	return new Tidings({
		url: "http://tidings.test",
		fetch: (input, init) => exports.default.fetch(input, init),
		outbox: new MemoryOutbox(),
	});
}

describe("the client in a Worker", () => {
	it("publishes through the given fetch, in order, with idempotency keys", async () => {
		const topic = uniqueTopic();
		const t = client();
		const results = await Promise.all([1, 2, 3].map((n) => t.publish(topic, { n }, { wait: true })));
		expect(results.map((r) => "seq" in r && r.seq)).toEqual([1, 2, 3]);
		const again = await t.publish(topic, { n: 1 }, { key: results[0]?.key, wait: true });
		expect(again).toMatchObject({ seq: 1, duplicate: true });
		const page = await history(topic);
		expect(page.messages.map((m) => m.data)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
		expect(page.messages.map((m) => m.key)).toEqual(results.map((r) => r.key));
		expect(t.state).toBe("connected");
		await t.close();
	});

	it("rejects what the server refuses with a typed error", async () => {
		const t = client();
		const err = await t.publish(uniqueTopic(), 1, { delayMs: -5, wait: true }).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(TidingsError);
		expect((err as TidingsError).code).toBe("invalid_request");
		expect(await t.outbox.size()).toBe(0);
		await t.close();
	});
});
