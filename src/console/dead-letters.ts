/**
 * A group's dead letters: each with every failed attempt (when, the error,
 * who held the lease) and the message; redrive the chosen ones or all, or
 * purge them all, with confirmation.
 * @module
 */
import type { DeadLetter, GroupInfo } from "../protocol/message.js";
import { confirmAction } from "./dialog.js";
import { errorText, h, kids, notice, num, preview, stamp, topicHref } from "./dom.js";
import type { Cleanup } from "./main.js";
import { messageDetail } from "./message.js";
import { poller } from "./poller.js";
import type { Session } from "./session.js";

const PAGE = 50;
const POLL_MS = 3000;

export function deadLettersView(root: HTMLElement, session: Session, topic: string, group: string): Cleanup {
	let stopped = false;
	let letters: DeadLetter[] = [];
	let total = 0;
	let limit = PAGE;
	/** Drawn at least once: the first answer (and the one after an action) is drawn even when empty. */
	let drawn = false;
	const selected = new Set<number>();

	const counts = h("dl", { class: "stats", "aria-label": "group counts" });
	const status = h("div", { class: "status" });
	const redriveSelected = h("button", { type: "button", class: "btn primary", disabled: true }, "Redrive selected");
	const redriveAll = h("button", { type: "button", class: "btn" }, "Redrive all");
	const purge = h("button", { type: "button", class: "btn danger" }, "Purge all");
	const selectAll = h("input", { id: "dlq-select-all", type: "checkbox" });
	const list = h("ol", { class: "letters" });
	const more = h("div", { class: "pager" });
	const title = h("h1", { tabindex: -1 }, "Dead letters of ", h("span", { class: "mono" }, group));

	root.append(
		h(
			"p",
			{ class: "crumbs" },
			h("a", { href: "#/" }, "Topics"),
			" / ",
			h("a", { href: topicHref(topic, "groups"), class: "mono" }, topic),
			" / ",
		),
		h("div", { class: "view-head" }, title),
		counts,
		h(
			"div",
			{ class: "toolbar sticky" },
			h("div", { class: "check" }, selectAll, h("label", { for: "dlq-select-all" }, "Select all shown")),
			h("div", { class: "row buttons" }, redriveSelected, redriveAll, purge),
		),
		status,
		list,
		more,
	);

	async function poll(): Promise<void> {
		try {
			const [page, info] = await Promise.all([
				session.admin.deadLetters(topic, group, { limit }),
				session.admin.group(topic, group),
			]);
			if (stopped) return;
			renderCounts(info);
			total = page.count;
			// Redraw only when the list changed, so focus and open details stay put.
			const changed =
				!drawn ||
				page.messages.length !== letters.length ||
				page.messages.some((d, i) => d.seq !== letters[i]?.seq || d.attempts !== letters[i]?.attempts);
			letters = page.messages;
			for (const seq of selected) if (!letters.some((d) => d.seq === seq)) selected.delete(seq);
			if (changed) render();
			drawn = true;
			updateButtons();
		} catch (err) {
			if (stopped) return;
			status.replaceChildren(notice("error", `could not read dead letters: ${errorText(err)}`));
		}
	}

	function renderCounts(g: GroupInfo): void {
		const item = (label: string, value: number) => h("div", {}, h("dt", {}, label), h("dd", {}, num(value)));
		counts.replaceChildren(
			item("dead", g.counts.dead),
			item("pending", g.counts.pending),
			item("in flight", g.counts.in_flight),
			item("members", g.members),
			item("acked", g.counts.acked),
			item("max retries", g.settings.max_retries),
		);
	}

	function render(): void {
		if (letters.length === 0) {
			list.replaceChildren(
				h(
					"li",
					{ class: "card empty" },
					h("p", {}, "No dead letters. Every message of this group was acknowledged or is still being tried."),
				),
			);
			more.replaceChildren();
			return;
		}
		list.replaceChildren(...letters.map(letter));
		more.replaceChildren(
			...kids([
				total > letters.length
					? h(
							"button",
							{
								type: "button",
								class: "btn",
								onclick: () => {
									limit += PAGE;
									loop.now();
								},
							},
							`Show more (${num(total - letters.length)} not shown)`,
						)
					: null,
			]),
		);
	}

	function letter(d: DeadLetter): HTMLLIElement {
		const id = `dl-${d.seq}`;
		const box = h("input", { id, type: "checkbox", checked: selected.has(d.seq), "data-seq": d.seq });
		box.onchange = () => {
			if (box.checked) selected.add(d.seq);
			else selected.delete(d.seq);
			updateButtons();
		};
		const detail = h("div", { class: "letter-message" });
		const show = h("button", { type: "button", class: "btn small", "aria-expanded": "false" }, "Message");
		show.onclick = () => {
			const open = show.getAttribute("aria-expanded") === "true";
			show.setAttribute("aria-expanded", String(!open));
			detail.replaceChildren(...(open ? [] : [messageDetail(d.message)]));
		};
		return h(
			"li",
			{ class: "card letter", "data-seq": d.seq },
			h(
				"div",
				{ class: "letter-head" },
				h(
					"div",
					{ class: "check" },
					box,
					h(
						"label",
						{ for: id },
						h("span", { class: "seq" }, `#${d.seq}`),
						" ",
						h("code", { class: "data" }, preview(d.message.data, 80)),
					),
				),
				h(
					"span",
					{ class: "muted small" },
					`${d.attempts} attempt${d.attempts === 1 ? "" : "s"} · dead ${stamp(d.dead_at)}`,
				),
				show,
			),
			h(
				"table",
				{ class: "attempts" },
				h("caption", { class: "sr-only" }, `attempts of message ${d.seq}`),
				h(
					"thead",
					{},
					h(
						"tr",
						{},
						h("th", { scope: "col" }, "Attempt"),
						h("th", { scope: "col" }, "Ended"),
						h("th", { scope: "col" }, "Error"),
						h("th", { scope: "col", class: "opt" }, "By"),
					),
				),
				h(
					"tbody",
					{},
					...(d.errors.length > 0
						? d.errors.map((a) =>
								h(
									"tr",
									{},
									h("td", { class: "n" }, String(a.attempt)),
									h("td", { class: "when", title: new Date(a.at).toISOString() }, stamp(a.at)),
									h("td", { class: "err" }, a.error ?? h("span", { class: "muted" }, "no error given")),
									h("td", { class: "opt mono small" }, a.by ?? "—"),
								),
							)
						: [h("tr", {}, h("td", { colspan: 4, class: "err" }, d.last_error ?? "no error given"))]),
				),
			),
			detail,
		);
	}

	function updateButtons(): void {
		redriveSelected.disabled = selected.size === 0;
		redriveSelected.textContent = selected.size > 0 ? `Redrive selected (${selected.size})` : "Redrive selected";
		redriveAll.disabled = purge.disabled = total === 0;
		selectAll.checked = letters.length > 0 && letters.every((d) => selected.has(d.seq));
		selectAll.disabled = letters.length === 0;
	}

	selectAll.onchange = () => {
		for (const d of letters) {
			if (selectAll.checked) selected.add(d.seq);
			else selected.delete(d.seq);
		}
		for (const box of list.querySelectorAll<HTMLInputElement>("input[type=checkbox]")) box.checked = selectAll.checked;
		updateButtons();
	};

	async function act(what: () => Promise<string>): Promise<void> {
		try {
			status.replaceChildren(notice("ok", await what()));
			selected.clear();
			drawn = false;
			loop.now();
		} catch (err) {
			status.replaceChildren(notice("error", errorText(err)));
		}
	}

	redriveSelected.onclick = () =>
		act(async () => {
			const r = await session.admin.redrive(topic, group, [...selected]);
			return `Redrove ${num(r.redriven)}: they are delivered again, attempts from 1.`;
		});
	redriveAll.onclick = async () => {
		if (
			!(await confirmAction(
				`Redrive all ${num(total)}?`,
				"Every dead letter of this group goes back to the group and is delivered again, attempts from 1.",
				"Redrive all",
				false,
			))
		)
			return redriveAll.focus();
		await act(async () => `Redrove ${num((await session.admin.redrive(topic, group)).redriven)}.`);
	};
	purge.onclick = async () => {
		if (
			!(await confirmAction(
				`Purge ${num(total)} dead letters?`,
				"They are removed for good; they cannot be redriven afterwards.",
				"Purge",
			))
		)
			return purge.focus();
		await act(async () => `Purged ${num((await session.admin.purgeDeadLetters(topic, group)).purged)}.`);
	};

	const loop = poller(poll, POLL_MS);
	loop.now();
	return () => {
		stopped = true;
		loop.stop();
	};
}
