/**
 * The browser's durable outbox, on IndexedDB through `idb`, whose promises
 * and `tx.done` keep "stored before `add` resolves" simple to get right.
 * @module
 */
import { type IDBPDatabase, openDB } from "idb";
import { DEFAULTS } from "./defaults.js";
import type { Outbox, OutboxEntry } from "./outbox.js";

const STORE = "outbox";
type Row = OutboxEntry & { n?: number };

/**
 * The browser outbox: an IndexedDB store shared by every tab of the origin,
 * so a publish survives a reload or a crash. Rows are keyed by an
 * auto-increment number, which keeps the origin-wide insertion order.
 */
export class IndexedDbOutbox implements Outbox {
	readonly #db: Promise<IDBPDatabase>;
	constructor(readonly name: string = DEFAULTS.name) {
		this.#db = openDB(name, 1, {
			upgrade(db) {
				db.createObjectStore(STORE, { keyPath: "n", autoIncrement: true }).createIndex("id", "id");
			},
		});
		// Failures surface on first use (and degrade to memory there), not as an unhandled rejection.
		this.#db.catch(() => {});
	}
	async add(entry: OutboxEntry) {
		// Resolves when the transaction commits; "strict" asks the browser to flush to disk first
		// (browsers now default to relaxed durability, which a power loss can undo).
		const tx = (await this.#db).transaction(STORE, "readwrite", { durability: "strict" });
		await Promise.all([tx.store.add({ ...entry }), tx.done]);
	}
	async peek(limit: number): Promise<OutboxEntry[]> {
		// IndexedDB reads a count of 0 as "no limit".
		if (limit < 1) return [];
		const rows: Row[] = await (await this.#db).getAll(STORE, null, limit);
		return rows.map(({ n, ...entry }) => entry);
	}
	async remove(ids: string[]) {
		const tx = (await this.#db).transaction(STORE, "readwrite");
		const byId = tx.store.index("id");
		await Promise.all([
			...ids.map(async (id) => {
				for (const n of await byId.getAllKeys(id)) await tx.store.delete(n);
			}),
			tx.done,
		]);
	}
	async size() {
		return (await this.#db).count(STORE);
	}
	async clear() {
		await (await this.#db).clear(STORE);
	}
}
