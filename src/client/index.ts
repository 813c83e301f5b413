/**
 * tidings client: publish (through an outbox that survives being offline),
 * subscribe (resuming from the last seq), consume a group (acks from the
 * handler's promise). Runs in browsers, Workers and Node; see docs/client.md.
 * Besides what the browser bundle has, it exports `verifyPush` for push
 * receivers.
 * @module
 */

export { type PushVerdict, SIGNATURE_HEADER, verifyPush } from "../protocol/push-signature.js";
export * from "./browser.js";
export { type DeadLetterPage, TidingsAdmin, type TidingsAdminOptions } from "./operator.js";
