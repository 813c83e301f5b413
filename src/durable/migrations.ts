/**
 * The Topic object's SQLite schema. Each entry runs once, in order, inside
 * the constructor; the applied count is kept in `meta.schema_version`.
 * Append new steps; never edit one that has shipped.
 * @module
 */

const STEPS: string[] = [
	`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	 CREATE TABLE IF NOT EXISTS messages (
	   seq INTEGER PRIMARY KEY,
	   id TEXT NOT NULL,
	   ts INTEGER NOT NULL,
	   key TEXT,
	   data TEXT NOT NULL,
	   attributes TEXT,
	   traceparent TEXT,
	   baggage TEXT
	 );
	 CREATE TABLE IF NOT EXISTS dedupe (
	   key TEXT PRIMARY KEY,
	   id TEXT NOT NULL,
	   seq INTEGER,
	   deliver_at INTEGER,
	   expires_at INTEGER NOT NULL
	 );
	 CREATE INDEX IF NOT EXISTS dedupe_expires ON dedupe (expires_at);
	 CREATE TABLE IF NOT EXISTS timers (
	   kind TEXT NOT NULL,
	   key TEXT NOT NULL,
	   due_at INTEGER NOT NULL,
	   payload TEXT,
	   attempts INTEGER NOT NULL DEFAULT 0,
	   UNIQUE (kind, key)
	 );
	 CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at);`,
];

export function migrate(sql: SqlStorage): void {
	sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
	const row = sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").toArray()[0];
	let version = row ? Number(row.value) : 0;
	while (version < STEPS.length) {
		sql.exec(STEPS[version] as string);
		version++;
		sql.exec(
			"INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
			String(version),
		);
	}
}
