/**
 * Who may use this Worker. Closed by default: with neither an admin key nor
 * anonymous access configured, everything but /healthz answers 401 with how
 * to configure it. Scoped tokens come in the security issue; the admin key
 * and the anonymous switch are the floor they build on.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { Env } from "./env.js";
import { errorResponse } from "./errors.js";

const NOT_CONFIGURED =
	"tidings is not configured: set an admin key with `wrangler secret put TIDINGS_ADMIN_KEY`" +
	" (or TIDINGS_ALLOW_ANONYMOUS=true for local development only)";

/** Constant-time comparison of two strings, so a key cannot be guessed byte by byte from timing. */
export function safeEqual(a: string, b: string): boolean {
	const enc = new TextEncoder();
	const x = enc.encode(a);
	const y = enc.encode(b);
	// timingSafeEqual needs equal lengths; compare y with itself to spend the same time.
	if (x.byteLength !== y.byteLength) {
		crypto.subtle.timingSafeEqual(y, y);
		return false;
	}
	return crypto.subtle.timingSafeEqual(x, y);
}

/** The credential of a request: `Authorization: Bearer`, or `?token=` (browsers' WebSockets cannot set headers). */
export function credentialOf(req: Request): string | undefined {
	const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.get("Authorization") ?? "")?.[1]?.trim();
	return bearer || (new URL(req.url).searchParams.get("token") ?? undefined);
}

export const authorize: MiddlewareHandler<{ Bindings: Env }> = async (c, next) => {
	if (c.env.TIDINGS_ALLOW_ANONYMOUS === "true") return next();
	const adminKey = c.env.TIDINGS_ADMIN_KEY;
	if (!adminKey) return errorResponse(c, "unauthorized", NOT_CONFIGURED);
	const credential = credentialOf(c.req.raw);
	if (!credential) {
		return errorResponse(
			c,
			"unauthorized",
			"send a key or token: Authorization: Bearer <key>, or ?token= on WebSockets",
		);
	}
	if (!safeEqual(credential, adminKey)) return errorResponse(c, "unauthorized", "the key or token is not valid");
	return next();
};
