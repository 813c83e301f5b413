/**
 * The operator API from outside: `TidingsAdmin` and the `tidings` CLI
 * (dist/cli.js, built by `npm test`'s pretest) against the real Worker
 * under `wrangler dev`. The CLI runs as a child process, as a user runs it:
 * what it prints and the exit code it ends with are the contract.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TidingsAdmin, TidingsError } from "../../src/client/node.js";
import { eventually } from "../shared/eventually.js";
import { type DevServer, freePort, startDev } from "./wrangler-dev.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const CLI = path.join(ROOT, "dist/cli.js");
const state = mkdtempSync(path.join(os.tmpdir(), "tidings-operator-"));
let server: DevServer;
let admin: TidingsAdmin;

beforeAll(async () => {
	if (!existsSync(CLI)) throw new Error("dist/cli.js is missing: run `node scripts/build.mjs` (npm test does)");
	server = await startDev(state, await freePort(), {
		vars: { TIDINGS_TOKEN_SECRET: "operator-test-secret-0123456789" },
	});
	admin = new TidingsAdmin({ url: server.url });
}, 90_000);

afterAll(async () => {
	await server?.kill9().catch(() => {});
	rmSync(state, { recursive: true, force: true });
});

/** Runs the CLI; answers its exit code, stdout and stderr. */
function cli(args: string[], input?: string, env: Record<string, string> = {}) {
	return new Promise<{ code: number; out: string; err: string }>((resolve, reject) => {
		const child = spawn(process.execPath, [CLI, ...args], {
			env: { ...process.env, TIDINGS_URL: server.url, ...env },
			stdio: ["pipe", "pipe", "pipe"],
		});
		let out = "";
		let err = "";
		child.stdout.on("data", (d) => {
			out += String(d);
		});
		child.stderr.on("data", (d) => {
			err += String(d);
		});
		child.on("error", reject);
		child.on("close", (code) => resolve({ code: code ?? -1, out, err }));
		child.stdin.end(input ?? "");
	});
}

const lines = (text: string) =>
	text
		.split("\n")
		.filter(Boolean)
		.map((l) => JSON.parse(l) as Record<string, unknown>);

let n = 0;
const uniqueTopic = (p = "op") => `${p}.${Date.now().toString(36)}-${++n}`;

describe("TidingsAdmin", () => {
	it("creates, lists, reads and deletes, with the client's errors", async () => {
		const topic = uniqueTopic();
		await expect(admin.topic(topic)).rejects.toMatchObject({ code: "not_found", status: 404 });
		expect(await admin.publish(topic, [{ data: 1 }, { data: 2 }])).toEqual([
			expect.objectContaining({ seq: 1 }),
			expect.objectContaining({ seq: 2 }),
		]);
		expect((await admin.putGroup(topic, "g", { start: "earliest" })).created).toBe(true);
		expect((await admin.putGroup(topic, "g", { max_retries: 1 })).created).toBe(false);
		expect((await admin.groups(topic)).map((g) => [g.group, g.counts.pending])).toEqual([["g", 2]]);
		expect((await admin.topic(topic)).head_seq).toBe(2);
		expect((await admin.history(topic, { after: 1 })).messages.map((m) => m.data)).toEqual([2]);
		const listed = await eventually(
			async () => {
				const all = [];
				for await (const t of admin.allTopics({ prefix: topic })) all.push(t);
				return all.length === 1 ? all : undefined;
			},
			"the topic listed",
			10_000,
		);
		expect(listed[0]).toMatchObject({ topic, head_seq: 2, groups: 1 });
		const minted = await admin.mintToken({ topics: { [topic]: ["subscribe"] }, ttl_s: 60 });
		expect(minted.token.split(".")).toHaveLength(3);
		const reader = new TidingsAdmin({ url: server.url, token: minted.token });
		expect((await reader.topic(topic)).head_seq).toBe(2);
		expect(await admin.deleteTopic(topic)).toEqual({ deleted: true, messages: 2 });
		const gone = await admin.groups(topic).catch((e: unknown) => e);
		expect(gone).toBeInstanceOf(TidingsError);
		expect(gone).toMatchObject({ code: "not_found", status: 404 });
	});
});

