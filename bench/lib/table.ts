/** A plain-text table with right-aligned numbers. */

export type Cell = string | number;

function show(c: Cell): string {
	if (typeof c === "string") return c;
	if (Number.isNaN(c)) return "-";
	if (Number.isInteger(c) || Math.abs(c) >= 100) return Math.round(c).toLocaleString("en-US");
	return c.toFixed(2);
}

export function renderTable(header: string[], rows: Cell[][]): string {
	const cells = [header, ...rows.map((r) => r.map(show))];
	const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
	const line = (r: string[]) =>
		r
			.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
			.join("  ")
			.trimEnd();
	const rule = widths
		.map((w) => "-".repeat(w))
		.join("  ")
		.trimEnd();
	return [line(cells[0] ?? []), rule, ...cells.slice(1).map(line)].join("\n");
}
