// The hooks test/browser/app.html puts on `window`, as the tests see them.
import type { Published, Tidings } from "../../src/client/index.js";

declare global {
	interface Window {
		loaded?: true;
		got: [number, unknown][];
		events: [string, unknown][];
		results: Published[];
		tidings: Tidings;
		start(topic?: string, options?: object): true;
		publishMany(topic: string, items: unknown[]): Promise<number>;
	}
	var window: Window;
	var navigator: { onLine: boolean };
	var IDBObjectStore: { prototype: { add: unknown } };
	class DOMException extends Error {
		constructor(message: string, name: string);
	}
}
