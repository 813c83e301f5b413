/**
 * `POST /v1/tokens`: the admin key mints a scoped token. App servers can
 * mint the same tokens offline with `mintToken` from src/tokens.
 * @module
 */
import { Hono } from "hono";
import { TokenRequestSchema } from "../../protocol/schema.js";
import { mintToken } from "../../tokens/index.js";
import { requireAdminKey } from "../auth.js";
import type { AppEnv } from "../env.js";
import { ApiError } from "../errors.js";
import { requireJson, validate } from "../validate.js";

export const tokens = new Hono<AppEnv>().post(
	"/",
	requireAdminKey,
	requireJson,
	validate("json", TokenRequestSchema),
	async (c) => {
		const secret = c.env.TIDINGS_TOKEN_SECRET;
		if (!secret) {
			throw new ApiError(
				"invalid_request",
				"set TIDINGS_TOKEN_SECRET (wrangler secret put TIDINGS_TOKEN_SECRET) to issue tokens",
			);
		}
		return c.json(await mintToken(secret, c.req.valid("json")), 201);
	},
);
