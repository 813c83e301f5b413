/**
 * Scoped tokens: standard HS256 JWTs (Hono's JWT helper over Web Crypto)
 * whose `topics` claim maps topic patterns to rights. An app server mints
 * them offline from `TIDINGS_TOKEN_SECRET`, with no round trip to tidings,
 * and hands one to a page:
 *
 * @example
 * import { mintToken } from "tidings/tokens";
 * const { token } = await mintToken(process.env.TIDINGS_TOKEN_SECRET, {
 *   topics: { "jobs.user-42": ["subscribe"], "uploads.>": ["publish"] },
 *   ttl_s: 3600,
 *   sub: "user-42",
 * });
 * @module
 */
import { sign, verify } from "hono/jwt";
import * as v from "valibot";
import type { Grants } from "../protocol/rights.js";
import { describeIssues, GrantsSchema, type TokenRequest, TokenRequestSchema } from "../protocol/schema.js";

export type { Grants, Right } from "../protocol/rights.js";
export type { TokenRequest } from "../protocol/schema.js";

export interface TokenClaims {
	topics: Grants;
	sub?: string;
	/** Seconds since the epoch. */
	exp: number;
	iat: number;
}

/**
 * The secret as an HMAC key. Passing Hono the key itself, not the string,
 * matters: Hono reads a string containing "PRIVATE" as a PEM key.
 */
function hmacKey(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
	return crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
		usage,
	]);
}

/** A token that could not be used: never says more than which check failed, never echoes the token. */
export class TokenError extends Error {
	override readonly name = "TokenError";
}

/** Mints a token; throws a TypeError naming the bad field when the request is invalid. */
export async function mintToken(
	secret: string,
	request: TokenRequest,
	now = Date.now(),
): Promise<{ token: string; expires_at: number }> {
	if (!secret) throw new TypeError("mintToken needs the token secret (TIDINGS_TOKEN_SECRET)");
	const parsed = v.safeParse(TokenRequestSchema, request);
	if (!parsed.success) throw new TypeError(describeIssues(parsed.issues).message);
	const { topics, ttl_s, sub } = parsed.output;
	const iat = Math.floor(now / 1000);
	const claims: TokenClaims = {
		topics: topics as Grants,
		iat,
		exp: iat + ttl_s,
		...(sub === undefined ? {} : { sub }),
	};
	return { token: await sign({ ...claims }, await hmacKey(secret, "sign"), "HS256"), expires_at: claims.exp * 1000 };
}

/**
 * Verifies signature (HS256 only: `alg: none` and every other algorithm are
 * refused), `exp`, `nbf` and `iat`, then the shape of the `topics` claim.
 */
export async function verifyToken(secret: string, token: string): Promise<TokenClaims> {
	let payload: Record<string, unknown>;
	try {
		payload = (await verify(token, await hmacKey(secret, "verify"), "HS256")) as Record<string, unknown>;
	} catch (err) {
		const name = err instanceof Error ? err.name : "";
		const reason = /Expired/i.test(name)
			? "the token has expired"
			: /NotBefore|IssuedAt/i.test(name)
				? "the token is not valid yet"
				: "the token is not valid";
		throw new TokenError(reason);
	}
	if (typeof payload.exp !== "number") throw new TokenError("the token has no expiry (exp)");
	const grants = v.safeParse(GrantsSchema, payload.topics);
	if (!grants.success) throw new TokenError("the token carries no valid topics claim");
	return { ...payload, topics: grants.output } as unknown as TokenClaims;
}
