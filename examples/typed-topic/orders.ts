/**
 * A typed topic, end to end: the topic's JSON Schema is the one source of
 * truth, and the TypeScript type is derived from it at compile time
 * (json-schema-to-ts's `FromSchema`), so what the server enforces and what
 * the code is checked against cannot drift apart. `npm run typecheck` checks
 * this file, the `@ts-expect-error` lines included; test/node/examples.test.ts
 * runs it against a real tidings. The bench publishes this schema too.
 *
 * In an app: `import { Tidings } from "tidings/client"` and
 * `npm install -D json-schema-to-ts`.
 * @module
 */
import type { FromSchema } from "json-schema-to-ts";
import { Tidings, type TopicHandle } from "../../src/client/node.js";

/** An order as a shop publishes it: about 1 KB of schema, the size the bench measures. */
export const orderSchema = {
	$schema: "https://json-schema.org/draft/2020-12/schema",
	title: "Order",
	type: "object",
	required: ["id", "customer", "currency", "lines", "total_cents", "placed_at"],
	additionalProperties: false,
	properties: {
		id: { type: "string", pattern: "^ord_[0-9a-z]{8,32}$" },
		customer: {
			type: "object",
			required: ["id", "email"],
			additionalProperties: false,
			properties: {
				id: { type: "string", minLength: 1, maxLength: 64 },
				email: { type: "string", format: "email", maxLength: 254 },
				name: { type: "string", maxLength: 200 },
			},
		},
		currency: { enum: ["EUR", "USD", "GBP"] },
		lines: {
			type: "array",
			minItems: 1,
			maxItems: 100,
			items: {
				type: "object",
				required: ["sku", "qty", "unit_cents"],
				additionalProperties: false,
				properties: {
					sku: { type: "string", pattern: "^[A-Z0-9-]{3,32}$" },
					qty: { type: "integer", minimum: 1, maximum: 1000 },
					unit_cents: { type: "integer", minimum: 0 },
				},
			},
		},
		total_cents: { type: "integer", minimum: 0 },
		coupon: { type: ["string", "null"], maxLength: 32 },
		shipping: {
			type: "object",
			required: ["country", "postcode"],
			properties: {
				country: { type: "string", pattern: "^[A-Z]{2}$" },
				postcode: { type: "string", maxLength: 16 },
				express: { type: "boolean" },
			},
		},
		placed_at: { type: "string", format: "date-time" },
	},
} as const;

/** The type of an order, derived from the schema. */
export type Order = FromSchema<typeof orderSchema>;

/** Sets the schema on the topic (admin right), then publishes and consumes typed. */
export async function run(url: string, token?: string): Promise<{ published: Order; received: Order }> {
	const res = await fetch(`${url}/v1/topics/shop.orders`, {
		method: "PUT",
		headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
		body: JSON.stringify({ schema: orderSchema }),
	});
	if (!res.ok) throw new Error(`setting the schema failed: ${res.status} ${await res.text()}`);

	const tidings = new Tidings({ url, ...(token ? { token } : {}) });
	const orders = tidings.topic<Order>("shop.orders");
	const order: Order = {
		id: "ord_0001abcd",
		customer: { id: "cus_42", email: "ada@example.com" },
		currency: "EUR",
		lines: [{ sku: "MUG-01", qty: 2, unit_cents: 1250 }],
		total_cents: 2500,
		placed_at: "2026-11-30T12:00:00Z",
	};
	const received = new Promise<Order>((resolve) => {
		const sub = orders.subscribe(
			(msg) => {
				// `msg.data` is an Order: no cast.
				resolve(msg.data);
				sub.close();
			},
			{ from: "earliest" },
		);
	});
	await orders.publish(order, { wait: true });
	const result = { published: order, received: await received };
	await tidings.close();
	return result;
}

/** What the compiler refuses: each line below fails to type-check without its `@ts-expect-error`. */
export function refusedAtCompileTime(orders: TopicHandle<Order>) {
	const base: Order = {
		id: "ord_0001abcd",
		customer: { id: "c", email: "a@b.c" },
		currency: "EUR",
		lines: [{ sku: "MUG-01", qty: 1, unit_cents: 1 }],
		total_cents: 1,
		placed_at: "2026-11-30T12:00:00Z",
	};
	// @ts-expect-error qty is an integer, not a string
	orders.publish({ ...base, lines: [{ sku: "MUG-01", qty: "2", unit_cents: 1 }] });
	// @ts-expect-error currency is one of EUR, USD, GBP
	orders.publish({ ...base, currency: "JPY" });
	// @ts-expect-error customer is required
	orders.publish({ ...base, customer: undefined });
	orders.subscribe((msg) => {
		// @ts-expect-error the data is an Order, which has no `price`
		void msg.data.price;
	});
}
