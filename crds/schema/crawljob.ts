// The CrawlJob (feedcrawl.io/v1alpha1): spider + feeds + storage + ingest webhook.
import Type from "typebox";
import { SecretKeyRef, StringEnum } from "./common.ts";
import { Feeds, StorageSpec } from "./feeds.ts";
import { SpiderSpec } from "./spider.ts";

export const GROUP = "feedcrawl.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

export const IngestSpec = Type.Object(
  {
    webhook: Type.Optional(
      Type.Object(
        {
          url: Type.String({ minLength: 1, maxLength: 2048 }),
          signingSecretRef: Type.Optional(SecretKeyRef),
          mode: Type.Optional(StringEnum(["perFeed", "onCompletion"] as const, { default: "perFeed" })),
          timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 600, default: 30 })),
          maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 12 })),
          allowPrivateNetworks: Type.Optional(Type.Boolean({ default: false })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type IngestSpec = Type.Static<typeof IngestSpec>;

export const RunnerSpec = Type.Object(
  {
    parallelism: Type.Optional(Type.Integer({ minimum: 1, maximum: 256, default: 1 })),
    image: Type.Optional(Type.String({ maxLength: 512 })),
    resources: Type.Optional(
      Type.Unsafe<Record<string, unknown>>({ type: "object", "x-kubernetes-preserve-unknown-fields": true }),
    ),
    backoffLimit: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, default: 3 })),
    activeDeadlineSeconds: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
  },
  { additionalProperties: false },
);
export type RunnerSpec = Type.Static<typeof RunnerSpec>;

export const CrawlJobSpec = Type.Object(
  {
    spider: SpiderSpec,
    feeds: Type.Optional(Feeds),
    storage: Type.Optional(StorageSpec),
    ingest: Type.Optional(IngestSpec),
    runner: Type.Optional(RunnerSpec),
    ttlSecondsAfterFinished: Type.Optional(Type.Integer({ minimum: 0 })),
    suspend: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false },
);
export type CrawlJobSpec = Type.Static<typeof CrawlJobSpec>;

/** Live crawl counters: what the runner patches into status.stats every few seconds. */
export const CrawlStats = Type.Object({
  requests: Type.Integer({ minimum: 0 }),
  responses: Type.Integer({ minimum: 0 }),
  pages: Type.Integer({ minimum: 0 }),
  items: Type.Integer({ minimum: 0 }),
  itemsDropped: Type.Integer({ minimum: 0 }),
  errors: Type.Integer({ minimum: 0 }),
  bytes: Type.Integer({ minimum: 0 }),
});
export type CrawlStats = Type.Static<typeof CrawlStats>;

export const PHASES = ["Pending", "Running", "Ingesting", "Succeeded", "Failed"] as const;
export type Phase = (typeof PHASES)[number];

export const Condition = Type.Object({
  type: Type.String({ maxLength: 316 }),
  status: StringEnum(["True", "False", "Unknown"] as const),
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
  lastTransitionTime: Type.String({ format: "date-time" }),
  reason: Type.String({ maxLength: 1024 }),
  message: Type.String({ maxLength: 32768 }),
});
export type Condition = Type.Static<typeof Condition>;

export const CrawlJobStatus = Type.Object({
  observedGeneration: Type.Optional(Type.Integer()),
  phase: Type.Optional(StringEnum(PHASES)),
  conditions: Type.Optional(Type.Array(Condition, { maxItems: 16 })),
  startTime: Type.Optional(Type.String({ format: "date-time" })),
  completionTime: Type.Optional(Type.String({ format: "date-time" })),
  stats: Type.Optional(Type.Partial(CrawlStats)),
  feedSummary: Type.Optional(
    Type.Object({
      closed: Type.Integer({ minimum: 0 }),
      delivered: Type.Integer({ minimum: 0 }),
      failed: Type.Integer({ minimum: 0 }),
      items: Type.Integer({ minimum: 0 }),
      bytes: Type.Integer({ minimum: 0 }),
    }),
  ),
  recentFeeds: Type.Optional(Type.Array(Type.String({ maxLength: 253 }), { maxItems: 10 })),
  manifest: Type.Optional(Type.String({ maxLength: 2048 })),
});
export type CrawlJobStatus = Type.Static<typeof CrawlJobStatus>;

export interface CrawlJob {
  apiVersion: typeof API_VERSION;
  kind: "CrawlJob";
  metadata: import("@kubernetes/client-node").V1ObjectMeta;
  spec: CrawlJobSpec;
  status?: CrawlJobStatus;
}
