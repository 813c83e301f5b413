/**
 * Byte streams are stored as messages whose `data` is a base64 string, so the
 * log, its seqs, retention and the topic API stay one and the same.
 * @module
 */

/** Base64 of bytes, in slices: `String.fromCharCode(...)` of a whole MiB would overflow the stack. */
export function toBase64(bytes: Uint8Array): string {
	let bin = "";
	for (let i = 0; i < bytes.length; i += 0x8000) {
		bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
	}
	return btoa(bin);
}

export function fromBase64(b64: string): Uint8Array {
	const bin = atob(b64);
	const out = new Uint8Array(bin.length);
	for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
	return out;
}

/** A stored byte row's bytes (`data` is the JSON text of a base64 string). */
export function rowBytes(data: string): Uint8Array {
	return fromBase64(JSON.parse(data) as string);
}

export function concat(parts: Uint8Array[]): Uint8Array {
	const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
	let at = 0;
	for (const p of parts) {
		out.set(p, at);
		at += p.length;
	}
	return out;
}

/** An append split into rows of at most `rowBytes`, each as stored `data` text. */
export function byteRows(bytes: Uint8Array, rowBytes: number): string[] {
	const rows: string[] = [];
	for (let i = 0; i < bytes.length; i += rowBytes) rows.push(JSON.stringify(toBase64(bytes.subarray(i, i + rowBytes))));
	return rows;
}
