/**
 * `tidings`, the command line: topics, tail, publish, stats, groups, group
 * put/delete, dlq list/redrive/purge, token mint, topic delete, and consume
 * (a command per message). Every call goes through the client library
 * (`TidingsAdmin` for the operator API, `Tidings` for live reads and
 * groups), so the CLI answers what a script using the library would get.
 * See docs/cli.md.
 * @module
 */
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { Command, CommanderError, Option } from "commander";
import type { TidingsError } from "../client/errors.js";
import { Tidings } from "../client/node.js";
import { TidingsAdmin } from "../client/operator.js";
import type { GroupDelivery, Message, PublishInput } from "../protocol/message.js";
import { RIGHTS, type Right } from "../protocol/rights.js";
import { EXIT, Progress, printJson, printTable, reportError, UsageError } from "./output.js";

interface Globals {
	url: string;
	key?: string;
	json?: boolean;
}

/** Runs the CLI on `argv` (without node and the script); resolves with the exit code. */
export async function run(argv: string[]): Promise<number> {
	let code: number = EXIT.ok;
	const program = buildProgram((c) => {
		code = c;
	});
	try {
		await program.parseAsync(argv, { from: "user" });
	} catch (err) {
		if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
		return reportError(err);
	}
	return code;
}

function buildProgram(setExit: (code: number) => void): Command {
	const program = new Command("tidings")
		.description("Operate a tidings deployment: topics, messages, consumer groups, dead letters, tokens.")
		.addOption(new Option("--url <url>", "where tidings runs").env("TIDINGS_URL").default("http://localhost:8787"))
		.addOption(new Option("--key <key>", "the admin key or a token").env("TIDINGS_KEY"))
		.option("--json", "print JSON (one value per line) instead of tables")
		.version(version(), "-v, --version")
		.showHelpAfterError("(run with --help for usage)")
		// Options before the command are the program's (--url, --key: the credential), after it the
		// command's: `publish --key` is the message's idempotency key.
		.enablePositionalOptions()
		.exitOverride();
	const globals = () => program.opts<Globals>();
	const admin = () => {
		const { url, key } = globals();
		return new TidingsAdmin({ url, ...(key ? { token: key } : {}) });
	};
	const sub = (name: string) => program.command(name).exitOverride();

	sub("topics")
		.description("list the topics that exist (a few seconds behind), by name")
		.option("--prefix <prefix>", "only names starting with this", "")
		.action(async (opts: { prefix: string }) => {
			const rows = [];
			for await (const t of admin().allTopics({ prefix: opts.prefix, limit: 1000 })) {
				if (globals().json) printJson(t);
				else rows.push(t);
			}
			if (globals().json) return;
			printTable(
				["TOPIC", "HEAD", "RETAINED", "SOCKETS", "GROUPS", "DEAD", "LAST PUBLISH"],
				rows.map((t) => [
					t.topic,
					t.head_seq,
					t.retained,
					t.sockets,
					t.groups,
					t.dead_letters,
					t.last_publish_at === null ? "-" : new Date(t.last_publish_at).toISOString(),
				]),
			);
		});

	sub("stats")
		.description("a topic's stats, settings and groups")
		.argument("<topic>")
		.action(async (topic: string) => {
			const s = await admin().topic(topic);
			if (globals().json) return printJson(s);
			printTable(
				["TOPIC", "HEAD", "FIRST", "RETAINED", "DELAYED", "SUBSCRIBERS", "GROUPS"],
				[[s.topic, s.head_seq, s.first_seq, s.retained, s.delayed, s.subscribers, s.groups.length]],
			);
		});

	sub("publish")
		.description("publish a JSON message, or one per line of stdin with -")
		.argument("<topic>")
		.argument("[json]", "the message's data as JSON, or - to read one per line from stdin", "-")
		.option("--key <key>", "the message's idempotency key (one message only; the credential goes before the command)")
		.option("--delay <ms>", "join the log after this many milliseconds", whole("--delay"))
		.option("--attr <name=value...>", "attributes (repeatable)")
		.action(async (topic: string, json: string, opts: { key?: string; delay?: number; attr?: string[] }) => {
			const extra: Omit<PublishInput, "data"> = {
				...(opts.delay === undefined ? {} : { delay_ms: opts.delay }),
				...(opts.attr ? { attributes: Object.fromEntries(opts.attr.map(attribute)) } : {}),
			};
			const client = admin();
			if (json !== "-") {
				const [result] = await client.publish(topic, [
					{ data: parseJson(json, "the message"), ...extra, ...(opts.key ? { key: opts.key } : {}) },
				]);
				return printJson(result);
			}
			if (opts.key) throw new UsageError("--key names one message; give each line its own key in a script");
			let batch: PublishInput[] = [];
			let line = 0;
			let sent = 0;
			const flush = async () => {
				if (batch.length === 0) return;
				for (const r of await client.publish(topic, batch)) printJson(r);
				sent += batch.length;
				batch = [];
			};
			for await (const text of createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY })) {
				line++;
				if (text.trim() === "") continue;
				batch.push({ data: parseJson(text, `line ${line}`), ...extra });
				if (batch.length === 100) await flush();
			}
			await flush();
			if (sent === 0) process.stderr.write("nothing to publish: stdin was empty\n");
		});

	sub("tail")
		.description("print a topic's messages as they are published (resuming across reconnects)")
		.argument("<topic>")
		.option("--from <from>", "latest, earliest, or after this seq", "latest")
		.option("--filter <json>", 'only messages whose attributes match, e.g. \'{"kind":"order"}\'')
		.option("--count <n>", "stop after this many messages", whole("--count"))
		.action(async (topic: string, opts: { from: string; filter?: string; count?: number }) => {
			const from = opts.from === "latest" || opts.from === "earliest" ? opts.from : wholeOf(opts.from, "--from");
			const filter = opts.filter === undefined ? undefined : parseJson(opts.filter, "--filter");
			// Written to a file or a pipe: the count goes to stderr, so the file gets only messages.
			const progress = process.stdout.isTTY ? undefined : new Progress("messages", opts.count);
			let seen = 0;
			await live(globals(), (client, finish) =>
				client.subscribe(
					topic,
					(m: Message) => {
						if (globals().json) printJson(m);
						else process.stdout.write(`${m.seq}\t${new Date(m.ts).toISOString()}\t${JSON.stringify(m.data)}\n`);
						seen++;
						progress?.update(seen);
						if (opts.count !== undefined && seen >= opts.count) finish();
					},
					{ from, ...(filter === undefined ? {} : { filter: filter as never }) },
				),
			);
			progress?.done();
		});

	sub("groups")
		.description("a topic's consumer groups with their counts")
		.argument("<topic>")
		.action(async (topic: string) => {
			const groups = await admin().groups(topic);
			if (globals().json) {
				for (const g of groups) printJson(g);
				return;
			}
			printTable(
				["GROUP", "CURSOR", "PENDING", "IN FLIGHT", "ACKED", "RETRIED", "DEAD", "MEMBERS"],
				groups.map((g) => [
					g.group,
					g.cursor,
					g.counts.pending,
					g.counts.in_flight,
					g.counts.acked,
					g.counts.retried,
					g.counts.dead,
					g.members,
				]),
			);
		});

	const group = sub("group").description("create, change or delete a consumer group");
	group
		.command("put")
		.exitOverride()
		.description("create a group or change its settings")
		.argument("<topic>")
		.argument("<group>")
		.option("--settings <json>", "settings as JSON (see docs/groups.md)", "{}")
		.option("--start <where>", "earliest or latest (on creation)")
		.option("--max-retries <n>", "attempts after the first", whole("--max-retries"))
		.option("--ack-timeout <ms>", "lease of a delivery", whole("--ack-timeout"))
		.option("--retry-delay <ms>", "delay before a retry", whole("--retry-delay"))
		.option("--dead-letter-topic <topic>", "where dead letters are also published")
		.action(async (topic: string, name: string, opts: Record<string, string | number | undefined>) => {
			const settings = {
				...(parseJson(String(opts.settings), "--settings") as object),
				...(opts.start === undefined ? {} : { start: opts.start }),
				...(opts.maxRetries === undefined ? {} : { max_retries: opts.maxRetries }),
				...(opts.ackTimeout === undefined ? {} : { ack_timeout_ms: opts.ackTimeout }),
				...(opts.retryDelay === undefined ? {} : { retry_delay_ms: opts.retryDelay }),
				...(opts.deadLetterTopic === undefined ? {} : { dead_letter_topic: opts.deadLetterTopic }),
			};
			const info = await admin().putGroup(topic, name, settings as never);
			if (globals().json) return printJson(info);
			process.stdout.write(`${info.created ? "created" : "updated"} group ${name} on ${topic}\n`);
		});
	group
		.command("delete")
		.exitOverride()
		.description("delete a group with its leases and dead letters (its members are closed with 4404)")
		.argument("<topic>")
		.argument("<group>")
		.action(async (topic: string, name: string) => {
			printJson(await admin().deleteGroup(topic, name));
		});

	sub("dlq")
		.description("a group's dead letters: list (default), redrive or purge")
		.argument("<topic>")
		.argument("<group>")
		.argument("[action]", "list, redrive or purge", "list")
		.option("--seqs <list>", "only these seqs: 1,2,5-9")
		.option("--yes", "purge without asking (required when stdin is not a terminal)")
		.action(async (topic: string, name: string, action: string, opts: { seqs?: string; yes?: boolean }) => {
			const client = admin();
			const seqs = opts.seqs === undefined ? undefined : seqList(opts.seqs);
			if (action === "list") return listDeadLetters(client, topic, name, globals().json === true);
			if (action === "redrive") return redrive(client, topic, name, seqs);
			if (action === "purge") {
				if (seqs) throw new UsageError("purge takes every dead letter of the group; --seqs is for redrive");
				if (!opts.yes && !(await confirm(`purge every dead letter of ${topic}/${name}?`)))
					throw new UsageError("not purged: confirm, or pass --yes");
				return printJson(await client.purgeDeadLetters(topic, name));
			}
			throw new UsageError(`unknown dlq action ${action}: list, redrive or purge`);
		});

	const token = sub("token").description("scoped tokens");
	token
		.command("mint")
		.exitOverride()
		.description("mint a token (admin key only); prints {token, expires_at}")
		.requiredOption(
			"--grant <pattern=rights...>",
			`rights per topic pattern, e.g. 'jobs.>=publish,subscribe' (${RIGHTS.join(", ")})`,
		)
		.option("--ttl <seconds>", "lifetime", whole("--ttl"))
		.option("--sub <subject>", "who the token is for (its publish budget is per subject)")
		.action(async (opts: { grant: string[]; ttl?: number; sub?: string }) => {
			const topics: Record<string, Right[]> = {};
			for (const g of opts.grant) {
				const at = g.lastIndexOf("=");
				if (at <= 0) throw new UsageError(`--grant ${g}: write pattern=right,right`);
				topics[g.slice(0, at)] = g.slice(at + 1).split(",") as Right[];
			}
			printJson(
				await admin().mintToken({
					topics,
					...(opts.ttl === undefined ? {} : { ttl_s: opts.ttl }),
					...(opts.sub === undefined ? {} : { sub: opts.sub }),
				}),
			);
		});

	const topicCmd = sub("topic").description("a topic's lifecycle");
	topicCmd
		.command("delete")
		.exitOverride()
		.description(
			"delete a topic: messages, groups, keys, timers; its sockets close with 4410; the name starts again at seq 1",
		)
		.argument("<topic>")
		.option("--yes", "delete without asking (required when stdin is not a terminal)")
		.action(async (topic: string, opts: { yes?: boolean }) => {
			if (!opts.yes && !(await confirm(`delete topic ${topic} and everything in it?`)))
				throw new UsageError("not deleted: confirm, or pass --yes");
			printJson(await admin().deleteTopic(topic));
		});

	sub("consume")
		.description(
			"join a consumer group and run a command per message: the message JSON on stdin; exit 0 acks, anything else nacks",
		)
		.argument("<topic>")
		.argument("<command...>", "the command and its arguments (after --)")
		.requiredOption("--group <group>", "the consumer group (create it with `group put`)")
		.option("--concurrency <n>", "commands running at once", whole("--concurrency"), 1)
		.option("--count <n>", "stop after this many messages were handled", whole("--count"))
		.action(async (topic: string, command: string[], opts: { group: string; concurrency: number; count?: number }) => {
			const [file, ...args] = command;
			if (!file) throw new UsageError("give the command to run after --");
			let handled = 0;
			await live(globals(), (client, finish) =>
				client.consume(
					topic,
					async (m: GroupDelivery) => {
						const exit = await runFor(file, args, m);
						handled++;
						if (opts.count !== undefined && handled >= opts.count) setTimeout(finish, 0);
						if (exit !== 0) throw new Error(`command exited with ${exit}`);
					},
					{ group: opts.group, concurrency: opts.concurrency },
				),
			);
		});

	program.hook("postAction", () => setExit(EXIT.ok));
	return program;
}

