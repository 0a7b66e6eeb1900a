// Picks the encoder for a feed's `format` (jsonl and jl are jsonlines, as in Scrapy).
import type { FeedFormat } from "../../../crds/schema/names.ts";
import { createCsvEncoder } from "./csv.ts";
import type { EncoderOptions, ItemEncoder } from "./encoder.ts";
import { createJsonEncoder } from "./json.ts";
import { createJsonLinesEncoder } from "./jsonlines.ts";
import { createXmlEncoder } from "./xml.ts";

/** The canonical name reported in CrawlFeed.spec.format. */
export function canonicalFormat(format: FeedFormat): "jsonlines" | "json" | "csv" | "xml" {
  return format === "jsonl" || format === "jl" ? "jsonlines" : format;
}

/** A fresh encoder: one per file, since JSON and CSV keep per-file state. */
export function createEncoder(format: FeedFormat, opts: EncoderOptions): ItemEncoder {
  switch (canonicalFormat(format)) {
    case "jsonlines":
      return createJsonLinesEncoder(opts);
    case "json":
      return createJsonEncoder(opts);
    case "csv":
      return createCsvEncoder(opts);
    case "xml":
      return createXmlEncoder(opts);
  }
}
