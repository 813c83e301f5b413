/**
 * Example: a sign-up handler that announces `user.created` through the
 * tidings RPC entrypoint. The key makes a retried request publish once.
 */
import type { TidingsRpc } from "../../../src/worker/rpc.js";

interface Env {
	TIDINGS: Service<TidingsRpc>;
}

export default {
	async fetch(request: Request, env: Env): Promise<Response> {
		const url = new URL(request.url);
		if (request.method !== "POST" || url.pathname !== "/signup") {
			return new Response('POST /signup with {"email": "…"}\n', { status: 404 });
		}
		const { email } = (await request.json()) as { email: string };
		const result = await env.TIDINGS.publish(
			"user.created",
			{ email },
			{ key: `signup:${email}`, attributes: { source: "signup" } },
		);
		return Response.json(result, { status: 201 });
	},
} satisfies ExportedHandler<Env>;
