/**
 * Where a group may push. In production: `https:` to a public host only, never
 * a loopback, private, link-local or otherwise internal address, so a group
 * cannot be aimed at the operator's own network. In local development
 * (TIDINGS_ALLOW_ANONYMOUS=true) `http:` to localhost is allowed too.
 * Host names are checked by name; Workers have no DNS lookup, and Cloudflare's
 * fetch does not reach private networks from a deployed Worker anyway.
 * @module
 */

const INTERNAL_NAMES = /(^|\.)(localhost|local|internal|lan|home\.arpa|intranet)$/i;

function ipv4(host: string): number[] | undefined {
	const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
	if (!m) return undefined;
	const parts = m.slice(1).map(Number);
	return parts.every((n) => n <= 255) ? parts : undefined;
}

function privateIpv4([a, b]: number[]): boolean {
	return (
		a === 0 ||
		a === 10 ||
		a === 127 ||
		(a === 100 && (b as number) >= 64 && (b as number) <= 127) ||
		(a === 169 && b === 254) ||
		(a === 172 && (b as number) >= 16 && (b as number) <= 31) ||
		(a === 192 && b === 168) ||
		(a === 198 && (b === 18 || b === 19)) ||
		(a as number) >= 224
	);
}

function privateIpv6(host: string): boolean {
	const h = host.replace(/^\[|\]$/g, "").toLowerCase();
	if (h === "::" || h === "::1") return true;
	if (/^f[cd][0-9a-f]{0,2}:/.test(h)) return true; // fc00::/7 unique local
	if (/^fe[89ab][0-9a-f]?:/.test(h)) return true; // fe80::/10 link-local
	// IPv4-mapped addresses, which URL parsing writes in hex (::ffff:a00:1 for 10.0.0.1).
	const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(h);
	if (!mapped) return false;
	const hi = Number.parseInt(mapped[1] as string, 16);
	const lo = Number.parseInt(mapped[2] as string, 16);
	return privateIpv4([hi >> 8, hi & 255, lo >> 8, lo & 255]);
}

/** Why `url` may not be a push target here, or undefined when it may. */
export function pushUrlProblem(url: string, development: boolean): string | undefined {
	let u: URL;
	try {
		u = new URL(url);
	} catch {
		return "push.url must be an absolute URL";
	}
	const host = u.hostname;
	const loopback = host === "localhost" || host === "127.0.0.1" || host === "[::1]";
	if (development && loopback && (u.protocol === "http:" || u.protocol === "https:")) return undefined;
	if (u.protocol !== "https:") return "push.url must be https: (http: to localhost only in local development)";
	if (u.username || u.password) return "push.url must not carry credentials; sign requests with push.secret instead";
	const v4 = ipv4(host);
	if ((v4 && privateIpv4(v4)) || (host.startsWith("[") && privateIpv6(host)) || INTERNAL_NAMES.test(host)) {
		return "push.url must be a public host: loopback, private, link-local and internal addresses are refused";
	}
	return undefined;
}
