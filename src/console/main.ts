/**
 * The operator console at /console: a client of the HTTP API and the client
 * library, like any script (docs/console.md). Views are chosen by the hash
 * (`#/`, `#/t/<topic>/<tab>`, `#/t/<topic>/g/<group>`, `#/tokens`), so the
 * back button works and nothing secret is ever in the URL.
 * @module
 */

import { deadLettersView } from "./dead-letters.js";
import { byId, errorText, h } from "./dom.js";
import { openSession, type Session, storeCredential, storedCredential } from "./session.js";
import { tokensView } from "./tokens.js";
import { topicView } from "./topic.js";
import { topicsView } from "./topics.js";

/** What a view leaves running (polls, sockets), stopped when the view changes. */
export type Cleanup = () => void;

let session: Session | undefined;
let cleanup: Cleanup | undefined;

const main = byId("main");
const who = byId("who");
const signOut = byId<HTMLButtonElement>("sign-out");

function route(): void {
	cleanup?.();
	cleanup = undefined;
	if (!session) return;
	const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
	for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
		const current = link.dataset.view === (parts[0] === "tokens" ? "tokens" : "topics");
		if (current) link.setAttribute("aria-current", "page");
		else link.removeAttribute("aria-current");
	}
	main.replaceChildren();
	if (parts[0] === "t" && parts[1]) {
		if (parts[2] === "g" && parts[3]) cleanup = deadLettersView(main, session, parts[1], parts[3]);
		else cleanup = topicView(main, session, parts[1], parts[2] ?? "live");
	} else if (parts[0] === "tokens") cleanup = tokensView(main, session);
	else cleanup = topicsView(main, session);
	// Move focus to the new view's heading, as a page load would, for keyboard and screen reader users.
	main.querySelector<HTMLElement>("h1")?.focus();
}

/** Tries the credential on the topic list: the key (or token) works, or the sign-in form says why not. */
async function start(credential: string): Promise<void> {
	session?.close();
	session = undefined;
	const candidate = openSession(credential, (err) => {
		// Signed in, then refused (an expired token, a rotated key): back to the sign-in form, saying why.
		if (session !== candidate || !credential) return;
		storeCredential("");
		session.close();
		session = undefined;
		signIn(`signed out: ${errorText(err)}`);
	});
	try {
		await candidate.admin.topics({ limit: 1 });
	} catch (err) {
		storeCredential("");
		// No credential and a 401: a deployed Worker asking for one, not an error to show.
		const asked = !credential && (err as { status?: number }).status === 401;
		return signIn(asked ? undefined : errorText(err));
	}
	storeCredential(credential);
	session = candidate;
	showNav(true);
	who.textContent = credential ? "signed in" : "anonymous (local development)";
	signOut.hidden = !credential;
	route();
}

/** Topics and Tokens need a session: shown only with one (Demo always). */
function showNav(on: boolean): void {
	for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a[data-view]")) link.hidden = !on;
}

function signIn(error?: string): void {
	cleanup?.();
	cleanup = undefined;
	showNav(false);
	who.textContent = "signed out";
	signOut.hidden = true;
	const input = h("input", {
		id: "credential",
		type: "password",
		autocomplete: "current-password",
		required: true,
		spellcheck: false,
	});
	const form = h(
		"form",
		{ class: "card signin", "aria-labelledby": "signin-title" },
		h("h1", { id: "signin-title", tabindex: -1 }, "Sign in to the console"),
		h(
			"p",
			{ class: "muted" },
			"The admin key (the TIDINGS_ADMIN_KEY secret) or a token. It is kept in this tab's session storage only, and sent only to this origin's API.",
		),
		h("label", { for: "credential" }, "Admin key or token"),
		input,
		error ? h("p", { class: "notice error", role: "alert" }, error) : null,
		h("div", { class: "actions" }, h("button", { type: "submit", class: "btn primary" }, "Sign in")),
	);
	form.onsubmit = (e) => {
		e.preventDefault();
		void start(input.value.trim());
	};
	main.replaceChildren(form);
	input.focus();
}

signOut.onclick = () => {
	storeCredential("");
	session?.close();
	session = undefined;
	signIn();
};
window.addEventListener("hashchange", route);
void start(storedCredential());
