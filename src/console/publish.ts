/**
 * The publish form: data (JSON, or text), attributes, key, delay and trace
 * context, sent with the client library (through its outbox).
 * @module
 */
import type { Attributes } from "../protocol/message.js";
import { errorText, h, notice } from "./dom.js";
import type { Session } from "./session.js";

export function publishForm(session: Session, topic: string): HTMLElement {
	const data = h("textarea", { id: "pub-data", rows: 4, spellcheck: false }, '{"hello":"world"}');
	const attrs = h("input", { id: "pub-attrs", placeholder: '{"kind":"test"}', autocomplete: "off", spellcheck: false });
	const key = h("input", {
		id: "pub-key",
		placeholder: "optional idempotency key",
		autocomplete: "off",
		spellcheck: false,
	});
	const delay = h("input", {
		id: "pub-delay",
		type: "number",
		min: 0,
		step: 100,
		placeholder: "0",
		inputmode: "numeric",
	});
	const trace = h("input", { id: "pub-trace", placeholder: "00-…-…-01", autocomplete: "off", spellcheck: false });
	const result = h("div", { class: "result" });
	const submit = h("button", { type: "submit", class: "btn primary" }, "Publish");
	const form = h(
		"form",
		{ class: "card publish", "aria-labelledby": "pub-title" },
		h("h2", { id: "pub-title" }, "Publish"),
		h("label", { for: "pub-data" }, "Data (JSON; anything else is sent as text)"),
		data,
		h("label", { for: "pub-attrs" }, "Attributes (JSON object)"),
		attrs,
		h(
			"div",
			{ class: "two" },
			h("div", {}, h("label", { for: "pub-key" }, "Key"), key),
			h("div", {}, h("label", { for: "pub-delay" }, "Delay (ms)"), delay),
		),
		h("details", {}, h("summary", {}, "Trace context"), h("label", { for: "pub-trace" }, "traceparent"), trace),
		h("div", { class: "actions" }, submit),
		result,
	);
	form.onsubmit = async (e) => {
		e.preventDefault();
		let value: unknown;
		try {
			value = JSON.parse(data.value);
		} catch {
			value = data.value;
		}
		let attributes: Attributes | undefined;
		try {
			attributes = attrs.value.trim() ? (JSON.parse(attrs.value) as Attributes) : undefined;
		} catch (err) {
			result.replaceChildren(notice("error", `attributes are not JSON: ${errorText(err)}`));
			attrs.focus();
			return;
		}
		submit.disabled = true;
		try {
			const r = await session.client().publish(topic, value, {
				...(attributes ? { attributes } : {}),
				...(key.value.trim() ? { key: key.value.trim() } : {}),
				...(delay.value ? { delayMs: Number(delay.value) } : {}),
				...(trace.value.trim() ? { traceparent: trace.value.trim() } : {}),
			});
			const text =
				"queued" in r
					? "offline: queued, sent when the connection is back"
					: "seq" in r
						? `stored as #${r.seq}${r.duplicate ? " (a duplicate key: nothing new stored)" : ""}`
						: `delayed: joins the log at ${new Date(r.deliver_at).toLocaleTimeString()}`;
			result.replaceChildren(notice("queued" in r ? "info" : "ok", text));
		} catch (err) {
			result.replaceChildren(notice("error", `not published: ${errorText(err)}`));
		} finally {
			submit.disabled = false;
		}
	};
	return form;
}
