// spec.runner: how the operator runs the runner pods (the Indexed Job and its
// pod template). Kubernetes types that are small are typed here (env, envFrom,
// tolerations, imagePullSecrets) so a typo fails at admission; large ones
// (affinity's terms, resources) keep unknown fields and are checked by the API
// server when the operator creates the Job.
import Type from "typebox";
import { Name, StringEnum } from "./builders.ts";
import { cel } from "./common.ts";
import {
  DEFAULT_TERMINATION_GRACE_SECONDS,
  DEFAULT_TMP_SIZE_LIMIT,
  RESERVED_ENV_NAMES,
  RESERVED_ENV_PREFIX,
} from "./names.ts";

/** A resource.Quantity as a plain number of bytes with an optional suffix: 512Mi, 2Gi, 1500M. */
const QUANTITY_PATTERN = "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$";

const unknownFields = (description: string) =>
  Type.Unsafe<Record<string, unknown>>({ type: "object", "x-kubernetes-preserve-unknown-fields": true, description });

const KeyRef = (what: string) =>
  Type.Object(
    {
      name: Name({ description: `The ${what} in the CrawlJob's namespace.` }),
      key: Type.String({ minLength: 1, maxLength: 253 }),
      optional: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false },
  );

const oneOf = (fields: string[]) => fields.map((f) => `(has(self.${f}) ? 1 : 0)`).join(" + ");

