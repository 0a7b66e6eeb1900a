// JSON Lines: one JSON object per line (Scrapy's JsonLinesItemExporter); `indent` does not apply.
import { type EncoderOptions, type ItemEncoder, maxCodeUnit } from "./encoder.ts";
import { jsonText, selectFields } from "./values.ts";

export function createJsonLinesEncoder(opts: EncoderOptions): ItemEncoder {
  const maxUnit = maxCodeUnit(opts.encoding);
  return {
    contentType: "application/x-ndjson",
    item: (fields) => jsonText(Object.fromEntries(selectFields(fields, opts)), undefined, maxUnit) + "\n",
    end: () => "",
  };
}
