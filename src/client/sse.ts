/**
 * A live subscription over Server-Sent Events, for when WebSockets are
 * refused on the way: `GET /v1/topics/:topic/sse` sends the WebSocket
 * protocol's server frames, one per event. Loaded only when needed, so the
 * browser bundle does not carry it.
 * @module
 */
import type { ServerFrame } from "../protocol/frames.js";
import type { Http } from "./http.js";

/** The server sends a keep-alive comment every 15 s: silence for twice that is a dead connection. */
const IDLE_MS = 30_000;

/** Reads frames until the response ends (the server's lifetime), the signal aborts, or the connection goes quiet. */
export async function readSse(
	http: Pick<Http, "url" | "token">,
	path: string,
	signal: AbortSignal,
	opened: () => void,
	onFrame: (frame: ServerFrame) => void,
): Promise<void> {
	const token = await http.token();
	const headers: Record<string, string> = { accept: "text/event-stream" };
	if (token) headers.authorization = `Bearer ${token}`;
	const res = await fetch(http.url + path, { headers, signal });
	if (!res.ok || !res.body) throw new Error(`SSE answered ${res.status}`);
	opened();
	const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
	let buf = "";
	for (;;) {
		let idle: ReturnType<typeof setTimeout> | undefined;
		const next = await Promise.race([
			reader.read(),
			new Promise<never>((_, reject) => {
				idle = setTimeout(() => reject(new Error("SSE idle")), IDLE_MS);
			}),
		]).finally(() => clearTimeout(idle));
		if (next.done) return;
		buf += next.value;
		for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
			for (const line of buf.slice(0, end).split("\n")) {
				if (line.startsWith("data: ")) onFrame(JSON.parse(line.slice(6)) as ServerFrame);
			}
			buf = buf.slice(end + 2);
		}
	}
}
