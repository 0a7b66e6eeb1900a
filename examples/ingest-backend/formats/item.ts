// What every format parser yields (see index.ts).

export interface ParsedItem {
  /** The item's number in the file: the `line_no` column, unique per feed. */
  lineNo: number;
  /** Where it is, for messages: `line 7`, `item 3 (line 12)`, `record 4`. */
  where: string;
  /** The item (a plain object). */
  value: Record<string, unknown>;
  /** Its JSON text, as stored. */
  json: string;
}

/** The event's format options a parser reads (absent: the exporter's defaults). */
export interface FormatOptions {
  /** CSV: the field delimiter (default `,`). */
  csvDelimiter?: string | undefined;
  /** CSV: the quote character, doubled inside a quoted cell (default `"`). */
  csvQuoteChar?: string | undefined;
}

export type FeedParser = (text: AsyncIterable<string>, options?: FormatOptions) => AsyncGenerator<ParsedItem>;

/** A longer item is refused rather than buffered (memory stays bounded). */
export const MAX_ITEM_CHARS = 16 * 1024 * 1024;
