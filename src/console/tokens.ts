/**
 * Token minting (the admin key only): rights per topic pattern and an
 * expiry. The token is shown once, to copy; the console keeps nothing.
 * @module
 */
import { type Grants, isPattern, RIGHTS, type Right } from "../protocol/rights.js";
import { errorText, h, notice, stamp } from "./dom.js";
import type { Cleanup } from "./main.js";
import type { Session } from "./session.js";

const EXPIRIES = [
	[900, "15 minutes"],
	[3600, "1 hour"],
	[86400, "1 day"],
	[604800, "7 days"],
	[2592000, "30 days"],
] as const;

let rowIds = 0;

export function tokensView(root: HTMLElement, session: Session): Cleanup {
	const grants = h("div", { class: "grants" });
	const ttl = h(
		"select",
		{ id: "token-ttl" },
		...EXPIRIES.map(([s, label]) => h("option", { value: s, selected: s === 3600 }, label)),
	);
	const sub = h("input", { id: "token-sub", placeholder: "user-42", autocomplete: "off", spellcheck: false });
	const result = h("div", { class: "result" });
	const add = h("button", { type: "button", class: "btn small" }, "Add a pattern");
	const form = h(
		"form",
		{ class: "card", "aria-labelledby": "mint-title" },
		h("h2", { id: "mint-title" }, "Mint a token"),
		h(
			"p",
			{ class: "muted" },
			"Rights per topic pattern: ",
			h("code", {}, "*"),
			" is one segment, a last ",
			h("code", {}, ">"),
			" one or more (",
			h("code", {}, "jobs.*"),
			" covers jobs.42; ",
			h("code", {}, "jobs.>"),
			" also jobs.42.log). Minting needs the admin key and TIDINGS_TOKEN_SECRET.",
		),
		grants,
		h("div", { class: "actions left" }, add),
		h(
			"div",
			{ class: "two" },
			h("div", {}, h("label", { for: "token-ttl" }, "Expires after"), ttl),
			h("div", {}, h("label", { for: "token-sub" }, "Subject (optional, shown in logs and errors)"), sub),
		),
		h("div", { class: "actions" }, h("button", { type: "submit", class: "btn primary" }, "Mint token")),
		result,
	);

	function grantRow(pattern = "", rights: Right[] = ["subscribe"]): HTMLElement {
		const n = ++rowIds;
		const input = h("input", {
			id: `grant-${n}`,
			class: "pattern mono",
			value: pattern,
			placeholder: "jobs.>",
			required: true,
			autocomplete: "off",
			spellcheck: false,
		});
		const remove = h("button", { type: "button", class: "btn small", "aria-label": "remove this pattern" }, "Remove");
		const row = h(
			"fieldset",
			{ class: "grant" },
			h("legend", { class: "sr-only" }, "Pattern and rights"),
			h("div", { class: "pattern-cell" }, h("label", { for: `grant-${n}` }, "Topic pattern"), input),
			h(
				"div",
				{ class: "rights", role: "group", "aria-label": "rights" },
				...RIGHTS.map((r) =>
					h(
						"label",
						{ class: "check" },
						h("input", { type: "checkbox", value: r, checked: rights.includes(r) }),
						` ${r}`,
					),
				),
			),
			remove,
		);
		remove.onclick = () => {
			row.remove();
			add.focus();
		};
		return row;
	}

	add.onclick = () => {
		const row = grantRow();
		grants.append(row);
		row.querySelector("input")?.focus();
	};
	grants.append(grantRow("", ["publish", "subscribe"]));

	form.onsubmit = async (e) => {
		e.preventDefault();
		const topics: Grants = {};
		for (const row of grants.querySelectorAll("fieldset")) {
			const pattern = row.querySelector<HTMLInputElement>("input.pattern")?.value.trim() ?? "";
			if (!isPattern(pattern)) {
				result.replaceChildren(
					notice("error", `“${pattern}” is not a topic pattern (segments of A-Z a-z 0-9 _ -, or * and a last >)`),
				);
				return;
			}
			const rights = [...row.querySelectorAll<HTMLInputElement>(".rights input:checked")].map((b) => b.value as Right);
			if (rights.length === 0) {
				result.replaceChildren(notice("error", `choose at least one right for ${pattern}`));
				return;
			}
			topics[pattern] = rights;
		}
		try {
			const minted = await session.admin.mintToken({
				topics,
				ttl_s: Number(ttl.value),
				...(sub.value.trim() ? { sub: sub.value.trim() } : {}),
			});
			const out = h("textarea", { id: "token-out", readonly: true, rows: 3, class: "mono" }, minted.token);
			const copy = h("button", { type: "button", class: "btn" }, "Copy");
			copy.onclick = async () => {
				await navigator.clipboard.writeText(minted.token).then(
					() => (copy.textContent = "Copied"),
					() => {
						out.select();
						copy.textContent = "Press Ctrl-C";
					},
				);
			};
			result.replaceChildren(
				notice("ok", `Minted; expires ${stamp(minted.expires_at)}. It is not shown again.`),
				h("label", { for: "token-out" }, "Token"),
				out,
				h("div", { class: "actions left" }, copy),
			);
		} catch (err) {
			result.replaceChildren(notice("error", `not minted: ${errorText(err)}`));
		}
	};

	root.append(h("div", { class: "view-head" }, h("h1", { tabindex: -1 }, "Tokens")), form);
	return () => {};
}
