import { describe, expect, it } from "vitest";
import { uuidv7 } from "../../src/durable/log/ids.js";

describe("uuidv7", () => {
	it("is a version 7, variant 10 UUID whose first 48 bits are the time, sorted by time", () => {
		const now = 1_795_420_000_000;
		const id = uuidv7(now);
		expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
		expect(Number.parseInt(id.replace(/-/g, "").slice(0, 12), 16)).toBe(now);
		const ids = Array.from({ length: 100 }, (_, i) => uuidv7(now + i * 7));
		expect([...ids].sort()).toEqual(ids);
		expect(new Set(Array.from({ length: 1000 }, () => uuidv7(now))).size).toBe(1000);
	});
});
