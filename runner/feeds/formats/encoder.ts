// What every feed format implements: item -> text, plus the text that ends a file.
// The batch turns text into bytes in the feed's encoding.
import type { FeedOptions } from "../../../crds/schema/feeds.ts";

export type EncoderOptions = Pick<
  FeedOptions,
  "fields" | "indent" | "exportEmptyFields" | "csvDelimiter" | "csvIncludeHeader" | "xmlRootElement" | "xmlItemElement"
> & {
  /** Node's name for the output encoding: "utf8", "latin1" or "ascii". */
  encoding: TextEncoding;
};

export type TextEncoding = "utf8" | "latin1" | "ascii";

export interface ItemEncoder {
  readonly contentType: string;
  /** The text for one item, with whatever must precede it (header, separator). Throws UnserializableItemError. */
  item(fields: Readonly<Record<string, unknown>>): string;
  /** The text that ends the file; called once per file, also for an empty one. */
  end(): string;
}

/** An item that cannot be written (cyclic, too deep, a function, a character the encoding lacks…): dropped and counted. */
export class UnserializableItemError extends Error {
  override name = "UnserializableItemError";
}

/** Maps the spec's `encoding` to Node's name for it. */
export function textEncoding(encoding: string | undefined): TextEncoding {
  switch ((encoding ?? "utf-8").toLowerCase()) {
    case "latin1":
    case "iso-8859-1":
      return "latin1";
    case "ascii":
    case "us-ascii":
      return "ascii";
    default:
      return "utf8";
  }
}

/** Highest code unit the encoding can hold (JSON and XML escape the rest). */
export function maxCodeUnit(encoding: TextEncoding): number {
  return encoding === "utf8" ? 0xffff : encoding === "latin1" ? 0xff : 0x7f;
}
