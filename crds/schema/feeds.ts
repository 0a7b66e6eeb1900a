// spec.feeds and spec.storage: Scrapy's FEEDS (URI template -> options), batched.
// docs/feeds.md maps every Scrapy key to the one here.
import Type from "typebox";
import { SecretKeyRef, StringEnum } from "./common.ts";

export const FEED_FORMATS = ["jsonlines", "jsonl", "jl", "json", "csv", "xml"] as const;
export type FeedFormat = (typeof FEED_FORMATS)[number];
export const POSTPROCESSORS = ["gzip", "brotli", "zstd"] as const;
export type Postprocessor = (typeof POSTPROCESSORS)[number];
/** Output encodings: JSON and XML escape what the encoding cannot hold; CSV drops such items. */
export const FEED_ENCODINGS = ["utf-8", "utf8", "latin1", "iso-8859-1", "ascii", "us-ascii"] as const;

/** One condition on an item's field; a feed takes an item only when every condition holds. */
export const FieldCondition = Type.Object(
  {
    field: Type.String({ minLength: 1, maxLength: 128 }),
    exists: Type.Optional(Type.Boolean({ description: "The field is present and not null (or absent, when false)." })),
    equals: Type.Optional(
      Type.String({ maxLength: 1024, description: "The field's text (numbers and booleans as written) equals this." }),
    ),
    notEquals: Type.Optional(Type.String({ maxLength: 1024 })),
    matches: Type.Optional(
      Type.String({ minLength: 1, maxLength: 1024, description: "JavaScript regular expression tested on the text." }),
    ),
  },
  { additionalProperties: false },
);
export type FieldCondition = Type.Static<typeof FieldCondition>;

export const FeedOptions = Type.Object(
  {
    format: StringEnum(FEED_FORMATS),
    batchItemCount: Type.Optional(
      Type.Integer({ minimum: 0, default: 0, description: "Close the file after this many items (0: no limit)." }),
    ),
    batchMaxBytes: Type.Optional(
      Type.Integer({
        minimum: 0,
        default: 0,
        description: "Close the file once its stored (compressed) size reaches this many bytes (0: no limit).",
      }),
    ),
    batchMaxSeconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        default: 0,
        description: "Close the file this many seconds after its first item (0: no limit).",
      }),
    ),
    postprocessing: Type.Optional(Type.Array(StringEnum(POSTPROCESSORS), { maxItems: 4 })),
    compressionLevel: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 22, description: "gzip 0-9, brotli 0-11, zstd 1-22." }),
    ),
    fields: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 256 })),
    itemTypes: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 63 }), {
        maxItems: 64,
        description: "Only items of these extract rule names (Scrapy's item_classes).",
      }),
    ),
    itemFilter: Type.Optional(
      Type.Array(FieldCondition, {
        maxItems: 16,
        description: "Only items whose fields satisfy every condition (Scrapy's item_filter, declaratively).",
      }),
    ),
    encoding: Type.Optional(StringEnum(FEED_ENCODINGS, { default: "utf-8" })),
    indent: Type.Optional(Type.Integer({ minimum: 0, maximum: 16 })),
    exportEmptyFields: Type.Optional(
      Type.Boolean({ description: "Write fields listed in `fields` but missing from an item as null (JSON/XML)." }),
    ),
    csvDelimiter: Type.Optional(Type.String({ minLength: 1, maxLength: 1 })),
    csvIncludeHeader: Type.Optional(Type.Boolean({ default: true })),
    xmlRootElement: Type.Optional(Type.String({ minLength: 1, maxLength: 64, default: "items" })),
    xmlItemElement: Type.Optional(Type.String({ minLength: 1, maxLength: 64, default: "item" })),
    storeEmpty: Type.Optional(Type.Boolean({ default: false })),
    overwrite: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false },
);
export type FeedOptions = Type.Static<typeof FeedOptions>;

/** URI template -> options; see docs/feeds.md for the %(param)s placeholders. */
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
          uploadQueueSize: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: 16,
              description: "Parts in flight per upload (memory: this x part size).",
            }),
          ),
          retrySeconds: Type.Optional(
            Type.Integer({
              minimum: 0,
              maximum: 86_400,
              default: 300,
              description:
                "How long a closed batch keeps retrying its upload (an S3 outage shorter than this loses nothing).",
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type StorageSpec = Type.Static<typeof StorageSpec>;
