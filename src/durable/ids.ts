/**
 * UUIDv7 (RFC 9562): 48 bits of milliseconds, then randomness, so ids sort by
 * time. crypto.randomUUID() only makes v4; this is the few lines v7 needs.
 * @module
 */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export function uuidv7(now = Date.now()): string {
	const b = new Uint8Array(16);
	crypto.getRandomValues(b);
	let t = now;
	for (let i = 5; i >= 0; i--) {
		b[i] = t % 256;
		t = Math.floor(t / 256);
	}
	b[6] = ((b[6] as number) & 0x0f) | 0x70;
	b[8] = ((b[8] as number) & 0x3f) | 0x80;
	let s = "";
	for (let i = 0; i < 16; i++) {
		if (i === 4 || i === 6 || i === 8 || i === 10) s += "-";
		s += HEX[b[i] as number];
	}
	return s;
}
