// spec.feeds and spec.storage: Scrapy's FEEDS (URI template -> options), batched.
import Type from "typebox";
import { SecretKeyRef, StringEnum } from "./common.ts";

export const FEED_FORMATS = ["jsonlines", "jsonl", "jl", "json", "csv", "xml"] as const;
export const POSTPROCESSORS = ["gzip", "brotli", "zstd"] as const;

export const FeedOptions = Type.Object(
  {
    format: StringEnum(FEED_FORMATS),
    batchItemCount: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
    batchMaxBytes: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
    batchMaxSeconds: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
    postprocessing: Type.Optional(Type.Array(StringEnum(POSTPROCESSORS), { maxItems: 4 })),
    compressionLevel: Type.Optional(Type.Integer({ minimum: 0, maximum: 22 })),
    fields: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 256 })),
    itemTypes: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 63 }), {
        maxItems: 64,
        description: "Only items of these extract rule names (Scrapy's item_classes).",
      }),
    ),
    encoding: Type.Optional(Type.String({ minLength: 1, maxLength: 32, default: "utf-8" })),
    indent: Type.Optional(Type.Integer({ minimum: 0, maximum: 16 })),
    storeEmpty: Type.Optional(Type.Boolean({ default: false })),
    overwrite: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false },
);
export type FeedOptions = Type.Static<typeof FeedOptions>;

/** URI template -> options; see docs for the %(param)s placeholders. */
export const Feeds = Type.Record(Type.String({ minLength: 1, maxLength: 1024 }), FeedOptions, { maxProperties: 16 });
export type Feeds = Type.Static<typeof Feeds>;

export const StorageSpec = Type.Object(
  {
    s3: Type.Optional(
      Type.Object(
        {
          endpoint: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
          region: Type.Optional(Type.String({ minLength: 1, maxLength: 64, default: "us-east-1" })),
          forcePathStyle: Type.Optional(Type.Boolean({ default: false })),
          credentialsSecretRef: Type.Optional(SecretKeyRef),
          partSizeBytes: Type.Optional(Type.Integer({ minimum: 5_242_880, maximum: 5_368_709_120 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type StorageSpec = Type.Static<typeof StorageSpec>;
