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

export function openSession(credential = storedCredential()): Session {
	const url = location.origin;
	const token = credential || undefined;
	const admin = new TidingsAdmin({ url, token });
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
