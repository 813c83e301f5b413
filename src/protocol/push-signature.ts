/**
 * Signatures of push deliveries: `tidings-signature: t=<ms>,v1=<hex>`, the
 * HMAC-SHA256 of `<t>.<body>` under the group's push secret. Web Crypto only,
 * so the same code signs in the object and verifies in a Worker or in Node.
 * @module
 */

export const SIGNATURE_HEADER = "tidings-signature";
/** Signatures older or newer than this are refused, so a captured request cannot be replayed later. */
export const DEFAULT_TOLERANCE_MS = 5 * 60 * 1000;

const encoder = new TextEncoder();

function key(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
	return crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

function hex(bytes: ArrayBuffer): string {
	return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

function unhex(s: string): Uint8Array | undefined {
	if (!/^(?:[0-9a-f]{2})+$/.test(s)) return undefined;
	const out = new Uint8Array(s.length / 2);
	for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(s.slice(i * 2, i * 2 + 2), 16);
	return out;
}

/** The header value for `body` sent at `timestamp` (ms since the epoch). */
export async function signPush(secret: string, body: string, timestamp = Date.now()): Promise<string> {
	const mac = await crypto.subtle.sign("HMAC", await key(secret, "sign"), encoder.encode(`${timestamp}.${body}`));
	return `t=${timestamp},v1=${hex(mac)}`;
}

export type PushVerdict = { ok: true; timestamp: number } | { ok: false; reason: "malformed" | "stale" | "mismatch" };

/**
 * Checks a push delivery: pass the raw body text exactly as received.
 *
 * @example
 * const verdict = await verifyPush(env.PUSH_SECRET, request.headers.get("tidings-signature"), await request.text());
 * if (!verdict.ok) return new Response("bad signature", { status: 401 });
 */
export async function verifyPush(
	secret: string,
	header: string | null | undefined,
	body: string,
	options: { toleranceMs?: number; now?: number } = {},
): Promise<PushVerdict> {
	const m = /^t=(\d{1,16}),v1=([0-9a-f]{64})$/.exec(header?.trim() ?? "");
	const mac = m ? unhex(m[2] as string) : undefined;
	if (!m || !mac) return { ok: false, reason: "malformed" };
	const timestamp = Number(m[1]);
	const now = options.now ?? Date.now();
	if (Math.abs(now - timestamp) > (options.toleranceMs ?? DEFAULT_TOLERANCE_MS)) return { ok: false, reason: "stale" };
	// subtle.verify compares in constant time.
	const ok = await crypto.subtle.verify(
		"HMAC",
		await key(secret, "verify"),
		mac,
		encoder.encode(`${timestamp}.${body}`),
	);
	return ok ? { ok: true, timestamp } : { ok: false, reason: "mismatch" };
}
