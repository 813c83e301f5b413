/**
 * tidings client library. The reconnecting client with resume, group
 * consumers and the offline outbox is built in its own issue; until then
 * this entry exports the wire types, which are the contract it will speak.
 * @module
 */
export type { ErrorBody, ErrorCode } from "../protocol/errors.js";
export { CLOSE_CODES } from "../protocol/errors.js";
export type { ClientFrame, ServerFrame } from "../protocol/frames.js";
export { LIMITS } from "../protocol/limits.js";
export type {
	Attributes,
	DeadLetter,
	GroupDelivery,
	GroupInfo,
	GroupSettings,
	HistoryPage,
	Message,
	PublishInput,
	PublishResult,
	TopicSettings,
	TopicStats,
} from "../protocol/message.js";
export { type PushVerdict, SIGNATURE_HEADER, verifyPush } from "../protocol/push-signature.js";
