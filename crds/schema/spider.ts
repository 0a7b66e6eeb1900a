// spec.spider: what to crawl and what to extract. Setting names follow Scrapy's
// (CONCURRENT_REQUESTS -> concurrentRequests, …), with Scrapy's defaults.
import Type from "typebox";
import { StringEnum } from "./common.ts";

const Url = Type.String({ minLength: 1, maxLength: 2048 });
const Pattern = Type.String({ minLength: 1, maxLength: 1024, description: "A JavaScript regular expression." });
const Selector = Type.String({ minLength: 1, maxLength: 1024, description: "A CSS selector (cheerio)." });

export const FollowRule = Type.Object(
  {
    selector: Type.Optional(Selector),
    allow: Type.Optional(Type.Array(Pattern, { maxItems: 64 })),
    deny: Type.Optional(Type.Array(Pattern, { maxItems: 64 })),
    restrict: Type.Optional(StringEnum(["none", "sameHost", "sameDomain"] as const, { default: "none" })),
  },
  { additionalProperties: false },
);
export type FollowRule = Type.Static<typeof FollowRule>;

export const FieldRule = Type.Object(
  {
    selector: Type.Optional(Selector),
    text: Type.Optional(Type.Boolean()),
    attr: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    all: Type.Optional(Type.Boolean()),
    regex: Type.Optional(Pattern),
    type: Type.Optional(StringEnum(["string", "number", "integer", "boolean"] as const)),
    absolute: Type.Optional(Type.Boolean()),
    meta: Type.Optional(
      StringEnum(["url", "status", "depth"] as const, {
        description:
          "Take the value from the response (its final URL, HTTP status or crawl depth) instead of the page.",
      }),
    ),
    default: Type.Optional(Type.Union([Type.String({ maxLength: 4096 }), Type.Number(), Type.Boolean()])),
    required: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type FieldRule = Type.Static<typeof FieldRule>;

export const ExtractRule = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, pattern: "^[A-Za-z][A-Za-z0-9_-]*$" }),
    itemSelector: Type.Optional(Selector),
    urlPattern: Type.Optional(Pattern),
    fields: Type.Record(Type.String({ maxLength: 128 }), FieldRule, { minProperties: 1, maxProperties: 256 }),
  },
  { additionalProperties: false },
);
export type ExtractRule = Type.Static<typeof ExtractRule>;

export const SpiderSettings = Type.Object(
  {
    concurrentRequests: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, default: 16 })),
    concurrentRequestsPerDomain: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, default: 8 })),
    downloadDelayMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000, default: 0 })),
    randomizeDownloadDelay: Type.Optional(Type.Boolean({ default: true })),
    autoThrottle: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ default: false })),
          targetConcurrency: Type.Optional(Type.Number({ minimum: 0.1, maximum: 1024, default: 1 })),
          startDelayMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000, default: 5000 })),
          maxDelayMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000, default: 60000 })),
        },
        { additionalProperties: false },
      ),
    ),
    robotsTxtObey: Type.Optional(Type.Boolean({ default: true })),
    depthLimit: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000, default: 0 })),
    retryTimes: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, default: 2 })),
    retryHttpCodes: Type.Optional(Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { maxItems: 64 })),
    redirectMaxTimes: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, default: 20 })),
    downloadTimeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600, default: 180 })),
    maxResponseBytes: Type.Optional(
      Type.Integer({
        minimum: 1024,
        maximum: 1_073_741_824,
        default: 33_554_432,
        description:
          "Limit on one response's decoded body (after gzip/br/zstd), in bytes; a larger one fails as responseTooLarge. Default 32 MiB (Scrapy's DOWNLOAD_WARNSIZE).",
      }),
    ),
    userAgent: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    headers: Type.Optional(
      Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 4096 }), { maxProperties: 64 }),
    ),
    allowPrivateNetworks: Type.Optional(
      Type.Union([Type.Boolean(), Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 64 })], {
        description: "true allows every private/loopback/link-local address; a list allows only those CIDRs.",
      }),
    ),
    closeSpider: Type.Optional(
      Type.Object(
        {
          itemCount: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
          pageCount: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
          timeoutSeconds: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
          errorCount: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type SpiderSettings = Type.Static<typeof SpiderSettings>;

export const SpiderSpec = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, pattern: "^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$" }),
    startUrls: Type.Array(Url, { minItems: 1, maxItems: 10_000 }),
    allowedDomains: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 1000 })),
    follow: Type.Optional(Type.Array(FollowRule, { maxItems: 64 })),
    extract: Type.Optional(Type.Array(ExtractRule, { maxItems: 64 })),
    module: Type.Optional(
      Type.String({ minLength: 1, maxLength: 1024, description: "A JS/TS module exporting parse(response, ctx)." }),
    ),
    settings: Type.Optional(SpiderSettings),
  },
  { additionalProperties: false },
);
export type SpiderSpec = Type.Static<typeof SpiderSpec>;
