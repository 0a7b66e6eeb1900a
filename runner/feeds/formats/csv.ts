// CSV through csv-stringify (RFC 4180 quoting, CRLF rows like Python's csv module).
// Header: the `fields` option, else the first item's fields (later extra fields are
// dropped, as in Scrapy's CsvItemExporter). A list of strings is one cell joined with
// `csvJoinMultivalued` (Scrapy's join_multivalued, ","); other nested values are JSON.
import { stringify } from "csv-stringify/sync";
import { type EncoderOptions, firstMisfit, type ItemEncoder, UnserializableItemError } from "./encoder.ts";
import { selectFields } from "./values.ts";

function cell(value: unknown, join: string): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  // Scrapy's _join_if_needed: ",".join(value) works only when every element is a string.
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value.join(join);
  return JSON.stringify(value);
}

export function createCsvEncoder(opts: EncoderOptions): ItemEncoder {
  const delimiter = opts.csvDelimiter ?? ",";
  const quote = opts.csvQuoteChar ?? '"';
  const join = opts.csvJoinMultivalued ?? ",";
  const includeHeader = opts.csvIncludeHeader ?? true;
  let header: string[] | undefined = opts.fields && opts.fields.length > 0 ? [...opts.fields] : undefined;
  let wroteHeader = false;
  // Python's csv doubles the quote character inside a quoted cell (doublequote=True).
  const row = (cells: string[]) => stringify([cells], { delimiter, quote, escape: quote, record_delimiter: "windows" });
  const headerRow = (names: string[] | undefined) => (includeHeader && names ? row(names) : "");
  return {
    contentType: "text/csv",
    item(fields) {
      const selected = new Map(selectFields(fields, { fields: header, exportEmptyFields: true }));
      // Nothing is committed (header chosen, header written) until the item is known to be writable.
      const names = header ?? [...selected.keys()];
      const text = (wroteHeader ? "" : headerRow(names)) + row(names.map((name) => cell(selected.get(name), join)));
      const misfit = firstMisfit(text, opts.encoding);
      if (misfit !== undefined) {
        throw new UnserializableItemError(
          `a character the feed's encoding cannot hold (U+${misfit.toString(16).toUpperCase().padStart(4, "0")})`,
        );
      }
      header = names;
      wroteHeader = true;
      return text;
    },
    // An empty file still carries the header when the fields are known.
    end: () => (wroteHeader ? "" : headerRow(header)),
  };
}
