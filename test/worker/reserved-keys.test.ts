/**
 * Object keys named `__proto__`, `constructor` and `prototype` (and other
 * names of Object.prototype) are ordinary names in attributes, filters and
 * token grants: they are kept as sent, counted against the limits, and match
 * as any other name. Bodies are written as JSON text here, because an object
 * literal `{ __proto__: … }` sets a prototype instead of a key.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, eventually, history, type StoredMessage, TestSocket, uniqueTopic } from "./helpers.js";

type Json = Record<string, unknown>;

function postText(topic: string, text: string) {
	return api(`/v1/topics/${topic}/messages`, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: text,
	});
}

async function callText(method: string, path: string, text?: string) {
	const res = await api(path, {
		method,
		...(text === undefined ? {} : { headers: { "Content-Type": "application/json" }, body: text }),
	});
	return { status: res.status, text: await res.text() };
}

/** The attributes of each message as JSON text, in the order the server wrote them. */
function attributesText(messages: StoredMessage[]): string[] {
	return messages.map((m) => JSON.stringify(m.attributes));
}

const RESERVED = `{"__proto__":"p","constructor":"c","prototype":true,"toString":1,"kind":"k"}`;

describe("reserved names in attributes", () => {
	it("round-trip through history from single and batch publishes, WebSocket frames and RPC", async () => {
		const topic = uniqueTopic();
		const sock = await TestSocket.open(topic);
		await sock.waitForFrame((f) => f.type === "ready", "ready");
		expect((await postText(topic, `{"data":1,"attributes":${RESERVED}}`)).status).toBe(201);
		expect((await postText(topic, `{"messages":[{"data":2,"attributes":${RESERVED}}]}`)).status).toBe(201);
		sock.send(`{"type":"publish","ref":"r","data":3,"attributes":${RESERVED}}`);
		sock.send(`{"type":"publish","ref":"b","messages":[{"data":4,"attributes":${RESERVED}}]}`);
		await sock.waitFor(() => sock.frames.filter((f) => f.type === "published").length === 2, "two answers");
		// What another Worker hands the RPC entrypoint is a parsed object: the keys are its own properties.
		await exports.TidingsRpc.publish(topic, 5, { attributes: JSON.parse(RESERVED) });
		await exports.TidingsRpc.publishBatch(topic, [{ data: 6, attributes: JSON.parse(RESERVED) }]);
		const page = await history(topic);
		expect(page.messages.map((m) => m.data)).toEqual([1, 2, 3, 4, 5, 6]);
		expect(attributesText(page.messages)).toEqual(Array(6).fill(RESERVED));
		// Live subscribers get them as well.
		await sock.waitForMessages(6);
		expect(sock.messages().map((m) => JSON.stringify(m.attributes))).toEqual(Array(6).fill(RESERVED));
		sock.close();
	});

	it("survive a delay: a delayed message joins the log with them, and filters see them", async () => {
		const topic = uniqueTopic();
		const f = `{"constructor":"c","__proto__":{"exists":true}}`;
		const sock = await TestSocket.open(topic, `filter=${encodeURIComponent(f)}`);
		await sock.waitForFrame((fr) => fr.type === "ready", "ready");
		expect((await postText(topic, `{"data":1,"delay_ms":50,"attributes":${RESERVED}}`)).status).toBe(202);
		expect((await postText(topic, `{"data":2,"delay_ms":50,"attributes":{"constructor":"c"}}`)).status).toBe(202);
		const [m] = await sock.waitForMessages(1);
		expect(JSON.stringify(m?.attributes)).toBe(RESERVED);
		await eventually(async () => (await history(topic)).messages.length === 2, "both joined the log");
		expect(attributesText((await history(topic)).messages)).toEqual([RESERVED, `{"constructor":"c"}`]);
		expect(sock.messages().map((x) => x.data)).toEqual([1]);
		sock.close();
	});

	it("count against the 50-attribute limit", async () => {
		const topic = uniqueTopic();
		const attrs = (n: number) =>
			`{"__proto__":0,"constructor":0,"prototype":0${Array.from({ length: n }, (_, i) => `,"a${i}":${i}`).join("")}}`;
		expect((await postText(topic, `{"data":1,"attributes":${attrs(47)}}`)).status).toBe(201);
		const over = await postText(topic, `{"data":1,"attributes":${attrs(48)}}`);
		expect(over.status).toBe(400);
		expect(((await over.json()) as { error: { code: string } }).error.code).toBe("limit_exceeded");
		expect((await history(topic)).head_seq).toBe(1);
	});

	it("are checked like any other attribute name and value", async () => {
		const topic = uniqueTopic();
		const bad = await postText(topic, `{"data":1,"attributes":{"constructor":{"nested":1}}}`);
		expect(bad.status).toBe(400);
		const body = (await bad.json()) as { error: { code: string; message: string } };
		expect(body.error.code).toBe("invalid_request");
		expect(body.error.message).toMatch(/attributes\.constructor/);
		const long = await postText(topic, `{"data":1,"attributes":{"__proto__":"${"v".repeat(1025)}"}}`);
		expect(long.status).toBe(400);
		expect(((await long.json()) as { error: { code: string } }).error.code).toBe("limit_exceeded");
		expect((await history(topic)).head_seq).toBe(0);
	});
});

