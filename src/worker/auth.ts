/**
 * Who may do what. Closed by default: with neither an admin key, a token
 * secret nor anonymous access configured, everything but /healthz answers
 * 401 with how to configure it.
 *
 * A request carries one credential: `Authorization: Bearer <key or token>`,
 * or, for browsers' WebSockets which cannot set headers, `?token=` or the
 * subprotocol `bearer.<token>` offered beside `tidings`. The admin key may do
 * everything; a token (see src/tokens) carries rights per topic pattern.
 * Missing or bad credentials are 401; a valid one without the right is 403.
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { BEARER_SUBPROTOCOL_PREFIX, splitProtocols } from "../protocol/frames.js";
import { RIGHTS, type Right, rightsOn } from "../protocol/rights.js";
import { type TokenClaims, TokenError, verifyToken } from "../tokens/index.js";
import type { AppEnv } from "./env.js";
import { ApiError } from "./errors.js";

const NOT_CONFIGURED =
	"tidings is not configured: set an admin key with `wrangler secret put TIDINGS_ADMIN_KEY` and, for scoped" +
	" tokens, `wrangler secret put TIDINGS_TOKEN_SECRET` (TIDINGS_ALLOW_ANONYMOUS=true is for local development only)";

/** Local development: what `npm start` runs. Loosens CORS and push targets; never set it in production. */
export function isDevelopment(env: { TIDINGS_ALLOW_ANONYMOUS?: string | undefined }): boolean {
	return env.TIDINGS_ALLOW_ANONYMOUS === "true";
}

export type Principal = { kind: "admin" } | { kind: "anonymous" } | { kind: "token"; claims: TokenClaims };

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

export function offeredProtocols(req: Request): string[] {
	return splitProtocols(req.headers.get("Sec-WebSocket-Protocol"));
}

/** The credential of a request: bearer header, then `?token=`, then a `bearer.` subprotocol. */
export function credentialOf(req: Request): string | undefined {
	const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.get("Authorization") ?? "")?.[1]?.trim();
	if (bearer) return bearer;
	const query = new URL(req.url).searchParams.get("token");
	if (query) return query;
	return offeredProtocols(req)
		.find((p) => p.startsWith(BEARER_SUBPROTOCOL_PREFIX))
		?.slice(BEARER_SUBPROTOCOL_PREFIX.length);
}

export const authenticate: MiddlewareHandler<AppEnv> = async (c, next) => {
	if (isDevelopment(c.env)) {
		c.set("principal", { kind: "anonymous" });
		return next();
	}
	const { TIDINGS_ADMIN_KEY: adminKey, TIDINGS_TOKEN_SECRET: tokenSecret } = c.env;
	if (!adminKey && !tokenSecret) throw new ApiError("unauthorized", NOT_CONFIGURED);
	const credential = credentialOf(c.req.raw);
	if (!credential) {
		throw new ApiError(
			"unauthorized",
			"send a key or token: Authorization: Bearer <token>, or on WebSockets ?token= or the subprotocol bearer.<token>",
		);
	}
	if (adminKey && safeEqual(credential, adminKey)) {
		c.set("principal", { kind: "admin" });
		return next();
	}
	if (!tokenSecret) throw new ApiError("unauthorized", "the key is not valid");
	try {
		c.set("principal", { kind: "token", claims: await verifyToken(tokenSecret, credential) });
	} catch (err) {
		// TokenError messages name the failed check only; nothing of the token is echoed or logged.
		throw new ApiError("unauthorized", err instanceof TokenError ? err.message : "the token is not valid");
	}
	return next();
};

/** The rights the request's principal has on `topic`. */
export function rightsOf(c: Context<AppEnv>, topic: string): Set<Right> {
	const p = c.get("principal");
	return p.kind === "token" ? rightsOn(p.claims.topics, topic) : new Set(RIGHTS);
}

/**
 * Whose publish budget a request spends: a token's `sub`, else the token's signature; keys are not limited.
 * Printable ASCII, so it reaches the object unchanged in a socket upgrade's header as well as over RPC:
 * every other UTF-16 unit (a lone surrogate included) and the backslash are written as \uXXXX.
 */
export function limitKeyOf(c: Context<AppEnv>): string | undefined {
	const p = c.get("principal");
	if (p.kind !== "token") return undefined;
	if (p.claims.sub === undefined) return `sig:${credentialOf(c.req.raw)?.split(".")[2] ?? ""}`;
	// String(): a token signed elsewhere may carry a sub that is not a string.
	return `sub:${String(p.claims.sub).replace(/[^\x20-\x5b\x5d-\x7e]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`)}`;
}

/** Requires `right` on the route's `:topic` (403 otherwise). */
export function requireRight(right: Right | ((c: Context<AppEnv>) => Right)): MiddlewareHandler<AppEnv> {
	return async (c, next) => {
		// Keys and local development hold every right: skip the pattern work on the hot path.
		if (c.get("principal").kind !== "token") return next();
		const topic = c.req.param("topic") ?? "";
		const needed = typeof right === "function" ? right(c) : right;
		if (!rightsOf(c, topic).has(needed)) {
			throw new ApiError("forbidden", `this token has no ${needed} right on topic ${topic}`);
		}
		await next();
	};
}

/** Only the admin key (or anonymous local development) may mint tokens: a token never mints another. */
export const requireAdminKey: MiddlewareHandler<AppEnv> = async (c, next) => {
	if (c.get("principal").kind === "token") throw new ApiError("forbidden", "tokens are issued with the admin key only");
	await next();
};