describe("the tidings CLI", () => {
	it("publishes one message or a line per message from stdin, and tails them", async () => {
		const topic = uniqueTopic();
		const one = await cli(["publish", topic, '{"order":1}', "--key", "o-1", "--attr", "kind=order"]);
		expect(one.code, one.err).toBe(0);
		expect(lines(one.out)).toEqual([expect.objectContaining({ seq: 1 })]);
		// --key is the idempotency key: the same again stores nothing.
		const again = await cli(["publish", topic, '{"order":1}', "--key", "o-1"]);
		expect(lines(again.out)).toEqual([expect.objectContaining({ seq: 1, duplicate: true })]);
		const input = Array.from({ length: 250 }, (_, i) => JSON.stringify({ order: i + 2 })).join("\n");
		const many = await cli(["publish", topic, "-"], `${input}\n`);
		expect(many.code, many.err).toBe(0);
		expect(lines(many.out).map((r) => r.seq)).toEqual(Array.from({ length: 250 }, (_, i) => i + 2));
		const tail = await cli(["--json", "tail", topic, "--from", "earliest", "--count", "251"]);
		expect(tail.code, tail.err).toBe(0);
		const got = lines(tail.out);
		expect(got.map((m) => m.seq)).toEqual(Array.from({ length: 251 }, (_, i) => i + 1));
		expect(got[0]).toMatchObject({ data: { order: 1 }, attributes: { kind: "order" } });
		// To a file (not a terminal), the count goes to stderr, never into the output.
		expect(tail.err).toMatch(/messages 251\/251 \(100%\)/);
		const filtered = await cli(["tail", topic, "--from", "earliest", "--filter", '{"kind":"order"}', "--count", "1"]);
		expect(filtered.out).toMatch(/^1\t\S+\t\{"order":1\}\n$/);
		const stats = await cli(["stats", topic]);
		expect(stats.out).toMatch(new RegExp(`${topic.replace(/\./g, "\\.")}\\s+251\\s+1\\s+251`));
	});

	it("runs a command per message: exit 0 acks, anything else nacks into the dead letters; dlq list, redrive, purge", async () => {
		const topic = uniqueTopic();
		expect((await cli(["group", "put", topic, "jobs", "--start", "earliest", "--max-retries", "0"])).out).toMatch(
			/created group jobs/,
		);
		for (let i = 1; i <= 6; i++) await cli(["publish", topic, JSON.stringify({ n: i })]);
		// Fails the messages whose n is odd, after echoing what it got.
		const script =
			"let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const m=JSON.parse(s);console.log('got',m.seq,m.attempt);process.exit(m.data.n%2)})";
		const run = await cli(["consume", topic, "--group", "jobs", "--count", "6", "--", process.execPath, "-e", script]);
		expect(run.code, run.err).toBe(0);
		expect(run.out.split("\n").filter(Boolean).sort()).toEqual([1, 2, 3, 4, 5, 6].map((s) => `got ${s} 1`).sort());
		const dlq = await eventually(async () => {
			const r = await cli(["--json", "dlq", topic, "jobs"]);
			const dead = lines(r.out);
			return dead.length === 3 ? dead : undefined;
		}, "three dead letters");
		expect(dead(dlq)).toEqual([1, 3, 5]);
		expect(dlq[0]).toMatchObject({ errors: [{ attempt: 1, error: "command exited with 1" }] });
		const table = await cli(["dlq", topic, "jobs"]);
		expect(table.out).toMatch(/SEQ\s+ATTEMPTS\s+DEAD AT\s+LAST ERROR\n1\s+1\s+\S+\s+command exited with 1/);

		const redriven = await cli(["dlq", topic, "jobs", "redrive", "--seqs", "1,3"]);
		expect(redriven.code, redriven.err).toBe(0);
		expect(lines(redriven.out)).toEqual([{ redriven: 2 }]);
		expect(redriven.err).toMatch(/redriven 2\/2 \(100%\)/);
		expect(dead(lines((await cli(["--json", "dlq", topic, "jobs"])).out))).toEqual([5]);
		// Purge asks first; with no terminal to ask on, it refuses without --yes.
		const asked = await cli(["dlq", topic, "jobs", "purge"]);
		expect(asked.code).toBe(2);
		expect(asked.err).toMatch(/not purged/);
		expect(lines((await cli(["dlq", topic, "jobs", "purge", "--yes"])).out)).toEqual([{ purged: 1 }]);
		const groups = await cli(["groups", topic]);
		expect(groups.out).toMatch(
			/^GROUP\s+CURSOR\s+PENDING\s+IN FLIGHT\s+ACKED\s+RETRIED\s+DEAD\s+MEMBERS\njobs\s+6\s+2\s+0\s+3\s+0\s+0\s+0\n$/,
		);
	});

	it("lists topics, mints tokens, deletes a topic, and exits 1, 2 or 3 with the reason on stderr", async () => {
		const topic = uniqueTopic("cli");
		await cli(["publish", topic, "1"]);
		const listed = await eventually(async () => {
			const r = await cli(["--json", "topics", "--prefix", topic]);
			return r.out ? lines(r.out) : undefined;
		}, "the topic listed");
		expect(listed).toEqual([expect.objectContaining({ topic, head_seq: 1 })]);
		const minted = await cli(["token", "mint", "--grant", `${topic}=subscribe,publish`, "--ttl", "60"]);
		const { token } = lines(minted.out)[0] as { token: string };
		expect((await cli(["--json", "stats", topic], undefined, { TIDINGS_KEY: token })).code).toBe(0);

		const missing = await cli(["stats", `${topic}-typo`]);
		expect(missing.code).toBe(1);
		expect(missing.err).toMatch(/^error: not_found \(HTTP 404\): topic \S+-typo does not exist/);
		expect(missing.out).toBe("");
		const usage = await cli(["publish"]);
		expect(usage.code).toBe(2);
		expect(usage.err).toMatch(/missing required argument 'topic'/);
		const notJson = await cli(["publish", topic, "{nope"]);
		expect(notJson.code).toBe(2);
		expect(notJson.err).toMatch(/not JSON/);
		const down = await cli(["--url", "http://127.0.0.1:9", "stats", topic]);
		expect(down.code).toBe(3);
		expect(down.err).toMatch(/^error: network/);
		const help = await cli(["dlq", "--help"]);
		expect(help.code).toBe(0);
		expect(help.out).toMatch(/list, redrive or purge/);

		expect((await cli(["topic", "delete", topic])).code).toBe(2);
		expect(lines((await cli(["topic", "delete", topic, "--yes"])).out)).toEqual([{ deleted: true, messages: 1 }]);
		expect((await cli(["stats", topic])).code).toBe(1);
	});
});

function dead(list: Record<string, unknown>[]): number[] {
	return list.map((d) => d.seq as number);
}
