// The CrawlFeed: one object per closed feed file, created by the runner only
// after the storage confirmed the object, delivered by the operator.
import Type from "typebox";
import { StringEnum } from "./builders.ts";
import { type CustomObject, cel } from "./common.ts";

/** Also the runner's "feed closed" event: the same fields, emitted after upload. */
export const CrawlFeedSpec = Type.Object(
  {
    uri: Type.String({ minLength: 1, maxLength: 2048, description: "Where the closed file is stored." }),
    batchId: Type.Integer({ minimum: 1, description: "The feed's batch number (Scrapy's batch_id), from 1." }),
    shard: Type.Integer({ minimum: 0, description: "The runner shard (JOB_COMPLETION_INDEX) that wrote it." }),
    feed: Type.Optional(Type.String({ maxLength: 1024, description: "The feed's URI template in spec.feeds." })),
    format: Type.String({ minLength: 1, maxLength: 32 }),
    compression: Type.Optional(Type.String({ maxLength: 32 })),
    encoding: Type.Optional(
      Type.String({
        maxLength: 64,
        description: "The file's text encoding when it is not UTF-8 (the feed's encoding option), for readers.",
      }),
    ),
    csvDelimiter: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1,
        description: "CSV: the field delimiter when it is not ',' (the feed's csvDelimiter), for readers.",
      }),
    ),
    csvQuoteChar: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1,
        description:
          "CSV: the quote character when it is not '\"' (the feed's csvQuoteChar; doubled inside a cell), for readers.",
      }),
    ),
    csvHeader: Type.Optional(
      Type.Boolean({
        description:
          "CSV: false when the file has no header line (the feed's csvIncludeHeader: false); absent: it has one.",
      }),
    ),
    items: Type.Integer({ minimum: 0 }),
    bytes: Type.Integer({ minimum: 0 }),
    sha256: Type.String({ pattern: "^[0-9a-f]{64}$", maxLength: 64 }),
    closedAt: Type.String({ format: "date-time" }),
  },
  {
    additionalProperties: false,
    ...cel({ rule: "self == oldSelf", message: "spec is immutable: a CrawlFeed records a file already stored" }),
  },
);
export type CrawlFeedSpec = Type.Static<typeof CrawlFeedSpec>;
export type FeedClosed = CrawlFeedSpec;

export const DELIVERY_STATES = ["Pending", "Sending", "Delivered", "Failed"] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/** One webhook delivery's persisted state machine (a CrawlFeed's, or a CrawlJob's completion event). */
export const DeliveryStatus = Type.Object({
  state: StringEnum(DELIVERY_STATES),
  attempts: Type.Integer({ minimum: 0 }),
  lastError: Type.Optional(Type.String({ maxLength: 4096 })),
  lastResponseCode: Type.Optional(Type.Integer({ minimum: 0, maximum: 999 })),
  nextAttemptAt: Type.Optional(Type.String({ format: "date-time" })),
  deliveredAt: Type.Optional(Type.String({ format: "date-time" })),
});
export type DeliveryStatus = Type.Static<typeof DeliveryStatus>;

export const CrawlFeedStatus = Type.Object({
  delivery: Type.Optional(DeliveryStatus),
});
export type CrawlFeedStatus = Type.Static<typeof CrawlFeedStatus>;

export type CrawlFeed = CustomObject<"CrawlFeed", CrawlFeedSpec, CrawlFeedStatus>;
