import { sign } from "hono/jwt";
import { describe, expect, it } from "vitest";
import { mintToken, TokenError, verifyToken } from "../../src/tokens/index.js";

const SECRET = "token-secret-for-tests-0123456789";
const b64url = (o: unknown) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");

async function reason(token: string, secret = SECRET): Promise<string> {
	return verifyToken(secret, token).then(
		() => "accepted",
		(e: unknown) => (e instanceof TokenError ? e.message : `unexpected ${String(e)}`),
	);
}

describe("tokens", () => {
	it("mint offline and verify with their grants, sub and expiry", async () => {
		const now = Date.now();
		const { token, expires_at } = await mintToken(
			SECRET,
			{ topics: { "jobs.*": ["subscribe"] }, ttl_s: 60, sub: "u1" },
			now,
		);
		expect(expires_at).toBe((Math.floor(now / 1000) + 60) * 1000);
		expect(token.split(".")).toHaveLength(3);
		expect(await verifyToken(SECRET, token)).toMatchObject({ topics: { "jobs.*": ["subscribe"] }, sub: "u1" });
	});

	it("refuse expired, not-yet-valid, tampered, wrongly signed and wrong-algorithm tokens", async () => {
		const now = Math.floor(Date.now() / 1000);
		const topics = { ">": ["admin"] };
		expect(await reason(await sign({ topics, iat: now - 100, exp: now - 10 }, SECRET, "HS256"))).toBe(
			"the token has expired",
		);
		expect(await reason(await sign({ topics, iat: now, nbf: now + 600, exp: now + 900 }, SECRET, "HS256"))).toBe(
			"the token is not valid yet",
		);
		const good = await sign({ topics, iat: now, exp: now + 60 }, SECRET, "HS256");
		const [h, , s] = good.split(".");
		const widened = `${h}.${b64url({ topics: { ">": ["admin", "publish"] }, iat: now, exp: now + 60 })}.${s}`;
		expect(await reason(widened)).toBe("the token is not valid");
		expect(await reason(good, "another-secret-entirely-xxxxxxxx")).toBe("the token is not valid");
		expect(await reason(await sign({ topics, iat: now, exp: now + 60 }, SECRET, "HS512"))).toBe(
			"the token is not valid",
		);
		const none = `${b64url({ alg: "none", typ: "JWT" })}.${b64url({ topics, iat: now, exp: now + 60 })}.`;
		expect(await reason(none)).toBe("the token is not valid");
		for (const junk of ["", "abc", "a.b.c", "..", good.slice(0, -2)])
			expect(await reason(junk)).toBe("the token is not valid");
	});

	it("refuse tokens without a usable topics claim or expiry", async () => {
		const now = Math.floor(Date.now() / 1000);
		expect(await reason(await sign({ iat: now, exp: now + 60 }, SECRET, "HS256"))).toBe(
			"the token carries no valid topics claim",
		);
		expect(
			await reason(await sign({ topics: { "a..b": ["publish"] }, iat: now, exp: now + 60 }, SECRET, "HS256")),
		).toBe("the token carries no valid topics claim");
		expect(await reason(await sign({ topics: { a: ["root"] }, iat: now, exp: now + 60 }, SECRET, "HS256"))).toBe(
			"the token carries no valid topics claim",
		);
		expect(await reason(await sign({ topics: { a: ["publish"] }, iat: now }, SECRET, "HS256"))).toBe(
			"the token has no expiry (exp)",
		);
	});

	it("work with any secret, one that contains PRIVATE included", async () => {
		const secret = "MY-PRIVATE-TOKEN-SECRET-0123456789";
		const { token } = await mintToken(secret, { topics: { a: ["publish"] } });
		expect(await verifyToken(secret, token)).toMatchObject({ topics: { a: ["publish"] } });
	});

	it("validate what they are asked to mint", async () => {
		await expect(mintToken(SECRET, { topics: {} })).rejects.toThrow(/at least one pattern/);
		await expect(mintToken(SECRET, { topics: { "a.>.b": ["publish"] } })).rejects.toThrow(/patterns/);
		await expect(mintToken(SECRET, { topics: { a: [] } })).rejects.toThrow(/at least one right/);
		await expect(mintToken(SECRET, { topics: { a: ["publish"] }, ttl_s: 31 * 24 * 3600 })).rejects.toThrow(/ttl_s/);
		await expect(mintToken("", { topics: { a: ["publish"] } })).rejects.toThrow(/secret/);
	});

	it("keep patterns named __proto__, constructor and prototype, and check their rights", async () => {
		// Valid topic names, so valid patterns: parsed from JSON so they are keys, not a prototype.
		const topics = JSON.parse('{"__proto__":["subscribe"],"constructor":["publish"],"prototype":["admin"]}');
		const { token } = await mintToken(SECRET, { topics });
		const claims = await verifyToken(SECRET, token);
		expect(JSON.stringify(claims.topics)).toBe(JSON.stringify(topics));
		expect(Object.getPrototypeOf(claims.topics)).toBe(Object.prototype);
		await expect(mintToken(SECRET, { topics: JSON.parse('{"a":["publish"],"constructor":["root"]}') })).rejects.toThrow(
			/topics\.constructor/,
		);
		const many = JSON.parse(
			`{"constructor":["publish"],${Array.from({ length: 50 }, (_, i) => `"p${i}":["publish"]`).join(",")}}`,
		);
		await expect(mintToken(SECRET, { topics: many })).rejects.toThrow(/at most 50 patterns/);
		// Signed elsewhere: verification checks every pattern, these included.
		const now = Math.floor(Date.now() / 1000);
		const signed = (json: string) => sign({ topics: JSON.parse(json), iat: now, exp: now + 60 }, SECRET, "HS256");
		expect(await reason(await signed('{"constructor":["publish"]}'))).toBe("accepted");
		expect(await reason(await signed('{"a":["publish"],"constructor":["root"]}'))).toBe(
			"the token carries no valid topics claim",
		);
		expect(await reason(await signed('{"a":["publish"],"__proto__":"x"}'))).toBe(
			"the token carries no valid topics claim",
		);
	});
});
