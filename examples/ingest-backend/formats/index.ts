// One parser per feed format: text chunks in, items out, as they complete
// (nothing buffers a file). Each item carries the number stored as `line_no`
// (jsonlines: the physical line; json, csv, xml: the item's 1-based position
// in the file) and where it is, for error messages. A parser throws
// FeedDataError naming the line, item or record at the first bad byte.
import { parseCsv } from "./csv.ts";
import type { FeedParser } from "./item.ts";
import { parseJsonArray } from "./json.ts";
import { parseJsonLines } from "./jsonlines.ts";
import { parseXml } from "./xml.ts";

export type { FeedParser, FormatOptions, ParsedItem } from "./item.ts";
export { MAX_ITEM_CHARS } from "./item.ts";

const PARSERS: Record<string, FeedParser> = {
  jsonlines: parseJsonLines,
  jsonl: parseJsonLines,
  jl: parseJsonLines,
  json: parseJsonArray,
  csv: parseCsv,
  xml: parseXml,
};

/** The parser for a feed's `format`, or undefined for a format feedcrawl does not write. */
export function parserFor(format: string): FeedParser | undefined {
  return Object.hasOwn(PARSERS, format) ? PARSERS[format] : undefined;
}

export const FORMATS = Object.keys(PARSERS);
