/**
 * What workerd logs, during a green run of the workerd suite, for things the
 * tests do on purpose, and that cannot be stopped where it starts.
 *
 * @cloudflare/vitest-pool-workers runs its Miniflare with `verbose: true` and
 * its own `handleStructuredLogs`, which writes each workerd log entry with one
 * `process.stdout.write` (or stderr) call in the Vitest process; the project
 * config cannot change either. So the filter is there: a write that is exactly
 * one of these entries is dropped, and every other one prints as it was.
 * Loaded by vitest.config.mts (Node); it imports nothing.
 */
export const EXPECTED_WORKERD_LOGS: ReadonlyArray<{ entry: RegExp; why: string }> = [
	{
		// Also in the ignore list of later versions of the pool.
		entry: /^exception = workerd\/api\/web-socket\.c\+\+:\d+: disconnected: WebSocket peer disconnected\n$/,
		why: "the pool closes its socket to each file's runner without waiting for the close handshake; and a socket that the object closes (4401, 4429), opened through app.fetch, ends so too",
	},
	{
		entry:
			/^uncaught exception; source = Uncaught \(in promise\); stack = Error: [a-z_]+: [^\n]*\n {4}at rpcError \([^\n)]*\/src\/worker\/rpc\.ts:\d+:\d+\)\n/,
		why: "workerd logs every exception that an RPC method throws, though the caller gets it too; these are the errors TidingsRpc throws on purpose for bad input (rpc.test.ts provokes them), and any the caller did not expect fails its test with the stack",
	},
];

const installed = Symbol.for("tidings.expectedWorkerdLogs");

/** Drops writes to stdout and stderr that are exactly one expected workerd log entry. Idempotent. */
export function dropExpectedWorkerdLogs(): void {
	for (const stream of [process.stdout, process.stderr] as Array<NodeJS.WriteStream & { [installed]?: true }>) {
		if (stream[installed]) continue;
		stream[installed] = true;
		const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
		stream.write = ((chunk: unknown, ...rest: unknown[]) => {
			if (typeof chunk === "string" && EXPECTED_WORKERD_LOGS.some(({ entry }) => entry.test(chunk))) {
				const done = rest.find((a) => typeof a === "function") as (() => void) | undefined;
				done?.();
				return true;
			}
			return write(chunk, ...rest);
		}) as typeof stream.write;
	}
}