/**
 * Seven messages whose attributes use the reserved names; each test below
 * states by hand which of them its filter selects.
 */
const MESSAGES = [
	`{"data":1,"attributes":{"kind":"a"}}`,
	`{"data":2,"attributes":{"kind":"a","constructor":"x"}}`,
	`{"data":3,"attributes":{"kind":"b","constructor":"x"}}`,
	`{"data":4,"attributes":{"constructor":"x"}}`,
	`{"data":5,"attributes":{"kind":"a","__proto__":"p"}}`,
	`{"data":6,"attributes":{"kind":"a","constructor":1,"__proto__":"p","prototype":true}}`,
	`{"data":7,"attributes":{"kind":"a","prototype":false}}`,
];

async function publishAll(topic: string) {
	for (const m of MESSAGES) expect((await postText(topic, m)).status).toBe(201);
}

describe("reserved names in filters", () => {
	it("narrow a live subscription exactly as written", async () => {
		const topic = uniqueTopic();
		const cases: Array<[string, number[]]> = [
			// kind is "a" and constructor is present: 2 and 6, not 1, 5 or 7 (no constructor).
			[`{"kind":"a","constructor":{"exists":true}}`, [2, 6]],
			// __proto__ is "p" and there is no prototype attribute: 5 only (6 has prototype).
			[`{"__proto__":"p","prototype":{"exists":false}}`, [5]],
			// kind "a" without __proto__: 1, 2, 7.
			[`{"kind":["a"],"__proto__":{"exists":false}}`, [1, 2, 7]],
			// constructor present and not "y" (the number 1 is not "y"), and kind present: 2, 3, 6 (4 has no kind).
			[`{"constructor":[{"anything-but":"y"}],"kind":{"exists":true}}`, [2, 3, 6]],
			// prototype is true or false: 6 and 7.
			[`{"prototype":[true,false]}`, [6, 7]],
		];
		const sockets = await Promise.all(cases.map(([f]) => TestSocket.open(topic, `filter=${encodeURIComponent(f)}`)));
		for (const s of sockets) await s.waitForFrame((f) => f.type === "ready", "ready");
		await publishAll(topic);
		// An unfiltered socket marks when everything has been sent.
		const all = await TestSocket.open(topic, "from=0");
		await all.waitForMessages(MESSAGES.length);
		for (const [i, [filter, expected]] of cases.entries()) {
			const s = sockets[i] as TestSocket;
			await s.waitFor(() => s.messages().length >= expected.length, `messages for ${filter}`);
			await new Promise((r) => setTimeout(r, 50));
			expect(
				s.messages().map((m) => m.data),
				filter,
			).toEqual(expected);
			s.close();
		}
		all.close();
	});

	it("narrow a replay (from=0) the same way", async () => {
		const topic = uniqueTopic();
		await publishAll(topic);
		const f = `{"kind":"a","constructor":{"exists":true}}`;
		const s = await TestSocket.open(topic, `from=0&filter=${encodeURIComponent(f)}`);
		await s.waitForMessages(2);
		await new Promise((r) => setTimeout(r, 100));
		expect(s.messages().map((m) => m.data)).toEqual([2, 6]);
		s.close();
	});

	it("narrow a consumer group exactly as written, and read back as sent", async () => {
		const topic = uniqueTopic();
		const filter = `{"__proto__":"p","prototype":{"exists":false}}`;
		const put = await callText("PUT", `/v1/topics/${topic}/groups/g`, `{"start":"earliest","filter":${filter}}`);
		expect(put.status, put.text).toBe(201);
		expect(JSON.stringify((JSON.parse(put.text) as { settings: Json }).settings.filter)).toBe(filter);
		const got = await callText("GET", `/v1/topics/${topic}/groups/g`);
		expect(JSON.stringify((JSON.parse(got.text) as { settings: Json }).settings.filter)).toBe(filter);
		await publishAll(topic);
		const pulled = await callText("POST", `/v1/topics/${topic}/groups/g/pull`, `{"max":100}`);
		expect((JSON.parse(pulled.text) as { messages: Json[] }).messages.map((m) => m.data)).toEqual([5]);
	});

	it("count against the 10-key limit", async () => {
		const topic = uniqueTopic();
		const filter = (n: number) => `{"constructor":"x"${Array.from({ length: n }, (_, i) => `,"k${i}":"x"`).join("")}}`;
		const ok = await api(`/v1/topics/${topic}/ws?filter=${encodeURIComponent(filter(9))}`);
		expect(ok.status).toBe(426);
		await ok.arrayBuffer();
		const over = await api(`/v1/topics/${topic}/ws?filter=${encodeURIComponent(filter(10))}`);
		expect(over.status).toBe(400);
		expect(((await over.json()) as { error: { code: string } }).error.code).toBe("limit_exceeded");
		const group = await callText("PUT", `/v1/topics/${topic}/groups/g`, `{"filter":${filter(10)}}`);
		expect(group.status).toBe(400);
		expect((JSON.parse(group.text) as { error: { code: string } }).error.code).toBe("limit_exceeded");
	});

	it("refuse an invalid condition under a reserved name", async () => {
		const topic = uniqueTopic();
		const res = await api(
			`/v1/topics/${topic}/ws?filter=${encodeURIComponent(`{"kind":"a","constructor":{"nope":1}}`)}`,
		);
		expect(res.status).toBe(400);
		expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/constructor/);
	});
});

