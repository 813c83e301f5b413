/**
 * A log row as a `message` frame's text, built from the stored JSON without
 * parsing it again: one string per message, shared by every socket.
 * @module
 */
import { type LogRow, renderMessage } from "../log/topic-log.js";

export function messageFrame(topicJson: string, row: LogRow): string {
	return `{"type":"message","message":${renderMessage(topicJson, row)}}`;
}
