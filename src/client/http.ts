/**
 * HTTP to the tidings API with the client's credential. With `getToken`, the
 * answer is cached and used for every request and socket until one is
 * refused: an HTTP `401` asks `getToken` again and sends the request once
 * more; a socket asks again itself before it reconnects (see link.ts).
 * Options are read at each use, not copied, as they always were.
 * @module
 */
import { TidingsError } from "./errors.js";
import type { TidingsOptions } from "./types.js";

export class Http {
	readonly #options: TidingsOptions;
	#token?: Promise<string | undefined>;

	constructor(
		options: TidingsOptions,
		/** The API's origin, without a trailing slash. */
		readonly url: string,
		readonly timeoutMs: number,
	) {
		this.#options = options;
	}

	/** The credential for the next request or socket; `fresh` asks `getToken` again. A rejection means none. */
	token(fresh = false): Promise<string | undefined> {
		const { token, getToken } = this.#options;
		if (!getToken) return Promise.resolve(token);
		if (fresh || !this.#token) this.#token = Promise.resolve(getToken()).catch(() => undefined);
		return this.#token;
	}

	/**
	 * Resolves with a `2xx` answer. Rejects with a `TidingsError`: `network`
	 * when there was no answer (or none within the timeout), else the
	 * server's code and message, with the status.
	 */
	request(method: string, path: string, body?: unknown): Promise<Response> {
		return this.#send(method, path, body, false);
	}

	async #send(method: string, path: string, body: unknown, retried: boolean): Promise<Response> {
		const token = await this.token(retried);
		const headers: Record<string, string> = { "content-type": "application/json" };
		if (token) headers.authorization = `Bearer ${token}`;
		let res: Response;
		try {
			res = await (this.#options.fetch ?? fetch)(this.url + path, {
				method,
				headers,
				body: body === undefined ? undefined : JSON.stringify(body),
				signal: AbortSignal.timeout(this.timeoutMs),
			});
		} catch (e) {
			throw new TidingsError("network", `${method} ${path} failed: ${(e as Error)?.message ?? e}`);
		}
		if (res.ok) return res;
		const { error } = (await res.json().catch(() => ({}))) as {
			error?: { code: TidingsError["code"]; message: string };
		};
		if (res.status === 401 && !retried && this.#options.getToken) return this.#send(method, path, body, true);
		throw new TidingsError(error?.code ?? "internal", error?.message ?? `HTTP ${res.status}`, res.status);
	}
}