describe("reserved names on dead letters", () => {
	it("are kept on the message forwarded to the dead-letter topic", async () => {
		const topic = uniqueTopic();
		const dlt = `${topic}.dead`;
		const put = await callText("PUT", `/v1/topics/${topic}/groups/g`, `{"max_retries":0,"dead_letter_topic":"${dlt}"}`);
		expect(put.status, put.text).toBe(201);
		const watcher = await TestSocket.open(dlt);
		await watcher.waitForFrame((f) => f.type === "ready", "ready");
		expect((await postText(topic, `{"data":1,"attributes":${RESERVED}}`)).status).toBe(201);
		const pulled = await callText("POST", `/v1/topics/${topic}/groups/g/pull`, "{}");
		const [leased] = (JSON.parse(pulled.text) as { messages: Json[] }).messages;
		const nack = await callText("POST", `/v1/topics/${topic}/groups/g/nack`, `{"seqs":[${leased?.seq}]}`);
		expect(nack.status, nack.text).toBe(200);
		const [dead] = await watcher.waitForMessages(1, 5000);
		expect(JSON.stringify(dead?.attributes)).toBe(
			`{"__proto__":"p","constructor":"c","prototype":true,"toString":1,"kind":"k","source_topic":"${topic}","source_group":"g","source_seq":1,"attempts":1}`,
		);
		watcher.close();
	});
});
