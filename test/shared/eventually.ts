/**
 * Test helpers shared by every suite: the workerd one (test/worker) and the
 * Node and browser ones (test/node, test/browser). Plain TypeScript that
 * imports nothing, so it runs in workerd and in Node alike.
 */

/**
 * Polls `check` until it returns a value (anything but undefined or false),
 * and answers that value; past `timeoutMs`, throws "timed out waiting for
 * <what>". `what` may be a function, to describe the state at the timeout.
 */
export async function eventually<T>(
	check: () => T | undefined | false | Promise<T | undefined | false>,
	what: string | (() => string),
	timeoutMs = 10_000,
	intervalMs = 25,
): Promise<T> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const v = await check();
		if (v !== undefined && v !== false) return v;
		if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "string" ? what : what()}`);
		await new Promise((r) => setTimeout(r, intervalMs));
	}
}
