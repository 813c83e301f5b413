/**
 * A few DOM helpers: `h` builds an element from props and children, and the
 * formatters every view shares. No framework: views rebuild what changed.
 * @module
 */

export type Child = Node | string | number | null | undefined | false;
type Handler = (e: Event) => void;
export type Props = Record<string, string | number | boolean | Handler | null | undefined>;

/** `h("button", { class: "x", onclick }, "Save")`: props that are element properties are set as such, the rest as attributes. */
export function h<K extends keyof HTMLElementTagNameMap>(
	tag: K,
	props: Props = {},
	...children: Child[]
): HTMLElementTagNameMap[K] {
	const el = document.createElement(tag);
	for (const [name, value] of Object.entries(props)) {
		if (value === null || value === undefined || value === false) continue;
		if (typeof value === "function") el.addEventListener(name.slice(2), value);
		else if (name === "class") el.className = String(value);
		else if (name in el && !name.includes("-")) (el as unknown as Record<string, unknown>)[name] = value;
		else el.setAttribute(name, value === true ? "" : String(value));
	}
	el.append(...kids(children));
	return el;
}

export function kids(children: Child[]): (Node | string)[] {
	return children
		.filter((c) => c !== null && c !== undefined && c !== false)
		.map((c) => (typeof c === "number" ? String(c) : c)) as (Node | string)[];
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
	const el = document.getElementById(id);
	if (!el) throw new Error(`#${id} is missing from console.html`);
	return el as T;
}

export function num(n: number): string {
	return n.toLocaleString("en-US");
}

/** `12:04:05.123`, local time. */
export function clock(ts: number): string {
	const d = new Date(ts);
	const pad = (n: number, w = 2) => String(n).padStart(w, "0");
	return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** `2026-11-30 12:04:05`, local time. */
export function stamp(ts: number): string {
	const d = new Date(ts);
	const pad = (n: number) => String(n).padStart(2, "0");
	return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `just now`, `12 s ago`, `3 min ago`, `2 h ago`, `5 d ago`. */
export function ago(ts: number | null, now = Date.now()): string {
	if (ts === null) return "never";
	const s = Math.max(0, Math.round((now - ts) / 1000));
	if (s < 3) return "just now";
	if (s < 60) return `${s} s ago`;
	if (s < 3600) return `${Math.floor(s / 60)} min ago`;
	if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
	return `${Math.floor(s / 86400)} d ago`;
}

/** A one-line preview of any JSON value. */
export function preview(value: unknown, max = 160): string {
	const text = typeof value === "string" ? value : JSON.stringify(value);
	return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function errorText(err: unknown): string {
	if (err && typeof err === "object" && "message" in err) {
		const code = "code" in err ? `${String(err.code)}: ` : "";
		return `${code}${String(err.message)}`;
	}
	return String(err);
}

/** A status line that says what happened (`role=status`, so screen readers hear it). */
export function notice(kind: "info" | "error" | "ok", text: string): HTMLElement {
	return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

/** Topic and group names travel in the hash, encoded. */
export function topicHref(topic: string, tab = ""): string {
	return `#/t/${encodeURIComponent(topic)}${tab ? `/${tab}` : ""}`;
}

export function groupHref(topic: string, group: string): string {
	return `#/t/${encodeURIComponent(topic)}/g/${encodeURIComponent(group)}`;
}
