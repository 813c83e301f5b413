/**
 * Compile-time checks that a hand-written type and the type a schema infers
 * are the same, as idb does (`typeAssert<IsExact<…>>()`): the wire types in
 * the type-only modules stay free of valibot for the client bundle, and a
 * change to either side that the other does not follow fails `tsc`.
 * @module
 */

/** True when A and B accept the same values and name the same keys (`{a?: x}` and `{}` are assignable both ways). */
export type IsExact<A, B> = [A] extends [B]
	? [B] extends [A]
		? [KeysOf<A>] extends [KeysOf<B>]
			? [KeysOf<B>] extends [KeysOf<A>]
				? true
				: false
			: false
		: false
	: false;

type KeysOf<T> = T extends object ? keyof T : never;

/** Fails to compile unless its type argument is `true`; does nothing at run time. */
export function typeAssert<_T extends true>(): void {}
