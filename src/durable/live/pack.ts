/**
 * Message frames as text, and several of them packed into one WebSocket
 * message. Fewer, larger WebSocket messages are what lets one object feed
 * many subscribers: the cost is per message, not per byte.
 * @module
 */
import { TUNING } from "../../protocol/limits.js";
import { type LogRow, renderMessage } from "../log/topic-log.js";

export function messageFrame(topicJson: string, row: LogRow): string {
	return `{"type":"message","message":${renderMessage(topicJson, row)}}`;
}

/**
 * Joins frames with "\n" into WebSocket messages of at most about
 * `TUNING.packMaxChars`. JSON text never holds a raw newline, so a reader
 * splits on it safely.
 */
export function pack(frames: string[]): string[] {
	const out: string[] = [];
	let buf = "";
	for (const f of frames) {
		if (buf.length > 0 && buf.length + 1 + f.length > TUNING.packMaxChars) {
			out.push(buf);
			buf = f;
		} else buf = buf.length > 0 ? `${buf}\n${f}` : f;
	}
	if (buf.length > 0) out.push(buf);
	return out;
}
