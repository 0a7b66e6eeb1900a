// A JSON array per file. Every file is a complete array: the batch always writes
// the end, also when a stop interrupts the crawl, and an empty file is `[]`.
import type { EncoderOptions, ItemEncoder } from "./encoder.ts";
import { jsonText, selectFields } from "./values.ts";

export function createJsonEncoder(opts: EncoderOptions): ItemEncoder {
  let count = 0;
  return {
    contentType: "application/json",
    item(fields) {
      const text = jsonText(Object.fromEntries(selectFields(fields, opts)), opts, opts.encoding);
      return (count++ === 0 ? "[\n" : ",\n") + text;
    },
    end: () => (count === 0 ? "[]\n" : "\n]\n"),
  };
}
