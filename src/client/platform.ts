/**
 * What the client uses of its runtime beyond fetch and WebSocket, each of
 * which may be missing: `navigator.onLine` and its events, Web Locks,
 * BroadcastChannel, IndexedDB. Read through one loosely typed view of
 * `globalThis`, so that the same code runs in browsers, Workers and Node.
 * @module
 */

/** What `BroadcastChannel` is to the client: tabs telling each other what they flushed. */
export interface Channel<T> {
	postMessage(message: T): void;
	close(): void;
	onmessage: ((e: { data: T }) => void) | null;
}

export const g = globalThis as unknown as {
	navigator?: { onLine?: boolean; locks?: { request(name: string, fn: () => Promise<void>): Promise<void> } };
	indexedDB?: unknown;
	addEventListener?: (type: string, fn: () => void) => void;
	removeEventListener?: (type: string, fn: () => void) => void;
	BroadcastChannel?: new <T>(name: string) => Channel<T>;
};

/** Browsers only: Workers and Node have a `navigator` without `onLine`. Decided when the module loads. */
export const browser = !!g.navigator && "onLine" in g.navigator;
