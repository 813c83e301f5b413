import { exports } from "cloudflare:workers";
import { expect, it } from "vitest";

it("publishes and reads back", async () => {
	const res = await exports.default.fetch("http://x/v1/topics/smoke/messages", {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ data: { hello: 1 } }),
	});
	expect(res.status).toBe(201);
	const body = await res.json();
	expect(body).toMatchObject({ seq: 1 });
	const hist = await exports.default.fetch("http://x/v1/topics/smoke/messages");
	expect(await hist.json()).toMatchObject({ messages: [{ seq: 1, data: { hello: 1 } }] });
});
