// The CrawlFeed: one object per closed feed file, created by the runner only
// after the storage confirmed the object, delivered by the operator.
import Type from "typebox";
import { StringEnum } from "./common.ts";

/** Also the runner's "feed closed" event: the same fields, emitted after upload. */
export const CrawlFeedSpec = Type.Object(
  {
    uri: Type.String({ minLength: 1, maxLength: 2048 }),
    batchId: Type.Integer({ minimum: 1 }),
    shard: Type.Integer({ minimum: 0 }),
    feed: Type.Optional(Type.String({ maxLength: 1024, description: "The feed's URI template in spec.feeds." })),
    format: Type.String({ minLength: 1, maxLength: 32 }),
    compression: Type.Optional(Type.String({ maxLength: 32 })),
    items: Type.Integer({ minimum: 0 }),
    bytes: Type.Integer({ minimum: 0 }),
    sha256: Type.String({ pattern: "^[0-9a-f]{64}$", maxLength: 64 }),
    closedAt: Type.String({ format: "date-time" }),
  },
  { additionalProperties: false },
);
export type CrawlFeedSpec = Type.Static<typeof CrawlFeedSpec>;
export type FeedClosed = CrawlFeedSpec;

export const DELIVERY_STATES = ["Pending", "Sending", "Delivered", "Failed"] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

export const CrawlFeedStatus = Type.Object({
  delivery: Type.Optional(
    Type.Object({
      state: StringEnum(DELIVERY_STATES),
      attempts: Type.Integer({ minimum: 0 }),
      lastError: Type.Optional(Type.String({ maxLength: 4096 })),
      lastResponseCode: Type.Optional(Type.Integer()),
      nextAttemptAt: Type.Optional(Type.String({ format: "date-time" })),
      deliveredAt: Type.Optional(Type.String({ format: "date-time" })),
    }),
  ),
});
export type CrawlFeedStatus = Type.Static<typeof CrawlFeedStatus>;

export interface CrawlFeed {
  apiVersion: "feedcrawl.io/v1alpha1";
  kind: "CrawlFeed";
  metadata: import("@kubernetes/client-node").V1ObjectMeta;
  spec: CrawlFeedSpec;
  status?: CrawlFeedStatus;
}
