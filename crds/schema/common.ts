// Small schema builders shared by the CrawlJob and CrawlFeed schemas. Every
// string and list carries a bound: the API server needs them to estimate CEL cost.
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

/** One validation problem, named by its field path (e.g. `spec.feeds["s3://…"].format`). */
export interface FieldError {
  path: string;
  message: string;
}

/** The API group and version both CRDs live in. */
export const GROUP = "feedcrawl.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A custom object of one of the two kinds, as the API server returns it. */
export interface CustomObject<Kind extends string, Spec, Status> {
  apiVersion: typeof API_VERSION;
  kind: Kind;
  metadata: import("@kubernetes/client-node").V1ObjectMeta;
  spec: Spec;
  status?: Status;
}

/** A CEL rule the API server evaluates (`x-kubernetes-validations`). */
export interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  fieldPath?: string;
  reason?: "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired" | "FieldValueDuplicate";
}

/** Schema options carrying CEL rules, spread into a TypeBox type's options. */
export function cel(...rules: CelRule[]): { "x-kubernetes-validations": CelRule[] } {
  return { "x-kubernetes-validations": rules };
}
