/**
 * What operators need to see and fix a topic: empty-bodied POSTs, every
 * attempt's error kept on a dead letter.
 */
import { describe, expect, it } from "vitest";
import { api, call, createGroup, groupPath, type Json, publish, uniqueTopic } from "./helpers.js";

describe("operator calls", () => {
	it("pull and redrive accept an empty body, as curl -X POST sends", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g", { max_retries: 0 });
		await publish(topic, { data: 1 });
		for (const headers of [{}, { "Content-Type": "application/json" }] as Record<string, string>[]) {
			const res = await api(groupPath(topic, "g", "/pull"), { method: "POST", headers });
			expect(res.status, JSON.stringify(headers)).toBe(200);
		}
		// The first pull leased seq 1; the second got nothing. Fail it into the dead letters, then redrive with no body.
		const pulled = await call("POST", groupPath(topic, "g", "/nack"), { seqs: [1] });
		expect(pulled.body).toMatchObject({ dead: [1] });
		const redrive = await api(groupPath(topic, "g", "/dlq/redrive"), { method: "POST" });
		expect(redrive.status).toBe(200);
		expect(await redrive.json()).toEqual({ redriven: 1 });
		// A body that is there must still be JSON.
		const form = await api(groupPath(topic, "g", "/pull"), {
			method: "POST",
			headers: { "Content-Type": "application/x-www-form-urlencoded" },
			body: "max=1",
		});
		expect(form.status).toBe(415);
		const bad = await api(groupPath(topic, "g", "/pull"), {
			method: "POST",
			headers: { "Content-Type": "application/json" },
			body: "{",
		});
		expect(bad.status).toBe(400);
	});

	it("a dead letter keeps every attempt's error, when it ended and who held it", async () => {
		const topic = uniqueTopic();
		await createGroup(topic, "g", { max_retries: 2, retry_delay_ms: 0, ack_timeout_ms: 1000 });
		await publish(topic, { data: "job" });
		// Attempt 1: a pull whose lease runs out.
		const first = (await call("POST", groupPath(topic, "g", "/pull"), { ack_timeout_ms: 1000 })).body as {
			lease: string;
		};
		// Attempt 2: a pull that nacks with an error.
		const second = await pullWhenDue(topic, 2);
		await call("POST", groupPath(topic, "g", "/nack"), { seqs: [1], lease: second.lease, error: "boom" });
		// Attempt 3: a pull that nacks without one.
		const third = await pullWhenDue(topic, 3);
		await call("POST", groupPath(topic, "g", "/nack"), { seqs: [1], lease: third.lease });
		const dlq = (await call("GET", groupPath(topic, "g", "/dlq"))).body as { messages: Json[] };
		expect(dlq.messages[0]).toMatchObject({
			attempts: 3,
			last_error: null,
			errors: [
				{ attempt: 1, error: "ack timeout", by: first.lease },
				{ attempt: 2, error: "boom", by: second.lease },
				{ attempt: 3, error: null, by: third.lease },
			],
		});
		const at = ((dlq.messages[0] as Json).errors as { at: number }[]).map((e) => e.at);
		expect(at).toEqual([...at].sort((a, b) => a - b));
	});
});

/** Pulls until attempt `attempt` of seq 1 is handed out (a retry is due once its delay or lease has passed). */
async function pullWhenDue(topic: string, attempt: number): Promise<{ lease: string }> {
	const deadline = Date.now() + 5000;
	while (Date.now() < deadline) {
		const page = (await call("POST", groupPath(topic, "g", "/pull"), {})).body as {
			lease: string;
			messages: Json[];
		};
		if (page.messages.length > 0) {
			expect(page.messages[0]).toMatchObject({ seq: 1, attempt });
			return page;
		}
		await new Promise((r) => setTimeout(r, 50));
	}
	throw new Error(`attempt ${attempt} was never pulled`);
}
