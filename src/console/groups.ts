/**
 * A topic's consumer groups with their counts (from the topic's stats, which
 * the topic view polls), each linking to its dead letters, and a form that
 * creates a group.
 * @module
 */
import type { GroupInfo, TopicStats } from "../protocol/message.js";
import { errorText, groupHref, h, notice, num } from "./dom.js";
import type { Session } from "./session.js";

export function groupsPanel(
	session: Session,
	topic: string,
	refresh: () => void,
): { el: HTMLElement; update: (s: TopicStats) => void } {
	const body = h("div", {}, h("p", { class: "muted" }, "loading…"));
	const name = h("input", {
		id: "group-name",
		required: true,
		pattern: "[A-Za-z0-9_\\-]+",
		placeholder: "mailer",
		autocomplete: "off",
		spellcheck: false,
	});
	const retries = h("input", { id: "group-retries", type: "number", min: 0, max: 100, value: 5, inputmode: "numeric" });
	const start = h(
		"select",
		{ id: "group-start" },
		h("option", { value: "earliest" }, "every retained message"),
		h("option", { value: "latest" }, "new messages only"),
	);
	const result = h("div", {});
	const form = h(
		"form",
		{ class: "card", "aria-labelledby": "group-form-title" },
		h("h2", { id: "group-form-title" }, "Create or change a group"),
		h(
			"div",
			{ class: "three" },
			h("div", {}, h("label", { for: "group-name" }, "Name"), name),
			h("div", {}, h("label", { for: "group-retries" }, "Max retries"), retries),
			h("div", {}, h("label", { for: "group-start" }, "Starts with"), start),
		),
		h("div", { class: "actions" }, h("button", { type: "submit", class: "btn primary" }, "Save group")),
		result,
	);
	form.onsubmit = async (e) => {
		e.preventDefault();
		try {
			const g = await session.admin.putGroup(topic, name.value.trim(), {
				max_retries: Number(retries.value),
				start: start.value as "earliest" | "latest",
			});
			result.replaceChildren(notice("ok", `${g.created ? "created" : "changed"} group ${g.group}`));
			refresh();
		} catch (err) {
			result.replaceChildren(notice("error", `not saved: ${errorText(err)}`));
		}
	};

	function update(s: TopicStats): void {
		if (s.groups.length === 0) {
			body.replaceChildren(h("p", { class: "muted" }, "No consumer groups on this topic."));
			return;
		}
		body.replaceChildren(
			h(
				"div",
				{ class: "table-wrap" },
				h(
					"table",
					{ class: "grid groups" },
					h("caption", { class: "sr-only" }, "Consumer groups and their counts"),
					h(
						"thead",
						{},
						h(
							"tr",
							{},
							h("th", { scope: "col" }, "Group"),
							h("th", { scope: "col", class: "n" }, "Pending"),
							h("th", { scope: "col", class: "n" }, "In flight"),
							h("th", { scope: "col", class: "n" }, "Dead"),
							h("th", { scope: "col", class: "n" }, "Lag"),
							h("th", { scope: "col", class: "n" }, "Members"),
							h("th", { scope: "col", class: "n opt" }, "Acked"),
							h("th", { scope: "col", class: "n opt" }, "Retried"),
							h("th", { scope: "col", class: "opt" }, "Settings"),
						),
					),
					h("tbody", {}, ...s.groups.map((g) => row(g, s.head_seq))),
				),
			),
		);
	}

	function row(g: GroupInfo, head: number): HTMLTableRowElement {
		return h(
			"tr",
			{ "data-group": g.group },
			h("th", { scope: "row" }, h("a", { href: groupHref(topic, g.group) }, g.group)),
			h("td", { class: "n" }, num(g.counts.pending)),
			h("td", { class: "n" }, num(g.counts.in_flight)),
			h(
				"td",
				{ class: "n" },
				g.counts.dead > 0
					? h(
							"a",
							{ class: "badge bad", href: groupHref(topic, g.group), "aria-label": `${g.counts.dead} dead letters` },
							num(g.counts.dead),
						)
					: h("span", { class: "muted" }, "0"),
			),
			// Lag: messages in the log the group has not taken yet.
			h("td", { class: "n" }, num(Math.max(0, head - g.cursor))),
			h("td", { class: "n" }, num(g.members)),
			h("td", { class: "n opt" }, num(g.counts.acked)),
			h("td", { class: "n opt" }, num(g.counts.retried)),
			h(
				"td",
				{ class: "opt small muted" },
				`retries ${g.settings.max_retries}, ${g.settings.backoff} ${g.settings.retry_delay_ms} ms, start ${g.settings.start}${g.settings.push ? ", push" : ""}${g.settings.filter ? ", filtered" : ""}`,
			),
		);
	}

	const el = h(
		"div",
		{ class: "stack" },
		h(
			"section",
			{ class: "card", "aria-labelledby": "groups-title" },
			h("h2", { id: "groups-title" }, "Consumer groups"),
			body,
		),
		form,
	);
	return { el, update };
}
