// Decompressed bytes → text, in the feed's encoding. Which encoding: a byte
// order mark wins (UTF-8, UTF-16LE/BE); then the event's optional
// `feed.encoding` (the runner's `encoding` option, when the operator sends
// it); then, for XML, the `<?xml … encoding="…"?>` declaration the exporter
// always writes; else UTF-8. UTF-8 is decoded strictly (a bad byte is a data
// error naming where it is); other encodings go through iconv-lite, the
// library the exporter encodes with.
import iconv from "iconv-lite";
import { FeedDataError, unprocessable } from "./errors.ts";
import type { Feed } from "./webhook.ts";

/** Bytes looked at for a BOM and an XML declaration before decoding starts. */
const SNIFF_BYTES = 512;

/** Python's and Node's spellings to one iconv-lite name (`UTF_8` → `utf-8`, `cp1252` stays). */
function normalise(name: string): string {
  const lower = name.trim().toLowerCase().replaceAll("_", "-");
  return lower === "utf8" ? "utf-8" : lower;
}

/** 422 before any byte is read when the event names an encoding nobody can decode. */
export function checkEncoding(feed: Feed): void {
  if (feed.encoding === undefined) return;
  if (!iconv.encodingExists(normalise(feed.encoding))) {
    throw unprocessable(`Feed ${feed.uri} has encoding "${feed.encoding}", which this backend cannot decode`);
  }
}

/** The encoding to decode with, and how many leading bytes (a BOM) to skip. */
function pickEncoding(feed: Feed, head: Buffer): { name: string; skip: number } {
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) return { name: "utf-8", skip: 3 };
  if (head[0] === 0xff && head[1] === 0xfe) return { name: "utf-16le", skip: 2 };
  if (head[0] === 0xfe && head[1] === 0xff) return { name: "utf-16be", skip: 2 };
  if (feed.encoding) return { name: normalise(feed.encoding), skip: 0 };
  if (feed.format === "xml") {
    // XML 1.0 appendix F: `<?` in UTF-16 without a BOM (the exporter's utf-16le / utf-16be).
    if (head[0] === 0x3c && head[1] === 0x00 && head[2] === 0x3f && head[3] === 0x00)
      return { name: "utf-16le", skip: 0 };
    if (head[0] === 0x00 && head[1] === 0x3c && head[2] === 0x00 && head[3] === 0x3f)
      return { name: "utf-16be", skip: 0 };
    const declared = /^\s*<\?xml[^>]*\sencoding\s*=\s*["']([A-Za-z0-9._-]+)["']/.exec(head.toString("latin1"));
    if (declared?.[1] && iconv.encodingExists(normalise(declared[1]))) return { name: normalise(declared[1]), skip: 0 };
  }
  return { name: "utf-8", skip: 0 };
}

interface Decoder {
  write(bytes: Buffer, offset: number): string;
  end(offset: number): string;
}

function decoderFor(feed: Feed, name: string): Decoder {
  if (name === "utf-8") {
    const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    // TextDecoder does not say where: the bad byte is in this chunk (or ends the one before).
    const guard = (run: () => string, from: number, to: number) => {
      try {
        return run();
      } catch {
        const where = `in decompressed bytes ${Math.max(from - 3, 0)}–${to}`;
        throw new FeedDataError(`is not valid UTF-8 ${where}${feed.encoding ? "" : hint(feed)}`);
      }
    };
    return {
      write: (bytes, offset) => guard(() => utf8.decode(bytes, { stream: true }), offset, offset + bytes.length),
      end: (offset) => guard(() => utf8.decode(), offset, offset),
    };
  }
  const decoder = iconv.getDecoder(name, { stripBOM: false });
  return { write: (bytes) => decoder.write(bytes), end: () => decoder.end() ?? "" };
}

function hint(feed: Feed): string {
  return feed.format === "xml"
    ? ""
    : ' (a feed written in another encoding needs "encoding" in the webhook event, or a BOM)';
}

/** The feed's text, chunk by chunk, whatever its encoding: memory stays that of one chunk. */
export async function* decodeText(bytes: AsyncIterable<Buffer>, feed: Feed): AsyncGenerator<string> {
  let decoder: Decoder | undefined;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let offset = 0;
  const start = (): Decoder => {
    const head = Buffer.concat(pending);
    const { name, skip } = pickEncoding(feed, head);
    pending = [head.subarray(skip)];
    offset = skip;
    return decoderFor(feed, name);
  };
  const drain = function* (d: Decoder): Generator<string> {
    for (const chunk of pending) {
      const text = d.write(chunk, offset);
      offset += chunk.length;
      if (text) yield text;
    }
    pending = [];
  };
  for await (const chunk of bytes) {
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (!decoder && pendingBytes < SNIFF_BYTES) continue;
    decoder ??= start();
    yield* drain(decoder);
  }
  decoder ??= start();
  yield* drain(decoder);
  const tail = decoder.end(offset);
  if (tail) yield tail;
}
