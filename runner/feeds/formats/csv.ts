// CSV through csv-stringify (RFC 4180 quoting, CRLF rows like Python's csv module).
// Header: the `fields` option, else the first item's fields (later extra fields are
// dropped, as in Scrapy's CsvItemExporter). Nested values are JSON-encoded.
import { stringify } from "csv-stringify/sync";
import { type EncoderOptions, type ItemEncoder, maxCodeUnit, UnserializableItemError } from "./encoder.ts";
import { selectFields } from "./values.ts";

function cell(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

export function createCsvEncoder(opts: EncoderOptions): ItemEncoder {
  const maxUnit = maxCodeUnit(opts.encoding);
  const delimiter = opts.csvDelimiter ?? ",";
  const includeHeader = opts.csvIncludeHeader ?? true;
  let header: string[] | undefined = opts.fields && opts.fields.length > 0 ? [...opts.fields] : undefined;
  let wroteHeader = false;
  const row = (cells: string[]) => stringify([cells], { delimiter, record_delimiter: "windows" });
  const headerRow = (names: string[] | undefined) => (includeHeader && names ? row(names) : "");
  return {
    contentType: "text/csv",
    item(fields) {
      const selected = new Map(selectFields(fields, { fields: header, exportEmptyFields: true }));
      // Nothing is committed (header chosen, header written) until the item is known to be writable.
      const names = header ?? [...selected.keys()];
      const text = (wroteHeader ? "" : headerRow(names)) + row(names.map((name) => cell(selected.get(name))));
      if (maxUnit < 0xffff) {
        for (let i = 0; i < text.length; i++) {
          if (text.charCodeAt(i) > maxUnit) {
            throw new UnserializableItemError(
              `a character the feed's encoding cannot hold (U+${text.charCodeAt(i).toString(16).toUpperCase().padStart(4, "0")})`,
            );
          }
        }
      }
      header = names;
      wroteHeader = true;
      return text;
    },
    // An empty file still carries the header when the fields are known.
    end: () => (wroteHeader ? "" : headerRow(header)),
  };
}
