/**
 * The live tail of a topic, through the client library's subscription (it
 * reconnects and resumes from its last seq): a text filter over what is
 * shown, an attribute filter applied by the server, pause (messages are kept
 * and shown on resume) and a detail of the chosen message.
 * @module
 */

import type { Subscription } from "../client/subscription.js";
import type { Filter } from "../protocol/filter.js";
import type { Message } from "../protocol/message.js";
import { errorText, h, num } from "./dom.js";
import { messageRow } from "./message.js";
import type { Session } from "./session.js";

/** Messages kept on screen; older ones drop off the bottom. */
const KEEP = 500;

export function liveTail(
	session: Session,
	topic: string,
	onOpen: (m: Message, row: HTMLElement) => void,
	/** A message arrived: the topic's counts changed. */
	onMessage: () => void = () => {},
): { el: HTMLElement; stop: () => void } {
	const tidings = session.client();
	let sub: Subscription | undefined;
	let paused = false;
	let held: Message[] = [];
	const shown: Message[] = [];
	let text = "";

	const list = h("ol", { class: "messages", "aria-live": "off", reversed: true });
	const empty = h("p", { class: "muted empty-list" }, "Waiting for messages… publish one with the form.");
	const state = h("span", { class: "pill", role: "status" }, "connecting");
	const count = h("span", { class: "muted small" }, "");
	const search = h("input", {
		id: "tail-search",
		type: "search",
		placeholder: "text in data, key or attributes",
		autocomplete: "off",
		spellcheck: false,
	});
	const pause = h("button", { type: "button", class: "btn", "aria-pressed": "false" }, "Pause");
	const clear = h("button", { type: "button", class: "btn" }, "Clear");
	const from = h(
		"select",
		{ id: "tail-from" },
		h("option", { value: "latest" }, "new messages"),
		h("option", { value: "earliest" }, "every retained message"),
	);
	const attrFilter = h("input", {
		id: "tail-filter",
		placeholder: '{"kind":["result"]}',
		autocomplete: "off",
		spellcheck: false,
	});
	const filterError = h("p", { class: "field-error", role: "alert" });
	const filterForm = h(
		"form",
		{ class: "filter-form" },
		h("label", { for: "tail-filter" }, "Attribute filter (server side, JSON)"),
		h("div", { class: "row" }, attrFilter, h("button", { type: "submit", class: "btn" }, "Apply")),
		filterError,
	);

	const el = h(
		"section",
		{ class: "card tail", "aria-labelledby": "tail-title" },
		h("div", { class: "card-head" }, h("h2", { id: "tail-title" }, "Live tail"), state, count),
		h(
			"div",
			{ class: "toolbar" },
			h("div", { class: "inline grow" }, h("label", { for: "tail-search" }, "Show only messages with"), search),
			h("div", { class: "inline" }, h("label", { for: "tail-from" }, "Start with"), from),
			h("div", { class: "row buttons" }, pause, clear),
		),
		h("details", {}, h("summary", {}, "Filter by attributes"), filterForm),
		empty,
		list,
	);

	const offState = tidings.on("state", () => updateState());
	const offError = tidings.on("error", (e) => {
		state.textContent = `refused: ${errorText(e)}`;
		state.className = "pill bad";
	});

	function updateState(): void {
		const s = sub?.state ?? "closed";
		state.textContent = s === "open" ? (paused ? "paused" : "live") : s;
		state.className = `pill ${s === "open" ? (paused ? "warn" : "ok") : s === "closed" ? "bad" : ""}`;
	}

	function matches(m: Message): boolean {
		if (!text) return true;
		const hay = `${JSON.stringify(m.data)} ${m.key ?? ""} ${JSON.stringify(m.attributes ?? {})}`.toLowerCase();
		return hay.includes(text);
	}

	function show(m: Message): void {
		shown.unshift(m);
		if (shown.length > KEEP) shown.length = KEEP;
		if (matches(m)) {
			list.prepend(messageRow(m, onOpen));
			while (list.children.length > KEEP) list.lastElementChild?.remove();
		}
		renderCount();
	}

	function renderCount(): void {
		empty.hidden = shown.length > 0;
		const visible = list.children.length;
		count.textContent = `${num(visible)} shown${visible !== shown.length ? ` of ${num(shown.length)}` : ""}${held.length > 0 ? ` · ${num(held.length)} held while paused` : ""}`;
	}

	function redraw(): void {
		list.replaceChildren(...shown.filter(matches).map((m) => messageRow(m, onOpen)));
		renderCount();
	}

	function subscribe(filter?: Filter): void {
		void sub?.close();
		sub = tidings.subscribe(
			topic,
			(m) => {
				if (paused) {
					held.push(m);
					renderCount();
				} else show(m);
				updateState();
				onMessage();
			},
			{
				from: from.value as "latest" | "earliest",
				...(filter ? { filter } : {}),
				onGap: (g) => {
					count.textContent = `messages ${g.from}–${g.to} were removed by retention before they could be read`;
				},
			},
		);
		// The subscription's own state has no event: follow it for the pill.
		updateState();
	}

	let currentFilter: Filter | undefined;
	search.oninput = () => {
		text = search.value.trim().toLowerCase();
		redraw();
	};
	pause.onclick = () => {
		paused = !paused;
		pause.textContent = paused ? "Resume" : "Pause";
		pause.setAttribute("aria-pressed", String(paused));
		if (!paused) {
			for (const m of held) show(m);
			held = [];
		}
		updateState();
		renderCount();
	};
	clear.onclick = () => {
		shown.length = 0;
		held = [];
		redraw();
	};
	from.onchange = () => {
		shown.length = 0;
		redraw();
		subscribe(currentFilter);
	};
	filterForm.onsubmit = (e) => {
		e.preventDefault();
		filterError.textContent = "";
		const raw = attrFilter.value.trim();
		try {
			currentFilter = raw ? (JSON.parse(raw) as Filter) : undefined;
		} catch (err) {
			filterError.textContent = `not JSON: ${errorText(err)}`;
			return;
		}
		shown.length = 0;
		redraw();
		subscribe(currentFilter);
	};
	const poll = setInterval(updateState, 1000);

	subscribe();
	renderCount();
	return {
		el,
		stop() {
			clearInterval(poll);
			offState();
			offError();
			void sub?.close();
		},
	};
}
