// Types `env` and `exports` from "cloudflare:workers" (used by tests and the RPC entrypoint).
type TidingsEnv = import("./env.js").Env;

declare namespace Cloudflare {
	interface Env extends TidingsEnv {}
	interface GlobalProps {
		mainModule: typeof import("./index.js");
		durableNamespaces: "Topic";
	}
}
