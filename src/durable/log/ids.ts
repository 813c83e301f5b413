/**
 * UUIDv7 (RFC 9562): 48 bits of milliseconds, then randomness, so ids sort by
 * time. Built on the runtime's native randomUUID (v4), whose random bits and
 * variant are kept: only the time and the version nibble are written over,
 * which is several times faster than formatting random bytes in JS.
 * @module
 */

export function uuidv7(now = Date.now()): string {
	const t = now.toString(16).padStart(12, "0");
	const r = crypto.randomUUID();
	return `${t.slice(0, 8)}-${t.slice(8, 12)}-7${r.slice(15)}`;
}
