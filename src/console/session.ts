/**
 * The console's credential and clients. The admin key or token is kept in
 * sessionStorage (gone when the tab closes, never in the URL, never sent
 * anywhere but this origin's API); the clients are made again when it changes.
 * @module
 */
import { Tidings } from "../client/browser.js";
import { TidingsAdmin } from "../client/operator.js";

const STORAGE_KEY = "tidings.console.credential";

export interface Session {
	admin: TidingsAdmin;
	/** For the live tail and the publish form; made on first use. */
	client(): Tidings;
	/** The credential in use, or "" (anonymous: a local `npm start`). */
	credential: string;
	close(): void;
}

export function storedCredential(): string {
	return sessionStorage.getItem(STORAGE_KEY) ?? "";
}

export function storeCredential(credential: string): void {
	if (credential) sessionStorage.setItem(STORAGE_KEY, credential);
	else sessionStorage.removeItem(STORAGE_KEY);
}

/**
 * `onRefused`: a call was answered 401 (the token expired, the key was
 * rotated), wherever in the console it was made.
 */
export function openSession(credential = storedCredential(), onRefused: (err: Error) => void = () => {}): Session {
	const url = location.origin;
	const token = credential || undefined;
	const admin = watchRefusals(new TidingsAdmin({ url, token }), onRefused);
	let tidings: Tidings | undefined;
	return {
		admin,
		credential,
		client() {
			// Its own outbox database, apart from the pages of this origin that publish.
			tidings ??= new Tidings({ url, token, name: "tidings-console" });
			return tidings;
		},
		close() {
			void tidings?.close();
			tidings = undefined;
		},
	};
}

/** The same calls, each also reporting a 401 to `onRefused` (the caller still gets the rejection). */
function watchRefusals(admin: TidingsAdmin, onRefused: (err: Error) => void): TidingsAdmin {
	return new Proxy(admin, {
		get(target, prop) {
			const value = Reflect.get(target, prop, target);
			if (typeof value !== "function") return value;
			return (...args: unknown[]) => {
				// Called on the instance itself: its #private fields are not on the proxy.
				const result = value.apply(target, args);
				if (result instanceof Promise)
					result.catch((err: { status?: number }) => {
						if (err?.status === 401) onRefused(err as Error);
					});
				return result;
			};
		},
	});
}
