// JSON Lines: one JSON object per line (Scrapy's JsonLinesItemExporter); `indent` does not apply.
import type { EncoderOptions, ItemEncoder } from "./encoder.ts";
import { jsonText, selectFields } from "./values.ts";

export function createJsonLinesEncoder(opts: EncoderOptions): ItemEncoder {
  const style = { sortKeys: opts.sortKeys, ensureAscii: opts.ensureAscii };
  return {
    contentType: "application/x-ndjson",
    item: (fields) => jsonText(Object.fromEntries(selectFields(fields, opts)), style, opts.encoding) + "\n",
    end: () => "",
  };
}
