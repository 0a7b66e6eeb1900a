// What the CRD schemas and the code around them share, without TypeBox (the
// operator loads this): the API group, field errors, the custom object shape,
// CEL rules. The TypeBox builders are in builders.ts.

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
