/**
 * Confirmation in a modal `<dialog>`: focus goes to Cancel, Escape cancels,
 * and the answer is a promise.
 * @module
 */
import { h } from "./dom.js";

export function confirmAction(title: string, text: string, confirmLabel: string, danger = true): Promise<boolean> {
	return new Promise((resolve) => {
		const cancel = h("button", { type: "button", class: "btn" }, "Cancel");
		const ok = h("button", { type: "button", class: danger ? "btn danger" : "btn primary" }, confirmLabel);
		const dialog = h(
			"dialog",
			{ class: "confirm", "aria-labelledby": "confirm-title" },
			h("h2", { id: "confirm-title" }, title),
			h("p", {}, text),
			h("div", { class: "actions" }, cancel, ok),
		);
		const done = (answer: boolean) => {
			dialog.close();
			dialog.remove();
			resolve(answer);
		};
		cancel.onclick = () => done(false);
		ok.onclick = () => done(true);
		dialog.addEventListener("cancel", (e) => {
			e.preventDefault();
			done(false);
		});
		document.body.append(dialog);
		dialog.showModal();
		cancel.focus();
	});
}
