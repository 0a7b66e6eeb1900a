// CSV as the exporter writes it (RFC 4180, CRLF rows, a header first; `,` and
// `"` unless the event names the feed's csvDelimiter / csvQuoteChar), streamed
// through csv-parse. A row becomes the object header → cell text: every value
// a string, an empty cell "" (the exporter writes null, a missing field and ""
// alike). CSV has no types, so nothing is guessed:
// "12.5" stays a string, a list the exporter joined with "," stays that one
// string (a title may hold a comma too), a nested object stays its JSON text.
import { Readable } from "node:stream";
import { CsvError, parse } from "csv-parse";
import { FeedDataError } from "../errors.ts";
import type { FormatOptions, ParsedItem } from "./item.ts";

/**
 * Why a CSV feed with these event fields cannot be loaded, or undefined. A
 * file without a header line has no names for its cells (the event does not
 * carry the feed's `fields`), so its rows cannot become key/value items.
 */
export function csvRefusal(feed: FormatOptions & { csvHeader?: boolean | undefined }): string | undefined {
  if (feed.csvHeader === false) {
    return "is a CSV without a header line (the feed's csvIncludeHeader is false): its cells have no field names to load as items; set csvIncludeHeader: true on the feed";
  }
  if ((feed.csvDelimiter ?? ",") === (feed.csvQuoteChar ?? '"')) {
    return `has one character, ${JSON.stringify(feed.csvDelimiter ?? ",")}, as both its CSV delimiter and quote`;
  }
  return undefined;
}

function header(names: string[]): string[] {
  const seen = new Set<string>();
  for (const name of names) {
    if (name === "") throw new FeedDataError(`has an empty column name in its header (line 1)`);
    if (seen.has(name)) throw new FeedDataError(`has the column ${JSON.stringify(name)} twice in its header (line 1)`);
    seen.add(name);
  }
  return names;
}

/**
 * The text as UTF-8 bytes for csv-parse, which joins a cell's bytes across
 * chunks. A chunk never ends inside a surrogate pair (it would become U+FFFD).
 */
async function* utf8(text: AsyncIterable<string>): AsyncGenerator<Buffer> {
  let carry = "";
  for await (const chunk of text) {
    let whole = carry + chunk;
    carry = "";
    const last = whole.charCodeAt(whole.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) {
      carry = whole.slice(-1);
      whole = whole.slice(0, -1);
    }
    if (whole) yield Buffer.from(whole, "utf8");
  }
  if (carry) yield Buffer.from(carry, "utf8");
}

export async function* parseCsv(text: AsyncIterable<string>, options: FormatOptions = {}): AsyncGenerator<ParsedItem> {
  // The exporter doubles the quote character inside a quoted cell (Python's doublequote).
  const quote = options.csvQuoteChar ?? '"';
  const delimiter = options.csvDelimiter ?? ",";
  const parser = parse({
    delimiter,
    quote,
    escape: quote,
    relax_column_count: false,
    skip_empty_lines: false,
    bom: true,
  });
  const source = Readable.from(utf8(text), { objectMode: false });
  // An error upstream (decompression, decoding) ends the parser with it, so iterating throws it.
  source.on("error", (err) => parser.destroy(err));
  source.pipe(parser);
  let columns: string[] | undefined;
  let recordNo = 0;
  try {
    for await (const record of parser as AsyncIterable<string[]>) {
      if (!columns) {
        columns = header(record);
        continue;
      }
      recordNo += 1;
      const where = `record ${recordNo}`;
      const value: Record<string, unknown> = Object.create(null); // a "__proto__" column is a key like any other
      for (const [i, name] of columns.entries()) value[name] = record[i];
      yield { lineNo: recordNo, where, value, json: JSON.stringify(value) };
    }
  } catch (err) {
    if (err instanceof FeedDataError) throw err;
    // Every csv-parse data error (its codes are CSV_…, and INVALID_OPENING_QUOTE).
    if (err instanceof CsvError) {
      const { records } = err as { records?: number };
      // csv-parse counts the header among its records; its message names the line.
      const at = typeof records === "number" ? Math.max(records, 1) : recordNo + 1;
      throw new FeedDataError(`record ${at} is not valid CSV: ${(err as Error).message}`);
    }
    throw err;
  } finally {
    source.destroy();
  }
}
