/**
 * The topic list: every topic the catalog knows (a few seconds behind the
 * topics themselves), polled every 2 s, with a rate sparkline from the
 * change of each topic's head seq between polls.
 * @module
 */
import type { TopicList } from "../protocol/message.js";
import { ago, errorText, h, kids, notice, num, topicHref } from "./dom.js";
import type { Cleanup } from "./main.js";
import { poller } from "./poller.js";
import type { Session } from "./session.js";
import { formatRate, rate, rates, sample, sparkline } from "./sparkline.js";

const POLL_MS = 2000;
const PAGE = 200;
export const FLASH_KEY = "tidings.console.flash";

export function topicsView(root: HTMLElement, session: Session): Cleanup {
	let prefix = "";
	let after = "";
	let stopped = false;

	const filter = h("input", {
		id: "prefix",
		type: "search",
		placeholder: "jobs.",
		spellcheck: false,
		autocomplete: "off",
	});
	const openName = h("input", {
		id: "open-topic",
		placeholder: "orders.eu",
		spellcheck: false,
		autocomplete: "off",
		required: true,
	});
	const openForm = h(
		"form",
		{ class: "inline" },
		h("label", { for: "open-topic" }, "Open a topic by name"),
		h("div", { class: "row" }, openName, h("button", { type: "submit", class: "btn" }, "Open")),
	);
	openForm.onsubmit = (e) => {
		e.preventDefault();
		location.hash = topicHref(openName.value.trim());
	};
	const status = h("p", { class: "muted small", role: "status" }, "loading…");
	// What the view before this one did (a topic deleted), said once.
	const flash = sessionStorage.getItem(FLASH_KEY);
	sessionStorage.removeItem(FLASH_KEY);
	const body = h("div", { class: "topics" });
	const pager = h("div", { class: "pager" });

	root.append(
		...kids([
			h("div", { class: "view-head" }, h("h1", { tabindex: -1 }, "Topics"), status),
			h(
				"div",
				{ class: "toolbar" },
				h("div", { class: "inline" }, h("label", { for: "prefix" }, "Filter by prefix"), filter),
				openForm,
			),
			flash ? notice("ok", flash) : null,
			body,
			pager,
		]),
	);
	filter.oninput = () => {
		prefix = filter.value.trim();
		after = "";
		loop.now();
	};

	async function poll(): Promise<void> {
		try {
			const list = await session.admin.topics({ prefix, after, limit: PAGE });
			if (stopped) return;
			const now = Date.now();
			for (const t of list.topics) sample(t.topic, t.head_seq, now);
			render(list);
			status.textContent = `${list.topics.length === 0 ? "no topics" : `${num(list.topics.length)} topic${list.topics.length === 1 ? "" : "s"}`} · updated every ${POLL_MS / 1000} s · the list is a few seconds behind the topics`;
		} catch (err) {
			if (stopped) return;
			status.replaceChildren(notice("error", `could not list topics: ${errorText(err)}`));
		}
	}

	function render(list: TopicList): void {
		if (list.topics.length === 0) {
			body.replaceChildren(
				h(
					"div",
					{ class: "card empty" },
					h("p", {}, prefix ? `No topic starts with “${prefix}”.` : "No topics yet."),
					h(
						"p",
						{ class: "muted" },
						"A topic exists from its first publish, group or settings. Open one by name above, or publish with curl or the client.",
					),
				),
			);
		} else {
			const rows = list.topics.map((t) => {
				const r = rate(t.topic);
				return h(
					"tr",
					{ "data-topic": t.topic },
					h("th", { scope: "row" }, h("a", { href: topicHref(t.topic) }, ...breakable(t.topic))),
					h(
						"td",
						{ class: "rate" },
						sparkline(rates(t.topic), `publish rate of ${t.topic}`),
						h("span", {}, formatRate(r)),
					),
					h("td", { class: "n" }, num(t.head_seq)),
					h("td", { class: "n opt" }, num(t.retained)),
					h("td", { class: "n opt" }, num(t.sockets)),
					h("td", { class: "n opt" }, num(t.groups)),
					h(
						"td",
						{ class: "n" },
						t.dead_letters > 0
							? h("a", { class: "badge bad", href: topicHref(t.topic, "groups") }, num(t.dead_letters))
							: h("span", { class: "muted" }, "0"),
					),
					h("td", { class: "opt when" }, ago(t.last_publish_at)),
				);
			});
			body.replaceChildren(
				h(
					"div",
					{ class: "table-wrap" },
					h(
						"table",
						{ class: "grid" },
						h("caption", { class: "sr-only" }, "Topics, with publish rate and counts"),
						h(
							"thead",
							{},
							h(
								"tr",
								{},
								h("th", { scope: "col" }, "Topic"),
								h("th", { scope: "col" }, "Rate"),
								h("th", { scope: "col", class: "n" }, "Head seq"),
								h("th", { scope: "col", class: "n opt" }, "Retained"),
								h("th", { scope: "col", class: "n opt" }, "Sockets"),
								h("th", { scope: "col", class: "n opt" }, "Groups"),
								h("th", { scope: "col", class: "n" }, "Dead"),
								h("th", { scope: "col", class: "opt" }, "Last publish"),
							),
						),
						h("tbody", {}, ...rows),
					),
				),
			);
		}
		pager.replaceChildren(
			...kids([
				after ? h("button", { type: "button", class: "btn", onclick: () => page("") }, "First page") : null,
				list.next_after
					? h("button", { type: "button", class: "btn", onclick: () => page(list.next_after ?? "") }, "Next page")
					: null,
			]),
		);
	}

	function page(to: string): void {
		after = to;
		loop.now();
	}

	const loop = poller(poll, POLL_MS);
	loop.now();
	return () => {
		stopped = true;
		loop.stop();
	};
}

/** A topic name that wraps at its dots on a narrow screen, not in the middle of a segment. */
function breakable(topic: string): (string | HTMLElement)[] {
	return topic.split(".").flatMap((part, i) => (i === 0 ? [part] : [".", h("wbr"), part]));
}
