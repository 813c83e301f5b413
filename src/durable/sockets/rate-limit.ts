/**
 * Token buckets for abuse limits, held in memory by the object: a socket's
 * frames, and a credential's publishes on this topic. Memory is the right
 * place: a limit is about the next second, and an object that restarts or
 * hibernates losing a bucket only forgives a little.
 * @module
 */

export class TokenBucket {
	#tokens: number;
	#at: number;

	constructor(
		private readonly ratePerSecond: number,
		private readonly burst: number,
		now = Date.now(),
	) {
		this.#tokens = burst;
		this.#at = now;
	}

	/** Takes `n` tokens if there are enough; answers whether it did. */
	take(n = 1, now = Date.now()): boolean {
		this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) / 1000) * this.ratePerSecond);
		this.#at = now;
		if (this.#tokens < n) return false;
		this.#tokens -= n;
		return true;
	}
}

/** Buckets by key, the oldest forgotten past `max` keys so memory stays bounded. */
export class BucketMap<K> {
	readonly #buckets = new Map<K, TokenBucket>();

	constructor(
		private readonly make: () => TokenBucket,
		private readonly max = 10_000,
	) {}

	get(key: K): TokenBucket {
		let b = this.#buckets.get(key);
		if (!b) {
			if (this.#buckets.size >= this.max) this.#buckets.delete(this.#buckets.keys().next().value as K);
			b = this.make();
			this.#buckets.set(key, b);
		}
		return b;
	}

	delete(key: K): void {
		this.#buckets.delete(key);
	}
}
