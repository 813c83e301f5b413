/**
 * A message in a list row and in full: seq, time, key, attributes, trace
 * context and data, as stored.
 * @module
 */
import type { Message } from "../protocol/message.js";
import { clock, h, preview, stamp } from "./dom.js";

/** A row of the tail or the history: a button that shows the message in `detail`. */
export function messageRow(m: Message, onOpen: (m: Message, row: HTMLElement) => void): HTMLLIElement {
	const attrs = Object.entries(m.attributes ?? {});
	const button = h(
		"button",
		{ type: "button", class: "msg", "aria-label": `message ${m.seq}: show details` },
		h("span", { class: "seq" }, `#${m.seq}`),
		h("time", { class: "ts", datetime: new Date(m.ts).toISOString() }, clock(m.ts)),
		h("code", { class: "data" }, preview(m.data)),
		attrs.length > 0 || m.key
			? h(
					"span",
					{ class: "tags" },
					...attrs.slice(0, 3).map(([k, v]) => h("span", { class: "tag" }, `${k}=${String(v)}`)),
					attrs.length > 3 ? h("span", { class: "tag" }, `+${attrs.length - 3}`) : null,
				)
			: null,
	);
	const li = h("li", { "data-seq": m.seq }, button);
	button.onclick = () => onOpen(m, li);
	return li;
}

export function messageDetail(m: Message, onClose?: () => void): HTMLElement {
	const field = (name: string, value: string | undefined, mono = true) =>
		value === undefined ? null : [h("dt", {}, name), h("dd", { class: mono ? "mono" : "" }, value)];
	const attrs = Object.entries(m.attributes ?? {});
	return h(
		"section",
		{ class: "card detail", "aria-labelledby": "detail-title" },
		h(
			"div",
			{ class: "card-head" },
			h("h2", { id: "detail-title", tabindex: -1 }, `Message #${m.seq}`),
			onClose ? h("button", { type: "button", class: "btn small", onclick: onClose }, "Close") : null,
		),
		h(
			"dl",
			{ class: "fields" },
			...(field("id", m.id) ?? []),
			...(field("time", `${stamp(m.ts)}.${String(m.ts % 1000).padStart(3, "0")}`, false) ?? []),
			...(field("key", m.key ?? "—") ?? []),
			...(field("traceparent", m.traceparent ?? "—") ?? []),
			...(field("baggage", m.baggage ?? "—") ?? []),
		),
		h("h3", {}, "Attributes"),
		attrs.length === 0
			? h("p", { class: "muted" }, "none")
			: h(
					"table",
					{ class: "kv" },
					h(
						"tbody",
						{},
						...attrs.map(([k, v]) =>
							h("tr", {}, h("th", { scope: "row" }, k), h("td", { class: "mono" }, JSON.stringify(v))),
						),
					),
				),
		h("h3", {}, "Data"),
		h("pre", { class: "json" }, JSON.stringify(m.data, null, 2)),
	);
}
