// What every feed format implements: item -> text, plus the text that ends a file.
// The batch turns text into bytes in the feed's encoding (a Charset).
import iconv from "iconv-lite";
import type { FeedOptions } from "../../../crds/schema/feeds.ts";

export type EncoderOptions = Pick<
  FeedOptions,
  | "fields"
  | "indent"
  | "exportEmptyFields"
  | "csvDelimiter"
  | "csvIncludeHeader"
  | "csvQuoteChar"
  | "csvJoinMultivalued"
  | "xmlRootElement"
  | "xmlItemElement"
  | "sortKeys"
  | "ensureAscii"
> & {
  /** The output encoding. */
  encoding: Charset;
};

/** An output encoding: its name, which characters it holds, and text -> bytes. */
export interface Charset {
  /** The name written in the XML declaration (e.g. "utf-8", "iso-8859-1", "shift_jis"). */
  readonly name: string;
  /** Holds every Unicode character (UTF-8, UTF-16, GB18030): nothing to escape. */
  readonly unicode: boolean;
  /** Whether this code point can be written in the encoding. */
  fits(codePoint: number): boolean;
  /** A fresh text -> bytes converter for one file (stateful: a BOM only at the start). */
  newEncoder(): (text: string) => Buffer;
}

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

function nodeCharset(name: string, node: "utf8" | "latin1" | "ascii"): Charset {
  const max = node === "utf8" ? 0x10ffff : node === "latin1" ? 0xff : 0x7f;
  return {
    name,
    unicode: node === "utf8",
    fits: (cp) => cp <= max,
    newEncoder: () => (text) => Buffer.from(text, node),
  };
}

const UNICODE = new Set(["utf16", "utf16le", "utf16be", "gb18030"]);

/** An iconv-lite encoding; a character fits when it survives a round trip (cached per code point). */
function iconvCharset(name: string): Charset {
  const known = new Map<number, boolean>();
  const unicode = UNICODE.has(name.replace(/[^a-z0-9]/g, ""));
  return {
    name,
    unicode,
    fits(cp) {
      if (cp < 0x80 || unicode) return true;
      let ok = known.get(cp);
      if (ok === undefined) {
        const ch = String.fromCodePoint(cp);
        ok = iconv.decode(iconv.encode(ch, name), name) === ch;
        known.set(cp, ok);
      }
      return ok;
    },
    newEncoder() {
      // Python's "utf-16" writes a BOM (then little-endian); the explicit-endian ones do not.
      const encoder = iconv.getEncoder(name, { addBOM: name === "utf-16" });
      return (text) => encoder.write(text);
    },
  };
}

/** The spec's `encoding` (validated against FEED_ENCODINGS) as a Charset; utf-8 when absent. */
export function charset(encoding: string | undefined): Charset {
  const name = (encoding ?? "utf-8").toLowerCase();
  switch (name) {
    case "utf-8":
    case "utf8":
      return nodeCharset("utf-8", "utf8");
    case "latin1":
    case "iso-8859-1":
      return nodeCharset("iso-8859-1", "latin1");
    case "ascii":
    case "us-ascii":
      return nodeCharset("us-ascii", "ascii");
    default:
      if (!iconv.encodingExists(name)) throw new Error(`unknown encoding ${JSON.stringify(encoding)}`);
      return iconvCharset(name);
  }
}

/** Whether every code point of `text` fits; the first one that does not, else undefined. */
export function firstMisfit(text: string, cs: Charset): number | undefined {
  if (cs.unicode) return undefined;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp >= 0x80 && !cs.fits(cp)) return cp;
  }
  return undefined;
}
