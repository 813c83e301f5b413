/**
 * Lists of seqs as acks and nacks carry them: single seqs and inclusive
 * `[first, last]` ranges, so a batch of contiguous acks travels as two
 * numbers. The client writes them (`ranges`), the server counts them
 * before expanding (`seqCount`, `expandSeqs`).
 * @module
 */

/** One seq, or an inclusive `[first, last]` range of them: contiguous acks travel as two numbers. */
export type SeqOrRange = number | [number, number];
export function isSeqOrRange(x: unknown): x is SeqOrRange {
	const seq = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 1;
	return seq(x) || (Array.isArray(x) && x.length === 2 && seq(x[0]) && seq(x[1]) && x[0] <= x[1]);
}
/** Seqs a list names, counted before any range is expanded (a range can name a billion). */
export function seqCount(list: SeqOrRange[]): number {
	let n = 0;
	for (const x of list) n += typeof x === "number" ? 1 : x[1] - x[0] + 1;
	return n;
}
/** The list as single seqs, each once, in the order first named. */
export function expandSeqs(list: SeqOrRange[]): number[] {
	const out = new Set<number>();
	for (const x of list) {
		if (typeof x === "number") out.add(x);
		else for (let s = x[0]; s <= x[1]; s++) out.add(s);
	}
	return [...out];
}

/** Seqs as a `seqs` list: runs of consecutive seqs become `[first, last]`. */
export function ranges(seqs: number[]): SeqOrRange[] {
	const sorted = [...seqs].sort((a, b) => a - b);
	const out: SeqOrRange[] = [];
	let i = 0;
	while (i < sorted.length) {
		const first = sorted[i] as number;
		let last = first;
		while (i + 1 < sorted.length && (sorted[i + 1] as number) <= last + 1) last = sorted[++i] as number;
		out.push(first === last ? first : [first, last]);
		i++;
	}
	return out;
}
