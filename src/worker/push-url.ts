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

/** The eight 16-bit groups of an IPv6 address as URL parsing writes it (compressed hex, no dotted part). */
function ipv6Groups(host: string): number[] | undefined {
	const h = host.replace(/^\[|\]$/g, "").toLowerCase();
	const [head = "", tail] = h.split("::");
	const part = (s: string) => (s === "" ? [] : s.split(":").map((x) => Number.parseInt(x, 16)));
	const a = part(head);
	const b = tail === undefined ? [] : part(tail);
	const groups = tail === undefined ? a : [...a, ...new Array(8 - a.length - b.length).fill(0), ...b];
	return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : undefined;
}

/** The IPv4 address in two 16-bit groups. */
const v4Of = (hi: number, lo: number) => [hi >> 8, hi & 255, lo >> 8, lo & 255];

function privateIpv6(host: string): boolean {
	const g = ipv6Groups(host);
	if (!g) return true; // not understood: refused
	const [g0, g1, g2, g3, g4, g5, g6, g7] = g as [number, number, number, number, number, number, number, number];
	// ::/64 holds nothing globally routable: ::/96 (unspecified, loopback, IPv4-compatible), ::ffff:0:0:0/96
	// (IPv4-translated) and the rest are refused. Only ::ffff:0:0/96 (IPv4-mapped) is the embedded IPv4 itself,
	// allowed when that IPv4 is public.
	if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0) return !(g4 === 0 && g5 === 0xffff) || privateIpv4(v4Of(g6, g7));
	// NAT64: only 64:ff9b::/96 embeds a reachable IPv4; 64:ff9b:1::/48 is local and the rest of 64:ff9b::/32 unassigned.
	if (g0 === 0x64 && g1 === 0xff9b) return g2 !== 0 || g3 !== 0 || g4 !== 0 || g5 !== 0 || privateIpv4(v4Of(g6, g7));
	if (g0 === 0x2002) return privateIpv4(v4Of(g1, g2)); // 6to4
	if (g0 === 0x100 && g1 === 0 && g2 === 0 && g3 === 0) return true; // discard-only
	if (g0 === 0x2001 && g1 === 0xdb8) return true; // documentation
	return (
		(g0 & 0xfe00) === 0xfc00 || // fc00::/7 unique local
		(g0 & 0xffc0) === 0xfe80 || // fe80::/10 link-local
		(g0 & 0xffc0) === 0xfec0 || // fec0::/10 site-local (deprecated, still routed internally)
		(g0 & 0xff00) === 0xff00 // multicast
	);
}

/** Why `url` may not be a push target here, or undefined when it may. */
export function pushUrlProblem(url: string, development: boolean): string | undefined {
	let u: URL;
	try {
		u = new URL(url);
	} catch {
		return "push.url must be an absolute URL";
	}
	// "localhost." and "db.internal." are the same hosts as without the dot.
	const host = u.hostname.replace(/\.+$/, "");
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