/**
 * Runs a live read until `finish` is called, SIGINT or SIGTERM arrives, or the
 * server refuses it for good (then the error is thrown: exit 1).
 */
async function live(
	globals: Globals,
	start: (client: Tidings, finish: () => void) => { stop?: () => Promise<void> | void; close?: () => void } | unknown,
): Promise<void> {
	const client = new Tidings({ url: globals.url, ...(globals.key ? { token: globals.key } : {}) });
	let refused: TidingsError | undefined;
	await new Promise<void>((resolve) => {
		const finish = () => resolve();
		client.on("error", (e) => {
			// Retryable errors (a dropped socket, a 5xx) are the client's to ride out.
			if (e.retryable) return process.stderr.write(`warning: ${e.code}: ${e.message}\n`);
			refused = e;
			resolve();
		});
		process.once("SIGINT", finish);
		process.once("SIGTERM", finish);
		start(client, finish);
	});
	await client.close();
	if (refused) throw refused;
}

/** Runs `file` with the delivery on stdin; answers its exit code (spawn failures exit the CLI with 4). */
function runFor(file: string, args: string[], m: GroupDelivery): Promise<number> {
	return new Promise((resolve) => {
		const child = spawn(file, args, {
			stdio: ["pipe", "inherit", "inherit"],
			env: { ...process.env, TIDINGS_TOPIC: m.topic, TIDINGS_SEQ: String(m.seq), TIDINGS_ATTEMPT: String(m.attempt) },
		});
		child.on("error", (err) => {
			process.stderr.write(`error: could not run ${file}: ${err.message}\n`);
			process.exit(EXIT.command);
		});
		child.stdin.on("error", () => {}); // a command that does not read stdin
		child.stdin.end(`${JSON.stringify(m)}\n`);
		child.on("close", (code) => resolve(code ?? 1));
	});
}

