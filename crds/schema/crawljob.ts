// The CrawlJob (feedcrawl.io/v1alpha1): spider + feeds + storage + ingest webhook.
// The same TypeBox schema gives the static types, the runtime validator and
// (through crds/generate.ts) the CRD's structural OpenAPI schema + CEL rules.
import Type from "typebox";
import { SecretKeyRef, StringEnum } from "./builders.ts";
import { API_VERSION, type CustomObject, cel, GROUP, VERSION } from "./common.ts";
import { DeliveryStatus } from "./crawlfeed.ts";
import { Feeds, StorageSpec } from "./feeds.ts";
import { FrontierSpec } from "./frontier.ts";
import { FEEDS_REQUIRED_MESSAGE } from "./names.ts";
import { awsEnvRule, RunnerSpec } from "./runner.ts";
import { SpiderSpec } from "./spider.ts";

export { API_VERSION, GROUP, VERSION };

export const IngestSpec = Type.Object(
  {
    webhook: Type.Optional(
      Type.Object(
        {
          url: Type.String({
            minLength: 1,
            maxLength: 2048,
            description: "The bulk-ingest endpoint (http or https) that receives one signed POST per closed feed.",
            ...cel({
              rule: "isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",
              message: "must be an absolute http(s) URL",
            }),
          }),
          signingSecretRef: SecretKeyRef,
          mode: Type.Optional(
            StringEnum(["perFeed", "onCompletion"] as const, {
              default: "perFeed",
              description: "perFeed: one feed.closed event per file; onCompletion: one crawl.completed event.",
            }),
          ),
          timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 600, default: 30 })),
          maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 12 })),
          allowPrivateNetworks: Type.Optional(
            Type.Boolean({
              default: false,
              description:
                "Allow the private networks the operator allows (--webhook-private-networks, chart value webhook.privateNetworks); never more.",
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type IngestSpec = Type.Static<typeof IngestSpec>;

export { RunnerSpec };

// A batched feed writes several files: its URI needs a batch placeholder, or
// they would overwrite each other (Scrapy's rule). CEL says so at apply time.
const batchedFeedRule = cel({
  rule:
    "!has(self.feeds) || self.feeds.all(uri, " +
    "!((has(self.feeds[uri].batchItemCount) && self.feeds[uri].batchItemCount > 0) || " +
    "(has(self.feeds[uri].batchMaxBytes) && self.feeds[uri].batchMaxBytes > 0) || " +
    "(has(self.feeds[uri].batchMaxSeconds) && self.feeds[uri].batchMaxSeconds > 0)) || " +
    "uri.contains('%(batch_id)') || uri.contains('%(batch_time)'))",
  message:
    "a batched feed (batchItemCount, batchMaxBytes or batchMaxSeconds > 0) needs %(batch_id)d or %(batch_time)s in its URI",
  fieldPath: ".feeds",
});

// `feedcrawl run` stores what it crawls only through spec.feeds and exits 2
// without one: refused at apply time rather than failed at run time. The
// operator checks it again for CrawlJobs stored before this rule
// (operator/crawljob/validate.ts).
const feedsRequiredRule = {
  rule: "has(self.feeds) && size(self.feeds) > 0",
  message: FEEDS_REQUIRED_MESSAGE,
  fieldPath: ".feeds",
  reason: "FieldValueRequired" as const,
};

export const CrawlJobSpec = Type.Object(
  {
    spider: SpiderSpec,
    feeds: Type.Optional(Feeds),
    storage: Type.Optional(StorageSpec),
    ingest: Type.Optional(IngestSpec),
    runner: Type.Optional(RunnerSpec),
    frontier: Type.Optional(FrontierSpec),
    ttlSecondsAfterFinished: Type.Optional(
      Type.Integer({ minimum: 0, description: "Delete the CrawlJob (and what it owns) this long after it finished." }),
    ),
    suspend: Type.Optional(
      Type.Boolean({ default: false, description: "true: start no runner, and suspend a running one." }),
    ),
    stop: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          "true: stop the crawl for good: the runners finish their in-flight pages, store and report their open batches, and the job ends Succeeded (reason Stopped) once every stored feed is delivered. Never resumed; cannot be set back to false.",
        // A transition rule: the default makes a removed field false, so removing it is refused too.
        ...cel({ rule: "!oldSelf || self", message: "a stopped CrawlJob stays stopped: spec.stop cannot be unset" }),
      }),
    ),
  },
  {
    additionalProperties: false,
    ...cel(
      feedsRequiredRule,
      batchedFeedRule["x-kubernetes-validations"][0]!,
      {
        rule: "self.spider.startUrls.all(u, u.startsWith('http://') || u.startsWith('https://'))",
        message: "every start URL must be an http:// or https:// URL",
        fieldPath: ".spider.startUrls",
      },
      awsEnvRule,
    ),
  },
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

/** The condition types a CrawlJob carries; `Succeeded` is the one `kubectl wait` uses. */
export const CONDITION_TYPES = [
  "Validated",
  "RunnerReady",
  "RunnerHealthy",
  "CrawlComplete",
  "FeedsDelivered",
  "Succeeded",
] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

/** metav1.Condition, with its validation (controller-gen's schema). */
export const Condition = Type.Object({
  type: Type.String({
    minLength: 1,
    maxLength: 316,
    pattern:
      "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
  }),
  status: StringEnum(["True", "False", "Unknown"] as const),
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
  lastTransitionTime: Type.String({ format: "date-time" }),
  reason: Type.String({ minLength: 1, maxLength: 1024, pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$" }),
  message: Type.String({ maxLength: 32768 }),
});
export type Condition = Type.Static<typeof Condition>;

export const FeedSummary = Type.Object({
  closed: Type.Integer({ minimum: 0, description: "CrawlFeeds (closed files) reported by the runners." }),
  delivered: Type.Integer({ minimum: 0 }),
  failed: Type.Integer({ minimum: 0 }),
  items: Type.Integer({ minimum: 0 }),
  bytes: Type.Integer({ minimum: 0 }),
  display: Type.Optional(Type.String({ maxLength: 64, description: "delivered/closed, for the FEEDS column." })),
});
export type FeedSummary = Type.Static<typeof FeedSummary>;

export const RunnerStatus = Type.Object({
  jobName: Type.Optional(Type.String({ maxLength: 253 })),
  shards: Type.Optional(Type.Integer({ minimum: 0 })),
  active: Type.Optional(Type.Integer({ minimum: 0 })),
  succeeded: Type.Optional(Type.Integer({ minimum: 0 })),
  failed: Type.Optional(Type.Integer({ minimum: 0 })),
  generation: Type.Optional(
    Type.Integer({ minimum: 0, description: "The spec generation the runner was started with (its snapshot)." }),
  ),
});
export type RunnerStatus = Type.Static<typeof RunnerStatus>;

export const ShardProgress = Type.Object({
  lastBatchIds: Type.Optional(
    Type.Record(Type.String({ minLength: 1, maxLength: 1024 }), Type.Integer({ minimum: 0 }), {
      maxProperties: 16,
      description: "Key: the feed URI template (as in spec.feeds); value: the last batch id reported for it.",
    }),
  ),
});
export type ShardProgress = Type.Static<typeof ShardProgress>;

export const CrawlJobStatus = Type.Object({
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
  phase: Type.Optional(StringEnum(PHASES)),
  conditions: Type.Optional(
    Type.Array(Condition, {
      maxItems: 16,
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["type"],
    }),
  ),
  startTime: Type.Optional(Type.String({ format: "date-time" })),
  completionTime: Type.Optional(Type.String({ format: "date-time" })),
  stats: Type.Optional(Type.Partial(CrawlStats)),
  shardStats: Type.Optional(
    Type.Record(Type.String({ maxLength: 8 }), Type.Partial(CrawlStats), {
      maxProperties: 256,
      description: "Per shard counters (key: the shard index); each runner shard merge-patches its own entry.",
    }),
  ),
  shardProgress: Type.Optional(
    Type.Record(Type.String({ maxLength: 8 }), ShardProgress, {
      maxProperties: 256,
      description:
        "Per shard (key: the shard index) the last batch id it reported per feed template; each runner shard merge-patches its own entry after each CrawlFeed it created, and a restarted shard resumes its numbering after it.",
    }),
  ),
  feedSummary: Type.Optional(FeedSummary),
  completionDelivery: Type.Optional(DeliveryStatus),
  runner: Type.Optional(RunnerStatus),
  recentFeeds: Type.Optional(Type.Array(Type.String({ maxLength: 253 }), { maxItems: 10 })),
  manifest: Type.Optional(Type.String({ maxLength: 2048 })),
});
export type CrawlJobStatus = Type.Static<typeof CrawlJobStatus>;

export type CrawlJob = CustomObject<"CrawlJob", CrawlJobSpec, CrawlJobStatus>;
