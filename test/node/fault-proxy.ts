/**
 * A TCP proxy in front of the real server, to break the network the way it
 * breaks in the field: cut every connection, refuse new ones (server down),
 * swallow traffic while sockets stay open (a dead link nobody closed), or
 * lose the answers to requests the server has already carried out.
 *
 * A blackhole holds traffic back rather than dropping it, as TCP does across
 * a partition: nothing arrives while it lasts, and what was sent meanwhile
 * arrives, intact and in order, once it lifts (TCP's retransmission), unless
 * an end gave up on the connection first. Dropping bytes and then forwarding
 * again would hand a peer a stream with a hole in it, which TCP never does
 * (a WebSocket would read garbage frames).
 */
import { connect, createServer, type Server, type Socket } from "node:net";

/** `no-upgrade`: a proxy that refuses WebSocket upgrades (502) and passes every other request. */
export type Fault = "none" | "refuse" | "blackhole" | "lose-replies" | "no-upgrade";

export interface FaultProxy {
	url: string;
	fault: Fault;
	/** Where connections go (a restarted server may listen elsewhere). */
	upstreamPort: number;
	/** Destroys every open connection, both ways. */
	cut(): void;
	/** Connections accepted so far. */
	connections: number;
	close(): Promise<void>;
}

export async function startFaultProxy(upstreamPort: number): Promise<FaultProxy> {
	const open = new Set<Socket>();
	let fault: Fault = "none";
	const proxy: FaultProxy = {
		url: "",
		get fault() {
			return fault;
		},
		set fault(f: Fault) {
			fault = f;
			for (const s of open) f === "blackhole" ? s.pause() : s.resume();
		},
		upstreamPort,
		connections: 0,
		cut() {
			for (const s of open) s.destroy();
			open.clear();
		},
		close: () =>
			new Promise<void>((resolve) => {
				proxy.cut();
				server.close(() => resolve());
			}),
	};
	const server: Server = createServer((client) => {
		proxy.connections++;
		if (proxy.fault === "refuse") return client.destroy();
		const upstream = connect(proxy.upstreamPort, "127.0.0.1");
		open.add(client).add(upstream);
		const end = () => {
			client.destroy();
			upstream.destroy();
			open.delete(client);
			open.delete(upstream);
		};
		if (proxy.fault === "blackhole") {
			client.pause();
			upstream.pause();
		}
		client.on("data", (d) => {
			if (proxy.fault === "no-upgrade" && /\r\nupgrade:\s*websocket/i.test(String(d))) {
				// Answer the refusal whole before anything closes the client's side.
				upstream.removeAllListeners().on("error", () => {});
				upstream.destroy();
				return client.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
			}
			upstream.write(d);
		});
		upstream.on("data", (d) => {
			if (proxy.fault === "lose-replies") return end();
			client.write(d);
		});
		client.on("close", end).on("error", end);
		upstream.on("close", end).on("error", end);
	});
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	const { port } = server.address() as { port: number };
	proxy.url = `http://127.0.0.1:${port}`;
	return proxy;
}
