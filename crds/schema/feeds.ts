// spec.feeds and spec.storage: Scrapy's FEEDS (URI template -> options), batched.
// docs/feeds.md maps every Scrapy key to the one here.
import Type from "typebox";
import { SecretKeyRef, StringEnum } from "./builders.ts";
import { cel } from "./common.ts";
import { FEED_FORMATS, POSTPROCESSORS } from "./names.ts";

/**
 * Output encodings (Python codec names where they differ only in spelling): JSON and XML
 * escape what the encoding cannot hold; CSV drops such items. Beyond utf-8, latin1 and
 * ascii the runner encodes with iconv-lite.
 */
export const FEED_ENCODINGS = [
  "utf-8",
  "utf8",
  "utf-16",
  "utf-16le",
  "utf-16be",
  "latin1",
  "iso-8859-1",
  "ascii",
  "us-ascii",
  "iso-8859-2",
  "iso-8859-5",
  "iso-8859-7",
  "iso-8859-9",
  "iso-8859-15",
  "cp1250",
  "cp1251",
  "cp1252",
  "cp1253",
  "cp1254",
  "cp1256",
  "windows-1250",
  "windows-1251",
  "windows-1252",
  "windows-1253",
  "windows-1254",
  "windows-1256",
  "koi8-r",
  "koi8-u",
  "shift_jis",
  "euc-jp",
  "euc-kr",
  "gbk",
  "gb18030",
  "big5",
] as const;
export type FeedEncoding = (typeof FEED_ENCODINGS)[number];
/** S3 canned ACLs (PutObject / CreateMultipartUpload `x-amz-acl`). */
export const S3_ACLS = [
  "private",
  "public-read",
  "public-read-write",
  "authenticated-read",
  "aws-exec-read",
  "bucket-owner-read",
  "bucket-owner-full-control",
] as const;
export const S3_SSE = ["AES256", "aws:kms", "aws:kms:dsse"] as const;
export const S3_STORAGE_CLASSES = [
  "STANDARD",
  "REDUCED_REDUNDANCY",
  "STANDARD_IA",
  "ONEZONE_IA",
  "INTELLIGENT_TIERING",
  "GLACIER",
  "DEEP_ARCHIVE",
  "GLACIER_IR",
  "EXPRESS_ONEZONE",
] as const;

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
        description:
          "Close the file once the bytes stored (after compression) plus the text not yet handed to the compressor reach this (0: no limit). What the compressor still buffers is not counted: compressed files can end a little above it.",
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
    sortKeys: Type.Optional(
      Type.Boolean({ description: "JSON / JSON Lines: object keys sorted, nested ones too (Python's sort_keys)." }),
    ),
    ensureAscii: Type.Optional(
      Type.Boolean({ description: "JSON / JSON Lines: every non-ASCII character as a \\uXXXX escape (ensure_ascii)." }),
    ),
    csvDelimiter: Type.Optional(Type.String({ minLength: 1, maxLength: 1 })),
    csvQuoteChar: Type.Optional(
      Type.String({ minLength: 1, maxLength: 1, description: "CSV quote character (Python's quotechar; default \")." }),
    ),
    csvJoinMultivalued: Type.Optional(
      Type.String({
        maxLength: 16,
        description:
          "CSV: a list of strings is written as one cell joined by this (Scrapy's join_multivalued, default ','); other lists are JSON.",
      }),
    ),
    // No `default:` on format-only options: the API server would fill them in
    // on every feed, and they are refused on feeds of another format.
    csvIncludeHeader: Type.Optional(Type.Boolean({ description: "CSV: write the header line (default true)." })),
    xmlRootElement: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: "XML: the root element (default items)." }),
    ),
    xmlItemElement: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: "XML: each item's element (default item)." }),
    ),
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
          acl: Type.Optional(
            StringEnum(S3_ACLS, { description: "Canned ACL of every stored object (Scrapy's FEED_STORAGE_S3_ACL)." }),
          ),
          serverSideEncryption: Type.Optional(
            StringEnum(S3_SSE, {
              description: "Server-side encryption of every stored object (x-amz-server-side-encryption).",
            }),
          ),
          sseKmsKeyId: Type.Optional(
            Type.String({
              minLength: 1,
              maxLength: 2048,
              description: "KMS key id or ARN for serverSideEncryption aws:kms / aws:kms:dsse.",
            }),
          ),
          storageClass: Type.Optional(
            StringEnum(S3_STORAGE_CLASSES, {
              description: "Storage class of every stored object (default: the bucket's).",
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
        {
          additionalProperties: false,
          ...cel({
            rule: "!has(self.sseKmsKeyId) || (has(self.serverSideEncryption) && self.serverSideEncryption != 'AES256')",
            message: "sseKmsKeyId needs serverSideEncryption aws:kms or aws:kms:dsse",
            fieldPath: ".sseKmsKeyId",
          }),
        },
      ),
    ),
  },
  { additionalProperties: false },
);
export type StorageSpec = Type.Static<typeof StorageSpec>;
