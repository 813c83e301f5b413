/**
 * A topic's JSON Schema: stored in `meta` with its revision, compiled once
 * per revision (lazily, on the first publish after a wake), and the one
 * check every publish path runs before anything is stored. Revisions count
 * up and never repeat, removals included, so a stored message's
 * `schema_revision` always names the schema it was checked against.
 * @module
 */
import { fail, ok, type Result, schemaMismatch } from "../../protocol/internal.js";
import type { JsonSchema, TopicSchema } from "../../protocol/message.js";
import type { Meta } from "../storage/meta.js";
import { type Checker, compileSchema } from "./compile.js";

const KEY = "schema";

/** As stored: the latest revision, with `schema: null` once removed. */
type Stored = { revision: number; schema: null } | TopicSchema;

/** What a check needs of a record: its data, serialized. */
export interface Checked {
	data_json: string;
}

export class TopicSchemas {
	#stored: Stored | undefined;
	/** The compiled checker of `#stored`'s revision. */
	#checker: { revision: number; check: Checker } | undefined;

	constructor(private readonly meta: Meta) {
		this.reload();
	}

	/** The schema in force, or `null`. */
	get current(): TopicSchema | null {
		return this.#stored?.schema == null ? null : (this.#stored as TopicSchema);
	}

	/** Reads the stored schema back (a wake, a rolled-back transaction). */
	reload(): void {
		this.#stored = this.meta.getJson<Stored>(KEY);
	}

	/** Sets (or with `null` removes) the schema: a new revision. Refused with the validator's reason if it does not compile. Call inside a transaction. */
	change(schema: JsonSchema | null, now: number): Result<TopicSchema | null> {
		const revision = (this.#stored?.revision ?? 0) + 1;
		if (schema === null) {
			if (this.current === null) return ok(null);
			this.#stored = { revision, schema: null };
			this.#checker = undefined;
			this.meta.setJson(KEY, this.#stored);
			return ok(null);
		}
		const compiled = compileSchema(schema);
		if (!compiled.ok) return fail("invalid_schema", `the schema was not set: ${compiled.reason}`);
		const next: TopicSchema = { revision, draft: compiled.draft, schema, updated_at: now };
		this.#stored = next;
		this.#checker = { revision, check: compiled.check };
		this.meta.setJson(KEY, next);
		return ok(next);
	}

	/**
	 * Checks every record against the schema in force: the revision to store
	 * with them (`undefined` when the topic has none), or the first mismatch.
	 * A batch with one bad message is refused whole.
	 */
	check(records: readonly Checked[]): Result<number | undefined> {
		const current = this.current;
		if (current === null) return ok(undefined);
		const check = this.#checkerOf(current);
		for (let index = 0; index < records.length; index++) {
			const json = (records[index] as Checked).data_json;
			const miss = check(JSON.parse(json), json.length);
			if (miss) return schemaMismatch({ index, ...miss });
		}
		return ok(current.revision);
	}

	#checkerOf(current: TopicSchema): Checker {
		if (this.#checker?.revision === current.revision) return this.#checker.check;
		const compiled = compileSchema(current.schema);
		// It compiled when it was set; the same code compiles it again. A refusal here would be a bug: refuse every message rather than pass them.
		const check: Checker = compiled.ok
			? compiled.check
			: () => ({ pointer: "", schema_pointer: "", expected: `a schema that compiles (${compiled.reason})` });
		this.#checker = { revision: current.revision, check };
		return check;
	}
}
