/**
 * Small typed values kept in the `meta` table (head seq, settings, topic name).
 * @module
 */

export class Meta {
	constructor(private readonly sql: SqlStorage) {}

	get(key: string): string | undefined {
		return this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value;
	}

	set(key: string, value: string): void {
		this.sql.exec(
			"INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
			key,
			value,
		);
	}

	getJson<T>(key: string): T | undefined {
		const raw = this.get(key);
		return raw === undefined ? undefined : (JSON.parse(raw) as T);
	}

	setJson(key: string, value: unknown): void {
		this.set(key, JSON.stringify(value));
	}
}
