// Small TypeBox builders shared by the CRD schemas. Every string and list
// carries a bound: the API server needs them to estimate CEL cost.
import Type from "typebox";

/** A string enum rendered as `{type: string, enum: [...]}` (what Kubernetes expects). */
export function StringEnum<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ type: "string", enum: [...values], ...options });
}

export const Name = (options: Record<string, unknown> = {}) =>
  Type.String({ minLength: 1, maxLength: 253, ...options });

export const SecretKeyRef = Type.Object(
  { name: Name({ description: "Secret name in the CrawlJob's namespace." }), key: Type.Optional(Name()) },
  { additionalProperties: false },
);
export type SecretKeyRef = Type.Static<typeof SecretKeyRef>;
