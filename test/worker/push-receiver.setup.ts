/**
 * A real HTTP receiver for push deliveries, run in Node beside workerd.
 * Tests script its answers and read what it received through control routes:
 *   POST /_script/:hook  {statuses: [500, 500, 200], delayMs?}  answers in order (the last repeats)
 *   GET  /_log/:hook     every request received: headers, body, when it came and when it was answered
 *   POST /hook/:hook     the push endpoint itself
 */
import { createServer, type IncomingMessage } from "node:http";
import type { TestProject } from "vitest/node";

interface Received {
	at: number;
	/** When the answer was sent (after the scripted delay). */
	end?: number;
	headers: Record<string, string>;
	body: string;
}

export default async function setup(project: TestProject) {
	const scripts = new Map<string, { statuses: number[]; delayMs: number }>();
	const logs = new Map<string, Received[]>();
	const read = (req: IncomingMessage) =>
		new Promise<string>((resolve) => {
			let body = "";
			req.on("data", (d) => {
				body += String(d);
			});
			req.on("end", () => resolve(body));
		});
	const server = createServer(async (req, res) => {
		const url = new URL(req.url ?? "/", "http://localhost");
		const [, kind, hook = ""] = url.pathname.split("/");
		const body = await read(req);
		if (kind === "_script") {
			const s = JSON.parse(body) as { statuses: number[]; delayMs?: number };
			scripts.set(hook, { statuses: s.statuses, delayMs: s.delayMs ?? 0 });
			res.end("{}");
			return;
		}
		if (kind === "_log") {
			res.setHeader("Content-Type", "application/json");
			res.end(JSON.stringify(logs.get(hook) ?? []));
			return;
		}
		const log = logs.get(hook) ?? [];
		const entry: Received = { at: Date.now(), headers: req.headers as Record<string, string>, body };
		log.push(entry);
		logs.set(hook, log);
		const script = scripts.get(hook) ?? { statuses: [200], delayMs: 0 };
		const status = script.statuses.length > 1 ? (script.statuses.shift() as number) : (script.statuses[0] ?? 200);
		if (script.delayMs > 0) await new Promise((r) => setTimeout(r, script.delayMs));
		res.statusCode = status;
		entry.end = Date.now();
		res.end(status < 300 ? "ok" : "failed");
	});
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	const { port } = server.address() as { port: number };
	project.provide("pushReceiver", `http://127.0.0.1:${port}`);
	return () => new Promise<void>((resolve) => server.close(() => resolve()));
}

declare module "vitest" {
	export interface ProvidedContext {
		pushReceiver: string;
	}
}
