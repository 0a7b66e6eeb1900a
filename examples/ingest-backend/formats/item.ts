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

export type FeedParser = (text: AsyncIterable<string>) => AsyncGenerator<ParsedItem>;

/** A longer item is refused rather than buffered (memory stays bounded). */
export const MAX_ITEM_CHARS = 16 * 1024 * 1024;