async function listDeadLetters(client: TidingsAdmin, topic: string, group: string, json: boolean): Promise<void> {
	let after = 0;
	const rows: (string | number)[][] = [];
	for (;;) {
		const page = await client.deadLetters(topic, group, { after, limit: 1000 });
		for (const d of page.messages) {
			if (json) printJson(d);
			else rows.push([d.seq, d.attempts, new Date(d.dead_at).toISOString(), d.last_error ?? "-"]);
		}
		const last = page.messages.at(-1);
		if (!last) break;
		after = last.seq;
	}
	if (!json) printTable(["SEQ", "ATTEMPTS", "DEAD AT", "LAST ERROR"], rows);
}

/** Redrives in pages of 1,000 seqs, so a long redrive shows its progress. */
async function redrive(client: TidingsAdmin, topic: string, group: string, seqs?: number[]): Promise<void> {
	let targets = seqs;
	if (!targets) {
		targets = [];
		let after = 0;
		for (;;) {
			const page = await client.deadLetters(topic, group, { after, limit: 1000 });
			const last = page.messages.at(-1);
			if (!last) break;
			targets.push(...page.messages.map((d) => d.seq));
			after = last.seq;
		}
	}
	const progress = new Progress("redriven", targets.length);
	let redriven = 0;
	for (let i = 0; i < targets.length; i += 1000) {
		redriven += (await client.redrive(topic, group, targets.slice(i, i + 1000))).redriven;
		progress.update(Math.min(i + 1000, targets.length));
	}
	progress.done();
	printJson({ redriven });
}

