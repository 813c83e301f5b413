/**
 * Latency recording for millions of deliveries: a fixed histogram keeps
 * memory flat and recording O(1) on the load generator, which shares the
 * CPU with workerd, at 10 µs resolution.
 * @module
 */

const BUCKET_MS = 0.01;
/** Samples above this land in the last bucket; percentiles there read as "≥ 10 s". */
const MAX_MS = 10_000;

export class Histogram {
	readonly #buckets = new Uint32Array(Math.ceil(MAX_MS / BUCKET_MS) + 1);
	count = 0;
	max = 0;
	#sum = 0;

	record(ms: number): void {
		const v = Math.max(ms, 0);
		const i = Math.min(Math.floor(v / BUCKET_MS), this.#buckets.length - 1);
		this.#buckets[i] = (this.#buckets[i] ?? 0) + 1;
		this.count++;
		this.#sum += v;
		if (v > this.max) this.max = v;
	}

	get mean(): number {
		return this.count === 0 ? Number.NaN : this.#sum / this.count;
	}

	/** The upper edge of the bucket holding the q-quantile, in ms; NaN when empty. */
	quantile(q: number): number {
		if (this.count === 0) return Number.NaN;
		const rank = Math.max(1, Math.ceil(q * this.count));
		let seen = 0;
		for (let i = 0; i < this.#buckets.length; i++) {
			seen += this.#buckets[i] ?? 0;
			if (seen >= rank) return Math.min((i + 1) * BUCKET_MS, this.max);
		}
		return this.max;
	}
}

export function round(n: number, digits = 2): number {
	const f = 10 ** digits;
	return Math.round(n * f) / f;
}
