/**
 * A valibot record schema that keeps every own key of its input, the names
 * `__proto__`, `constructor` and `prototype` included (see `ownRecord`).
 * @module
 */
import * as v from "valibot";

type KeySchema = v.GenericSchema<string, string>;

/** A record that keeps every own key: see {@link ownRecord}. */
export interface OwnRecordSchema<TKey extends KeySchema, TValue extends v.GenericSchema>
	extends v.BaseSchema<
		Record<string, v.InferInput<TValue>>,
		Record<string, v.InferOutput<TValue>>,
		v.RecordIssue | v.InferIssue<TKey> | v.InferIssue<TValue>
	> {
	readonly type: "record";
	readonly reference: typeof ownRecord;
	readonly expects: "Object";
	readonly key: TKey;
	readonly value: TValue;
	readonly message: string | undefined;
}

/**
 * `v.record`, except that it keeps the keys `__proto__`, `constructor` and
 * `prototype`. Hand-written because valibot's record (1.x) skips those keys
 * without a word (its `_isValidObjectKey` guard against prototype pollution),
 * so `{"kind":"a","constructor":{"exists":true}}` became the wider filter
 * `{"kind":"a"}`, attributes lost keys, and a token pattern `constructor` (a
 * valid topic name) lost its grant. Here every own key is validated like any
 * other and counted against the limits. The output is built with
 * `Object.fromEntries`, which defines own data properties: a `__proto__` key
 * becomes a key, never the prototype (`out[key] = value` would set it).
 * Issues carry the same path items and requirements as valibot's record, so
 * error codes (`limit_exceeded`, `payload_too_large`) and messages stay the same.
 */
export function ownRecord<const TKey extends KeySchema, const TValue extends v.GenericSchema>(
	key: TKey,
	value: TValue,
	message?: string,
): OwnRecordSchema<TKey, TValue> {
	return v._standardSchema<OwnRecordSchema<TKey, TValue>>({
		kind: "schema",
		type: "record",
		reference: ownRecord,
		expects: "Object",
		async: false,
		key,
		value,
		message,
		"~run"(dataset, config) {
			type Output = v.OutputDataset<Record<string, v.InferOutput<TValue>>, v.RecordIssue>;
			// The dataset is filled in place, as valibot's own schemas do.
			const out = dataset as unknown as { typed: boolean; value: unknown; issues?: v.BaseIssue<unknown>[] };
			if (!out.value || typeof out.value !== "object") {
				v._addIssue(this, "type", dataset, config);
				return out as unknown as Output;
			}
			const input = out.value as Record<string, unknown>;
			out.typed = true;
			const entries: [string, unknown][] = [];
			// Own enumerable string keys, as for…in with hasOwnProperty gives them, reserved names included.
			for (const entryKey of Object.keys(input)) {
				const entryValue = input[entryKey];
				const keyDataset = this.key["~run"]({ value: entryKey }, config);
				if (keyDataset.issues) {
					const pathItem: v.ObjectPathItem = { type: "object", origin: "key", input, key: entryKey, value: entryValue };
					for (const issue of keyDataset.issues) {
						(issue as { path?: unknown[] }).path = [pathItem];
						out.issues?.push(issue);
					}
					out.issues ??= keyDataset.issues;
					if (config.abortEarly) {
						out.typed = false;
						break;
					}
				}
				const valueDataset = this.value["~run"]({ value: entryValue }, config);
				if (valueDataset.issues) {
					const pathItem: v.ObjectPathItem = {
						type: "object",
						origin: "value",
						input,
						key: entryKey,
						value: entryValue,
					};
					for (const issue of valueDataset.issues) {
						const i = issue as { path?: unknown[] };
						if (i.path) i.path.unshift(pathItem);
						else i.path = [pathItem];
						out.issues?.push(issue);
					}
					out.issues ??= valueDataset.issues;
					if (config.abortEarly) {
						out.typed = false;
						break;
					}
				}
				if (!keyDataset.typed || !valueDataset.typed) out.typed = false;
				if (keyDataset.typed) entries.push([keyDataset.value, valueDataset.value]);
			}
			out.value = Object.fromEntries(entries);
			return out as unknown as Output;
		},
	});
}