async function confirm(question: string): Promise<boolean> {
	if (!process.stdin.isTTY) return false;
	const rl = createInterface({ input: process.stdin, output: process.stderr });
	const answer = await new Promise<string>((resolve) => rl.question(`${question} [y/N] `, resolve));
	rl.close();
	return /^y(es)?$/i.test(answer.trim());
}

function parseJson(text: string, what: string): unknown {
	try {
		return JSON.parse(text);
	} catch {
		throw new UsageError(`${what} is not JSON: ${text.slice(0, 80)}`);
	}
}

function attribute(pair: string): [string, string | number | boolean] {
	const at = pair.indexOf("=");
	if (at <= 0) throw new UsageError(`--attr ${pair}: write name=value`);
	const raw = pair.slice(at + 1);
	const value = raw === "true" ? true : raw === "false" ? false : /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw;
	return [pair.slice(0, at), value];
}

/** `1,2,5-9` as seqs. */
function seqList(text: string): number[] {
	const out: number[] = [];
	for (const part of text.split(",")) {
		const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
		if (!m) throw new UsageError(`--seqs ${text}: write seqs and ranges, like 1,2,5-9`);
		const first = Number(m[1]);
		const last = m[2] === undefined ? first : Number(m[2]);
		if (last < first || last - first > 100_000) throw new UsageError(`--seqs: ${part} is not a range`);
		for (let s = first; s <= last; s++) out.push(s);
	}
	return out;
}

/** The package's version: dist/cli.js sits one folder below package.json. */
function version(): string {
	try {
		return (createRequire(import.meta.url)("../package.json") as { version: string }).version;
	} catch {
		return "unknown";
	}
}

function wholeOf(text: string, flag: string): number {
	if (!/^\d+$/.test(text)) throw new UsageError(`${flag} must be a whole number, not ${text}`);
	return Number(text);
}

function whole(flag: string) {
	return (text: string) => wholeOf(text, flag);
}
