/** Seq lists as acks carry them: the client's ranges and the server's expansion agree on every list. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { expandSeqs, ranges, seqCount } from "../../src/protocol/seq-list.js";

const seqs = fc.array(fc.integer({ min: 1, max: 200 }), { maxLength: 300 });

describe("seq lists", () => {
	it("ranges() names exactly the seqs given, each once, and no range could be longer", () => {
		fc.assert(
			fc.property(seqs, (list) => {
				const unique = [...new Set(list)].sort((a, b) => a - b);
				const packed = ranges(list);
				expect(expandSeqs(packed)).toEqual(unique);
				expect(seqCount(packed)).toBe(unique.length);
				// Written out: neighbours are never contiguous, else they would be one range.
				const bounds = packed.map((x) => (typeof x === "number" ? [x, x] : x));
				for (let i = 1; i < bounds.length; i++) {
					const [prev, next] = [bounds[i - 1] as number[], bounds[i] as number[]];
					expect(next[0]).toBeGreaterThan((prev[1] as number) + 1);
				}
			}),
		);
	});

	it("examples", () => {
		expect(ranges([5, 1, 2, 3, 9, 8, 3])).toEqual([[1, 3], 5, [8, 9]]);
		expect(ranges([7])).toEqual([7]);
		expect(seqCount([[1, 2 ** 52]])).toBe(2 ** 52);
	});
});
