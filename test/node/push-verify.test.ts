/** The push verifier runs in Node receivers too (Web Crypto is global in Node 20). */
import { createHmac } from "node:crypto";
import { expect, it } from "vitest";
import { verifyPush } from "../../src/protocol/push-signature.js";

it("verifies a signature made with Node's own HMAC, and refuses a tampered one", async () => {
	const secret = "a-long-enough-push-secret";
	const body = JSON.stringify({ seq: 7, data: { ok: true } });
	const t = Date.now();
	const header = `t=${t},v1=${createHmac("sha256", secret).update(`${t}.${body}`).digest("hex")}`;
	expect(await verifyPush(secret, header, body)).toEqual({ ok: true, timestamp: t });
	expect(await verifyPush(secret, header, body.replace("7", "8"))).toEqual({ ok: false, reason: "mismatch" });
});
