// Scrapy's FEEDS option keys (snake_case, and the FEED_* setting names) to ours, for
// `feedcrawl crawl` / `feedcrawl validate` with a Scrapy-style manifest. Keys that have
// no equivalent are left as they are, so that validation names them with a hint
// (scrapyHint) that says what to write instead — never silently ignored.

const KEYS: Record<string, string> = {
  batch_item_count: "batchItemCount",
  batch_max_bytes: "batchMaxBytes",
  batch_max_seconds: "batchMaxSeconds",
  store_empty: "storeEmpty",
  item_classes: "itemTypes",
  gzip_compresslevel: "compressionLevel",
  compression_level: "compressionLevel",
  compresslevel: "compressionLevel",
  // Scrapy's settings, written into one feed's options: they apply to that feed.
  FEED_EXPORT_FIELDS: "fields",
  FEED_EXPORT_ENCODING: "encoding",
  FEED_EXPORT_INDENT: "indent",
  FEED_STORE_EMPTY: "storeEmpty",
  FEED_EXPORT_BATCH_ITEM_COUNT: "batchItemCount",
};

const EXPORT_KWARGS: Record<string, string> = {
  export_empty_fields: "exportEmptyFields",
  delimiter: "csvDelimiter",
  quotechar: "csvQuoteChar",
  join_multivalued: "csvJoinMultivalued",
  include_headers_line: "csvIncludeHeader",
  root_element: "xmlRootElement",
  item_element: "xmlItemElement",
  indent: "indent",
  encoding: "encoding",
  fields_to_export: "fields",
  sort_keys: "sortKeys",
  ensure_ascii: "ensureAscii",
};

const PLUGINS: Record<string, string> = {
  "scrapy.extensions.postprocessing.GzipPlugin": "gzip",
  GzipPlugin: "gzip",
  "scrapy.extensions.postprocessing.BrotliPlugin": "brotli",
  BrotliPlugin: "brotli",
  "scrapy.extensions.postprocessing.ZstdPlugin": "zstd",
  ZstdPlugin: "zstd",
};

const FIXED_PARAMS = "%(name)s, %(job)s, %(time)s, %(batch_id)d, %(batch_time)s, %(shard)d";
const URI_PARAMS =
  `names a Python function, which a CrawlJob cannot run: the URI template takes the fixed parameters ${FIXED_PARAMS}; ` +
  "write any other fixed value into the URI itself, and remove this option";

/** What to write instead of a Scrapy feed option that has no direct equivalent. */
const HINTS: Record<string, string> = {
  uri_params: `Scrapy's uri_params ${URI_PARAMS}`,
  FEED_URI_PARAMS: `Scrapy's FEED_URI_PARAMS ${URI_PARAMS}`,
  item_filter:
    "Scrapy's item_filter is a Python class, which a CrawlJob cannot run: write itemFilter: [{field, exists | equals | notEquals | matches}] (every condition must hold), or itemTypes: [extract rule names] to filter by item class",
  FEED_STORAGE_S3_ACL: "write spec.storage.s3.acl (e.g. bucket-owner-full-control)",
  FEED_TEMPDIR: "the S3 spool folder is the runner's FEEDCRAWL_SPOOL_DIR environment variable",
  FEED_STORAGES: "storages are built in (s3://, file://, stdout:); custom storage classes cannot run in a CrawlJob",
  FEED_EXPORTERS: "exporters are built in (format: jsonlines, json, csv, xml); custom exporter classes cannot run",
  gzip_mtime: "Node's gzip header always has mtime 0 and no file name (reproducible files): remove this option",
  gzip_filename: "Node's gzip header always has mtime 0 and no file name (reproducible files): remove this option",
  bz2_compresslevel: "bz2 compression is not offered: use postprocessing [zstd] or [gzip] with compressionLevel",
  lzma_format: "LZMA/xz compression is not offered: use postprocessing [zstd] or [gzip] with compressionLevel",
  lzma_check: "LZMA/xz compression is not offered: use postprocessing [zstd] or [gzip] with compressionLevel",
  lzma_preset: "LZMA/xz compression is not offered: use postprocessing [zstd] or [gzip] with compressionLevel",
  lzma_filters: "LZMA/xz compression is not offered: use postprocessing [zstd] or [gzip] with compressionLevel",
  feed_options: "Scrapy's feed_options belong to a custom exporter: write the options at this level instead",
};

const EXPORT_KWARG_HINT = `has no equivalent; item_export_kwargs may hold ${Object.keys(EXPORT_KWARGS).join(", ")}`;

/** The hint for a feed option key validation does not know (its last path segment), or undefined. */
export function scrapyHint(key: string): string | undefined {
  if (key.startsWith("item_export_kwargs.")) return `Scrapy's ${key} ${EXPORT_KWARG_HINT}`;
  return HINTS[key];
}

/** Why a postprocessing entry is refused, naming what to write instead. */
export function postprocessingHint(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const name = value.split(".").pop()?.toLowerCase() ?? "";
  if (["lzmaplugin", "lzma", "xz"].includes(name))
    return "LZMA/xz compression is not offered (no well-kept streaming xz compressor for Node): use zstd (a similar ratio, much faster) or gzip";
  if (["bz2plugin", "bz2", "bzip2"].includes(name))
    return "bz2 compression is not offered (Node has no bzip2 and npm has no well-kept bzip2 compressor): use zstd or gzip";
  if (/[A-Z.]/.test(value))
    return `a custom plugin class cannot run in a CrawlJob: built in are gzip, brotli, zstd (Scrapy's GzipPlugin, BrotliPlugin, ZstdPlugin)`;
  return undefined;
}

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
    if ((key === "format" || key === "encoding" || key === "FEED_EXPORT_ENCODING") && typeof value === "string") {
      // Python codec names: "UTF-8", "Shift_JIS", "euc_jp" -> "utf-8", "shift_jis", "euc-jp".
      const lower = value.toLowerCase();
      out[KEYS[key] ?? key] = key === "format" || lower === "shift_jis" ? lower : lower.replaceAll("_", "-");
      continue;
    }
    // `fields: None` in Scrapy means every field: the same as leaving it out.
    if ((key === "fields" || key === "FEED_EXPORT_FIELDS") && value === null) continue;
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
