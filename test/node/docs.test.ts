/**
 * The docs list what the code answers: every 401 and 403 message that
 * src/tokens and src/worker/auth.ts can produce is in http-api.md's
 * "401 and 403" table.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");
const read = (p: string) => readFileSync(path.join(ROOT, p), "utf8");

/** The text of a markdown section, from its heading to the next heading of the same or a higher level. */
function section(markdown: string, heading: string): string {
	const start = markdown.indexOf(`\n${heading}\n`);
	expect(start, heading).toBeGreaterThanOrEqual(0);
	const level = heading.split(" ")[0] as string;
	const rest = markdown.slice(start + heading.length + 2);
	const end = rest.search(new RegExp(`\\n#{1,${level.length}} `));
	return end < 0 ? rest : rest.slice(0, end);
}

/** The fixed parts of a string or template literal: `${…}` placeholders split it. */
function fragments(literal: string): string[] {
	return literal
		.split(/\$\{[^}]*\}/)
		.map((f) => f.trim())
		.filter((f) => f.length > 3);
}

describe("http-api.md", () => {
	const table = section(read("docs/http-api.md"), "### 401 and 403");

	it("lists every message a token can be refused with", () => {
		const source = read("src/tokens/index.ts");
		const messages = [...source.matchAll(/"(the token [^"]*)"/g)].map((m) => m[1] as string);
		expect(messages.length).toBeGreaterThanOrEqual(5);
		for (const m of messages) expect(table, m).toContain(`\`${m}\``);
	});

	it("lists every 401 and 403 message of the Worker's auth", () => {
		const source = read("src/worker/auth.ts");
		const literals = [...source.matchAll(/ApiError\(\s*"(?:unauthorized|forbidden)",\s*(?:"([^"]*)"|`([^`]*)`)/g)].map(
			(m) => (m[1] ?? m[2]) as string,
		);
		expect(literals.length).toBeGreaterThanOrEqual(4);
		for (const literal of literals) for (const f of fragments(literal)) expect(table, literal).toContain(f);
	});
});
