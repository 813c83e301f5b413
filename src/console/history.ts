/**
 * History pages: the retained log read forward from `after`, newest page
 * first, with older and newer pages.
 * @module
 */
import type { HistoryPage, Message } from "../protocol/message.js";
import { errorText, h, notice, num } from "./dom.js";
import { messageRow } from "./message.js";
import type { Session } from "./session.js";

const PAGE = 50;

export function historyPanel(
	session: Session,
	topic: string,
	onOpen: (m: Message, row: HTMLElement) => void,
): HTMLElement {
	const list = h("ol", { class: "messages" });
	const info = h("p", { class: "muted small", role: "status" }, "loading…");
	const older = h("button", { type: "button", class: "btn" }, "← Older");
	const newer = h("button", { type: "button", class: "btn" }, "Newer →");
	const newest = h("button", { type: "button", class: "btn" }, "Newest");
	const el = h(
		"section",
		{ class: "card history", "aria-labelledby": "history-title" },
		h("div", { class: "card-head" }, h("h2", { id: "history-title" }, "History"), info),
		h("div", { class: "pager" }, older, newer, newest),
		list,
	);
	let after = -1;
	let page: HistoryPage | undefined;

	async function load(from: number | "newest"): Promise<void> {
		try {
			// The newest page: read the head first, then the page that ends there.
			if (from === "newest") {
				const head = await session.admin.history(topic, { limit: 1, after: Number.MAX_SAFE_INTEGER - 1 });
				from = Math.max(head.first_seq - 1, head.head_seq - PAGE);
			}
			page = await session.admin.history(topic, { after: from, limit: PAGE });
			after = from;
		} catch (err) {
			info.replaceChildren(notice("error", `could not read history: ${errorText(err)}`));
			return;
		}
		const p = page;
		// Newest first, as in the tail.
		list.replaceChildren(...[...p.messages].reverse().map((m) => messageRow(m, onOpen)));
		const first = p.messages[0]?.seq;
		const last = p.messages[p.messages.length - 1]?.seq;
		info.textContent =
			first === undefined
				? p.head_seq === 0
					? "nothing published yet"
					: "nothing retained here"
				: `#${num(first)}–#${num(last ?? first)} of ${num(p.first_seq)}–${num(p.head_seq)} retained`;
		older.disabled = after <= p.first_seq - 1;
		newer.disabled = (last ?? after) >= p.head_seq;
	}

	older.onclick = () => void load(Math.max((page?.first_seq ?? 1) - 1, after - PAGE));
	newer.onclick = () => void load(page?.next_after ?? after + PAGE);
	newest.onclick = () => void load("newest");
	void load("newest");
	return el;
}
