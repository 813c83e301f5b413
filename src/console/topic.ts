/**
 * One topic: its counts (polled), and tabs: the live tail with the publish
 * form, history pages, and the consumer groups. Deleting it is here too.
 * @module
 */
import type { Message, TopicStats } from "../protocol/message.js";
import { confirmAction } from "./dialog.js";
import { errorText, h, notice, num, topicHref } from "./dom.js";
import { groupsPanel } from "./groups.js";
import { historyPanel } from "./history.js";
import type { Cleanup } from "./main.js";
import { messageDetail } from "./message.js";
import { poller } from "./poller.js";
import { publishForm } from "./publish.js";
import type { Session } from "./session.js";
import { liveTail } from "./tail.js";
import { FLASH_KEY } from "./topics.js";

const POLL_MS = 3000;
const TABS = [
	["live", "Live"],
	["history", "History"],
	["groups", "Groups"],
] as const;

export function topicView(root: HTMLElement, session: Session, topic: string, tab: string): Cleanup {
	let stopped = false;
	const stops: Array<() => void> = [];
	const stats = h("dl", { class: "stats", "aria-label": "counts" });
	const status = h("div", {});
	const del = h("button", { type: "button", class: "btn danger" }, "Delete topic");
	const nav = h(
		"nav",
		{ class: "tabs", "aria-label": "topic views" },
		...TABS.map(([id, label]) =>
			h("a", { href: topicHref(topic, id), ...(id === tab ? { "aria-current": "page" } : {}) }, label),
		),
	);
	const panel = h("div", { class: "panel" });
	root.append(
		h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Topics"), " / "),
		h("div", { class: "view-head" }, h("h1", { tabindex: -1, class: "mono" }, topic), del),
		stats,
		status,
		nav,
		panel,
	);

	let stat: TopicStats | undefined;
	const onStats: Array<(s: TopicStats) => void> = [];

	async function poll(): Promise<void> {
		try {
			stat = await session.admin.topic(topic);
			if (stopped) return;
			status.replaceChildren();
			renderStats(stat);
			for (const fn of onStats) fn(stat);
		} catch (err) {
			if (stopped) return;
			const missing = (err as { status?: number }).status === 404;
			status.replaceChildren(
				notice(
					missing ? "info" : "error",
					missing
						? "This topic does not exist yet: it is created by its first publish, group or settings (or it was deleted)."
						: `could not read the topic: ${errorText(err)}`,
				),
			);
			stats.replaceChildren();
		}
	}

	// Counts again every POLL_MS, and shortly after each message the tail receives.
	const loop = poller(poll, POLL_MS);

	function renderStats(s: TopicStats): void {
		const item = (label: string, value: number) => h("div", {}, h("dt", {}, label), h("dd", {}, num(value)));
		const dead = s.groups.reduce((n, g) => n + g.counts.dead, 0);
		stats.replaceChildren(
			item("head seq", s.head_seq),
			item("retained", s.retained),
			item("first seq", s.first_seq),
			item("subscribers", s.subscribers),
			item("delayed", s.delayed),
			item("groups", s.groups.length),
			item("dead letters", dead),
		);
	}

	del.onclick = async () => {
		const ok = await confirmAction(
			`Delete ${topic}?`,
			"Its messages, groups, dead letters and keys are removed, and its sockets closed (4410). The name can be used again, starting from seq 1.",
			"Delete topic",
		);
		if (!ok) return del.focus();
		try {
			const r = await session.admin.deleteTopic(topic);
			sessionStorage.setItem(FLASH_KEY, `Deleted ${topic} (${num(r.messages)} messages).`);
			location.hash = "#/";
		} catch (err) {
			status.replaceChildren(notice("error", `not deleted: ${errorText(err)}`));
		}
	};

	if (tab === "history" || tab === "live") {
		const side = h("div", { class: "side" });
		let selected: HTMLElement | undefined;
		const open = (m: Message, row: HTMLElement) => {
			selected?.classList.remove("selected");
			selected = row;
			row.classList.add("selected");
			const close = () => {
				detail.remove();
				row.classList.remove("selected");
				row.querySelector("button")?.focus();
			};
			const detail = messageDetail(m, close);
			detail.addEventListener("keydown", (e) => {
				if (e.key === "Escape") close();
			});
			side.querySelector(".detail")?.remove();
			side.prepend(detail);
			detail.querySelector<HTMLElement>("h2")?.focus();
		};
		if (tab === "live") {
			const tail = liveTail(session, topic, open, () => loop.soon());
			stops.push(tail.stop);
			side.append(publishForm(session, topic));
			panel.append(h("div", { class: "split" }, tail.el, side));
		} else {
			const history = historyPanel(session, topic, open);
			panel.append(h("div", { class: "split" }, history, side));
		}
	} else {
		const groups = groupsPanel(session, topic, () => loop.now());
		onStats.push(groups.update);
		panel.append(groups.el);
	}

	loop.now();
	return () => {
		stopped = true;
		loop.stop();
		for (const s of stops) s();
	};
}
