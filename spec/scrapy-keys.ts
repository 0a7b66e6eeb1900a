// Scrapy's FEEDS option keys (snake_case) to ours, for `feedcrawl crawl` with a
// Scrapy-style manifest. Keys that have no equivalent are left as they are, so that
// validation names them ("unknown option") instead of silently ignoring them.

const KEYS: Record<string, string> = {
  batch_item_count: "batchItemCount",
  batch_max_bytes: "batchMaxBytes",
  batch_max_seconds: "batchMaxSeconds",
  store_empty: "storeEmpty",
  item_classes: "itemTypes",
  gzip_compresslevel: "compressionLevel",
  compression_level: "compressionLevel",
  compresslevel: "compressionLevel",
};

const EXPORT_KWARGS: Record<string, string> = {
  export_empty_fields: "exportEmptyFields",
  delimiter: "csvDelimiter",
  include_headers_line: "csvIncludeHeader",
  root_element: "xmlRootElement",
  item_element: "xmlItemElement",
  indent: "indent",
  encoding: "encoding",
  fields_to_export: "fields",
};

const PLUGINS: Record<string, string> = {
  "scrapy.extensions.postprocessing.GzipPlugin": "gzip",
  GzipPlugin: "gzip",
  "scrapy.extensions.postprocessing.BrotliPlugin": "brotli",
  BrotliPlugin: "brotli",
  "scrapy.extensions.postprocessing.ZstdPlugin": "zstd",
  ZstdPlugin: "zstd",
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function normalizeOptions(options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (key === "item_export_kwargs" && isRecord(value)) {
      for (const [k, v] of Object.entries(value)) out[EXPORT_KWARGS[k] ?? `item_export_kwargs.${k}`] = v;
      continue;
    }
    if (key === "postprocessing" && Array.isArray(value)) {
      out[key] = value.map((p) => (typeof p === "string" ? (PLUGINS[p] ?? p) : p));
      continue;
    }
    if (key === "item_classes" && Array.isArray(value)) {
      // Scrapy names classes ("myproject.items.Product"); our item types are the rule names.
      out.itemTypes = value.map((c) => (typeof c === "string" ? (c.split(".").pop() ?? c) : c));
      continue;
    }
    if (key === "format" && typeof value === "string") {
      out[key] = value.toLowerCase();
      continue;
    }
    out[KEYS[key] ?? key] = value;
  }
  return out;
}

/** Returns FEEDS with each feed's Scrapy keys renamed to feedcrawl's; anything else unchanged. */
export function normalizeScrapyFeedKeys(feeds: unknown): unknown {
  if (!isRecord(feeds)) return feeds;
  const out: Record<string, unknown> = {};
  for (const [uri, options] of Object.entries(feeds))
    out[uri] = isRecord(options) ? normalizeOptions(options) : options;
  return out;
}