export const EnvVarSource = Type.Object(
  {
    secretKeyRef: Type.Optional(KeyRef("Secret")),
    configMapKeyRef: Type.Optional(KeyRef("ConfigMap")),
    fieldRef: Type.Optional(
      Type.Object(
        {
          fieldPath: Type.String({ minLength: 1, maxLength: 256 }),
          apiVersion: Type.Optional(Type.String({ maxLength: 64 })),
        },
        { additionalProperties: false },
      ),
    ),
    resourceFieldRef: Type.Optional(
      Type.Object(
        {
          resource: Type.String({ minLength: 1, maxLength: 64 }),
          containerName: Type.Optional(Type.String({ maxLength: 63 })),
          divisor: Type.Optional(Type.String({ maxLength: 32, pattern: QUANTITY_PATTERN })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  {
    additionalProperties: false,
    ...cel({
      rule: `${oneOf(["secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef"])} == 1`,
      message: "exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef",
    }),
  },
);

export const EnvVar = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 256, pattern: "^[^=]+$" }),
    value: Type.Optional(Type.String({ maxLength: 32768 })),
    valueFrom: Type.Optional(EnvVarSource),
  },
  {
    additionalProperties: false,
    ...cel({ rule: "!(has(self.value) && has(self.valueFrom))", message: "set value or valueFrom, not both" }),
  },
);
export type EnvVar = Type.Static<typeof EnvVar>;

const SourceRef = Type.Object(
  { name: Name(), optional: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);

export const EnvFromSource = Type.Object(
  {
    prefix: Type.Optional(Type.String({ maxLength: 256 })),
    secretRef: Type.Optional(SourceRef),
    configMapRef: Type.Optional(SourceRef),
  },
  {
    additionalProperties: false,
    ...cel({ rule: `${oneOf(["secretRef", "configMapRef"])} == 1`, message: "exactly one of secretRef, configMapRef" }),
  },
);

export const Toleration = Type.Object(
  {
    key: Type.Optional(Type.String({ maxLength: 317 })),
    operator: Type.Optional(StringEnum(["Exists", "Equal"] as const)),
    value: Type.Optional(Type.String({ maxLength: 63 })),
    effect: Type.Optional(StringEnum(["NoSchedule", "PreferNoSchedule", "NoExecute"] as const)),
    tolerationSeconds: Type.Optional(Type.Integer()),
  },
  { additionalProperties: false },
);

const QUALIFIED_KEY =
  "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";

export const RunnerSpec = Type.Object(
  {
    parallelism: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 256, default: 1, description: "Shards: hosts are split between them." }),
    ),
    image: Type.Optional(Type.String({ maxLength: 512, description: "Default: the operator's own image." })),
    resources: Type.Optional(
      unknownFields(
        "The runner container's resources (requests/limits), as in a Pod. Replaces the defaults as a whole " +
          "(requests cpu 250m, memory 256Mi; limits memory 512Mi; NODE_OPTIONS' V8 heap sized from the limit); {} sets none.",
      ),
    ),
    backoffLimit: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, default: 3 })),
    activeDeadlineSeconds: Type.Optional(
      Type.Integer({ minimum: 0, default: 0, description: "0: no deadline. Otherwise the runner Job's deadline." }),
    ),
    terminationGracePeriodSeconds: Type.Optional(
      Type.Integer({
        minimum: 10,
        maximum: 3600,
        default: DEFAULT_TERMINATION_GRACE_SECONDS,
        description:
          "How long a runner pod has after SIGTERM to finish in-flight pages, store and report its open batches.",
      }),
    ),
    tmpSizeLimit: Type.Optional(
      Type.String({
        maxLength: 32,
        pattern: QUANTITY_PATTERN,
        default: DEFAULT_TMP_SIZE_LIMIT,
        description:
          "sizeLimit of the runner's /tmp emptyDir (a quantity, 256Mi to 1Ti). Half of it is the S3 feed spool's budget " +
          "(FEEDCRAWL_SPOOL_MAX_BYTES); the rest holds the frontier's spill files.",
        ...cel({
          rule: "isQuantity(self) && quantity(self).compareTo(quantity('256Mi')) >= 0 && quantity(self).compareTo(quantity('1Ti')) <= 0",
          message: "must be a quantity from 256Mi to 1Ti",
        }),
      }),
    ),
    nodeSelector: Type.Optional(
      Type.Record(Type.String({ maxLength: 317 }), Type.String({ maxLength: 63 }), {
        maxProperties: 32,
        description: "The runner pods' nodeSelector.",
      }),
    ),
    tolerations: Type.Optional(Type.Array(Toleration, { maxItems: 32, description: "The runner pods' tolerations." })),
    affinity: Type.Optional(
      Type.Object(
        {
          nodeAffinity: Type.Optional(unknownFields("As in a Pod's affinity.nodeAffinity.")),
          podAffinity: Type.Optional(unknownFields("As in a Pod's affinity.podAffinity.")),
          podAntiAffinity: Type.Optional(unknownFields("As in a Pod's affinity.podAntiAffinity.")),
        },
        { additionalProperties: false, description: "The runner pods' affinity." },
      ),
    ),
    imagePullSecrets: Type.Optional(
      Type.Array(Type.Object({ name: Name() }, { additionalProperties: false }), {
        maxItems: 16,
        description: "Secrets (in the CrawlJob's namespace) to pull the runner image with.",
      }),
    ),
    env: Type.Optional(
      Type.Array(EnvVar, {
        maxItems: 64,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        description:
          "Extra env for the runner container (e.g. site credentials for spider modules, from a Secret with valueFrom). " +
          "Not copied into the spec snapshot. FEEDCRAWL_* and JOB_COMPLETION_INDEX are the operator's.",
        ...cel({
          rule: `self.all(e, !e.name.startsWith('${RESERVED_ENV_PREFIX}') && !(e.name in ${JSON.stringify(RESERVED_ENV_NAMES).replaceAll('"', "'")}))`,
          message: "FEEDCRAWL_* and JOB_COMPLETION_INDEX are set by the operator",
        }),
      }),
    ),
    envFrom: Type.Optional(
      Type.Array(EnvFromSource, {
        maxItems: 16,
        description: "Env from whole Secrets/ConfigMaps; the operator's own variables take precedence.",
      }),
    ),
    serviceAccountAnnotations: Type.Optional(
      Type.Record(Type.String({ maxLength: 317 }), Type.String({ maxLength: 4096 }), {
        maxProperties: 16,
        description:
          "Annotations of the per-job ServiceAccount <job>-runner, for workload identity " +
          "(e.g. eks.amazonaws.com/role-arn, iam.gke.io/gcp-service-account).",
        ...cel({
          rule: `self.all(k, k.matches('${QUALIFIED_KEY.replaceAll("\\", "\\\\")}'))`,
          message: "keys must be qualified names (prefix/name)",
        }),
      }),
    ),
  },
  { additionalProperties: false },
);
export type RunnerSpec = Type.Static<typeof RunnerSpec>;

/** spec-level: static S3 keys from credentialsSecretRef and a user env of the same name would fight. */
export const awsEnvRule = {
  rule:
    "!has(self.storage) || !has(self.storage.s3) || !has(self.storage.s3.credentialsSecretRef) || " +
    "!has(self.runner) || !has(self.runner.env) || " +
    "!self.runner.env.exists(e, e.name in ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'])",
  message: "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY come from spec.storage.s3.credentialsSecretRef",
  fieldPath: ".runner.env",
};
