/**
 * The object's one way to write: a synchronous SQLite transaction. When it
 * rolls back, what the modules mirror in memory (the log's head, cached
 * settings, the armed alarm) may be ahead of storage, so they reload.
 * @module
 */

export type Transaction = <T>(fn: () => T) => T;

export function transactional(storage: DurableObjectStorage, onRollback: () => void): Transaction {
	return (fn) => {
		try {
			return storage.transactionSync(fn);
		} catch (err) {
			onRollback();
			throw err;
		}
	};
}
