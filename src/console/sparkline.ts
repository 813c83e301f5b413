/**
 * Rate sparklines, hand-rolled SVG: a topic's publish rate is the change of
 * its `head_seq` between two polls of the topic list, over the time between
 * them. Samples live as long as the page, so going back to the list keeps the
 * history.
 * @module
 */

const SVG = "http://www.w3.org/2000/svg";
/** Samples kept per topic: at one poll every 2 s, two minutes. */
const KEEP = 60;
/** The fewest samples the width stands for. */
const MIN_SPAN = 10;

interface Sample {
	t: number;
	seq: number;
}

const samples = new Map<string, Sample[]>();

/** Records a poll's head seq of `topic`. */
export function sample(topic: string, seq: number, t = Date.now()): void {
	const list = samples.get(topic) ?? [];
	samples.set(topic, list);
	const last = list[list.length - 1];
	// A deleted and re-created topic starts again from seq 1: start the history again.
	if (last && seq < last.seq) list.length = 0;
	list.push({ t, seq });
	if (list.length > KEEP + 1) list.splice(0, list.length - KEEP - 1);
}

/** Messages per second between consecutive samples, oldest first. */
export function rates(topic: string): number[] {
	const list = samples.get(topic) ?? [];
	const out: number[] = [];
	for (let i = 1; i < list.length; i++) {
		const a = list[i - 1] as Sample;
		const b = list[i] as Sample;
		const dt = (b.t - a.t) / 1000;
		if (dt > 0) out.push((b.seq - a.seq) / dt);
	}
	return out;
}

/** Messages per second over the last `windowMs`. */
export function rate(topic: string, windowMs = 10_000): number {
	const list = samples.get(topic) ?? [];
	const last = list[list.length - 1];
	if (!last) return 0;
	const first = list.find((s) => last.t - s.t <= windowMs) ?? last;
	const dt = (last.t - first.t) / 1000;
	return dt > 0 ? (last.seq - first.seq) / dt : 0;
}

export function formatRate(r: number): string {
	if (r === 0) return "0/s";
	if (r < 1) return `${r.toFixed(2)}/s`;
	if (r < 10) return `${r.toFixed(1)}/s`;
	return `${Math.round(r).toLocaleString("en-US")}/s`;
}

/** An SVG line of `values` (an area under it), scaled to its own maximum. */
export function sparkline(values: number[], label: string, width = 120, height = 28): SVGSVGElement {
	const svg = document.createElementNS(SVG, "svg");
	svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
	svg.setAttribute("width", String(width));
	svg.setAttribute("height", String(height));
	svg.setAttribute("class", "spark");
	// Stretched to whatever size the stylesheet gives it (narrower on a phone).
	svg.setAttribute("preserveAspectRatio", "none");
	svg.setAttribute("role", "img");
	svg.setAttribute("aria-label", label);
	const points = values.slice(-KEEP + 1);
	const max = Math.max(...points, 0);
	// Few samples (a list just opened) still make a readable line: at least MIN_SPAN of them fill the width.
	const step = width / (Math.min(KEEP, Math.max(points.length, MIN_SPAN)) - 1);
	const x0 = width - (points.length - 1) * step;
	const y = (v: number) => (max > 0 ? height - 2 - (v / max) * (height - 4) : height - 2);
	const base = document.createElementNS(SVG, "line");
	for (const [k, v] of Object.entries({ x1: 0, x2: width, y1: height - 1.5, y2: height - 1.5, class: "spark-base" }))
		base.setAttribute(k, String(v));
	svg.append(base);
	if (points.length >= 2) {
		const coords = points.map((v, i) => `${(x0 + i * step).toFixed(1)},${y(v).toFixed(1)}`);
		const area = document.createElementNS(SVG, "path");
		area.setAttribute("d", `M${x0.toFixed(1)},${height} L${coords.join(" L")} L${width},${height} Z`);
		area.setAttribute("class", "spark-area");
		const line = document.createElementNS(SVG, "polyline");
		line.setAttribute("points", coords.join(" "));
		line.setAttribute("class", "spark-line");
		svg.append(area, line);
	}
	return svg;
}
