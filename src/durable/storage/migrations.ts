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
	// Consumer groups: the group and its cursor, what it owes (leased or
	// waiting for a retry), and its dead letters.
	`CREATE TABLE IF NOT EXISTS groups (
	   name TEXT PRIMARY KEY,
	   settings TEXT NOT NULL,
	   cursor INTEGER NOT NULL,
	   acked INTEGER NOT NULL DEFAULT 0,
	   retried INTEGER NOT NULL DEFAULT 0,
	   filtered INTEGER NOT NULL DEFAULT 0,
	   expired INTEGER NOT NULL DEFAULT 0
	 );
	 CREATE TABLE IF NOT EXISTS group_messages (
	   grp TEXT NOT NULL,
	   seq INTEGER NOT NULL,
	   attempt INTEGER NOT NULL,
	   state TEXT NOT NULL,
	   owner TEXT,
	   lease_until INTEGER,
	   available_at INTEGER NOT NULL,
	   last_error TEXT,
	   payload TEXT,
	   PRIMARY KEY (grp, seq)
	 );
	 CREATE INDEX IF NOT EXISTS group_messages_ready ON group_messages (grp, state, available_at);
	 CREATE INDEX IF NOT EXISTS group_messages_owner ON group_messages (grp, owner);
	 CREATE TABLE IF NOT EXISTS dead_letters (
	   grp TEXT NOT NULL,
	   seq INTEGER NOT NULL,
	   attempts INTEGER NOT NULL,
	   last_error TEXT,
	   dead_at INTEGER NOT NULL,
	   message TEXT NOT NULL,
	   PRIMARY KEY (grp, seq)
	 );`,
	// One lease sweep per group finds what ran out by deadline.
	`CREATE INDEX IF NOT EXISTS group_messages_lease ON group_messages (grp, state, lease_until);`,
	// One time per row and one index: a leased row's deadline and a ready
	// row's retry time are both \`due_at\`. Each index more is one b-tree
	// more to write on every lease and every ack; the owner index went
	// because held counts live in memory.
	`DROP INDEX IF EXISTS group_messages_owner;
	 DROP INDEX IF EXISTS group_messages_lease;
	 DROP INDEX IF EXISTS group_messages_ready;
	 UPDATE group_messages SET available_at = lease_until WHERE state = 'leased';
	 ALTER TABLE group_messages DROP COLUMN lease_until;
	 ALTER TABLE group_messages RENAME COLUMN available_at TO due_at;
	 CREATE INDEX IF NOT EXISTS group_messages_due ON group_messages (grp, state, due_at);`,
	// Every failed attempt's error (JSON array of `AttemptError`), not only the last.
	`ALTER TABLE group_messages ADD COLUMN errors TEXT;
	 ALTER TABLE dead_letters ADD COLUMN errors TEXT;`,
	// A topic exists from its first write; one written before this step exists from now.
	`INSERT OR IGNORE INTO meta (key, value)
	 SELECT 'created_at', CAST(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS TEXT)
	 WHERE EXISTS (SELECT 1 FROM messages) OR EXISTS (SELECT 1 FROM groups) OR EXISTS (SELECT 1 FROM timers)
	    OR EXISTS (SELECT 1 FROM meta WHERE key IN ('head_seq', 'settings'));`,
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
