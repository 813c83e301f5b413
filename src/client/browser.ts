/**
 * The browser bundle served at /tidings.js: the client, and nothing a page
 * does not need. `tidings/client` (index.ts) adds the server-side helpers.
 * @module
 */
export type { ErrorBody, ErrorCode, SchemaMismatch } from "../protocol/errors.js";
export { CLOSE_CODES } from "../protocol/errors.js";
export type { Filter } from "../protocol/filter.js";
export type { ClientFrame, ServerFrame } from "../protocol/frames.js";
export type {
	Attributes,
	GroupDelivery,
	JsonSchema,
	Message,
	PublishInput,
	PublishResult,
	TopicSchema,
} from "../protocol/message.js";
export { type ConsumeOptions, Consumer } from "./consumer.js";
export { TidingsError, type TidingsErrorCode } from "./errors.js";
export type { LinkState } from "./link.js";
export { FallbackOutbox, MemoryOutbox, type Outbox, type OutboxEntry } from "./outbox.js";
export { IndexedDbOutbox } from "./outbox-idb.js";
export { type SubscribeOptions, Subscription } from "./subscription.js";
export { Tidings } from "./tidings.js";
export type {
	ConnectionState,
	Published,
	PublishOptions,
	TidingsEvents,
	TidingsOptions,
	TopicHandle,
} from "./types.js";
