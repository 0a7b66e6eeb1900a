// Streams one feed file as items: the object's bytes (S3 GetObject body or a
// local file) → sha256 + byte count → decompress (gzip/brotli/zstd, by
// feed.compression) → decode (decode.ts) → parse by feed.format (formats/:
// jsonlines, json, csv in the event's delimiter and quote, xml). Memory stays
// flat whatever the size. Before that, `canonicalFeed` gives every spelling of
// one file one URI (the dedupe key), and every item is checked to hold only
// what PostgreSQL can store (no NUL, no lone surrogate): such a file is 422,
// never retried. A headerless CSV is 422 before any byte is read.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { realpath } from "node:fs/promises";
import path from "node:path";
import { type Duplex, PassThrough, pipeline, type Readable } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import zlib from "node:zlib";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { parseS3Uri } from "../../lib/s3-uri.ts";
import { checkEncoding, decodeText } from "./decode.ts";
import { FeedDataError, feedUnreadable, IngestError, unprocessable } from "./errors.ts";
import { csvRefusal } from "./formats/csv.ts";
import { type FeedParser, FORMATS, parserFor } from "./formats/index.ts";
import type { Feed } from "./webhook.ts";

export interface FeedSources {
  s3: S3Client;
  /** `file://` feeds are read only under this folder; unset: refused. */
  fileFeedsRoot?: string;
}

export interface FeedLine {
  /** jsonlines: the 1-based physical line (blank lines skipped but counted); json, csv, xml: the item's 1-based position. */
  lineNo: number;
  /** The item's JSON text, checked to be a JSON object. */
  json: string;
}

/** Refuses, before any byte is read, what this backend cannot load (422: retrying cannot help). */
export function checkLoadable(feed: Feed, sources: FeedSources): void {
  if (!parserFor(feed.format)) {
    throw unprocessable(`Feed ${feed.uri} has format "${feed.format}": this backend loads ${FORMATS.join(", ")} feeds`);
  }
  decompressors(feed);
  checkEncoding(feed);
  const refusal = feed.format === "csv" ? csvRefusal(feed) : undefined;
  if (refusal) throw unprocessable(`Feed ${feed.uri} ${refusal}`);
  if (feed.uri.startsWith("s3://")) return;
  if (feed.uri.startsWith("file:") && sources.fileFeedsRoot) return;
  throw unprocessable(
    feed.uri.startsWith("file:")
      ? `Feed ${feed.uri} is a local file and FILE_FEEDS_ROOT is not set`
      : `Feed ${feed.uri} has an unsupported scheme (s3:// or file://)`,
  );
}

/** The decompression chain for `feed.compression` ("gzip", "zstd", "gzip+zstd", "none"…), outermost last. */
function decompressors(feed: Feed): (() => Duplex)[] {
  const names = (feed.compression ?? "").split(/[+,\s]+/).filter((n) => n && n !== "none" && n !== "identity");
  return names.reverse().map((name) => {
    switch (name) {
      case "gzip":
        return () => zlib.createGunzip();
      case "brotli":
      case "br":
        return () => zlib.createBrotliDecompress();
      case "zstd":
        return () => zlib.createZstdDecompress();
      default:
        throw unprocessable(`Feed ${feed.uri} has compression "${name}": expected gzip, brotli or zstd`);
    }
  });
}

function s3Location(feed: Feed): { bucket: string; key: string } {
  if (feed.bucket && feed.key) return { bucket: feed.bucket, key: feed.key };
  try {
    return parseS3Uri(feed.uri);
  } catch (err) {
    throw unprocessable(`Feed ${feed.uri}: ${(err as Error).message}`);
  }
}

/**
 * An S3 key with its `.` and empty segments dropped (`a/./b`, `a//b`, `/a/b`
 * → `a/b`). S3 itself compares keys as strings, but a POSIX-backed gateway
 * serves `a/./b` and `a/b` as one file, so the backend reads and records the
 * canonical key: a spelling that names another object on a real S3 then
 * fails the sha256 check (502) instead of loading twice. `..` is refused.
 */
function canonicalKey(uri: string, key: string): string {
  const segments = key.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.includes("..")) throw unprocessable(`Feed ${uri}: an S3 key with a ".." segment is refused`);
  if (segments.length === 0) throw unprocessable(`Feed ${uri}: the S3 key is empty`);
  return segments.join("/");
}

async function canonicalFile(feed: Feed, root: string): Promise<string> {
  let file: string;
  try {
    // Decodes percent-encoding and drops `.` and empty segments; an encoded `/` is refused.
    file = path.resolve(fileURLToPath(feed.uri));
  } catch (err) {
    throw unprocessable(`Feed ${feed.uri} is not a usable file:// URI: ${(err as Error).message}`);
  }
  try {
    file = await realpath(file);
  } catch (err) {
    throw feedUnreadable(`Feed ${feed.uri} could not be read: ${(err as Error).message}`, err);
  }
  const realRoot = await realpath(root);
  if (file !== realRoot && !file.startsWith(realRoot + path.sep)) {
    throw unprocessable(`Feed ${feed.uri} is outside FILE_FEEDS_ROOT`);
  }
  return pathToFileURL(file).href;
}

/**
 * The feed with its one canonical URI, which is the dedupe key (`items`'
 * unique feed_uri + line_no) and what is read: `file:///feeds/./x`,
 * `file:///feeds//x` and `file:///feeds/%78` are `file:///feeds/x` (symlinks
 * resolved); `s3://b/a/./k` is `s3://b/a/k`, from the event's bucket and key.
 */
export async function canonicalFeed(feed: Feed, sources: FeedSources): Promise<Feed> {
  if (feed.uri.startsWith("s3://")) {
    const { bucket, key } = s3Location(feed);
    const canonical = canonicalKey(feed.uri, key);
    return { ...feed, uri: `s3://${bucket}/${canonical}`, bucket, key: canonical };
  }
  return { ...feed, uri: await canonicalFile(feed, sources.fileFeedsRoot as string) };
}

/** Strings PostgreSQL cannot store in text or jsonb: a NUL character, or a UTF-16 surrogate without its pair. */
function unstorable(value: unknown): string | undefined {
  if (typeof value === "string") {
    if (value.includes("\0")) return "a NUL character (\\u0000)";
    return value.isWellFormed() ? undefined : "a lone UTF-16 surrogate";
  }
  if (value === null || typeof value !== "object") return undefined;
  if (Array.isArray(value)) {
    for (const item of value) {
      const why = unstorable(item);
      if (why) return why;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    const why = unstorable(key) ?? unstorable(item);
    if (why) return why;
  }
  return undefined;
}

async function openObject(feed: Feed, sources: FeedSources, signal: AbortSignal): Promise<Readable> {
  if (feed.uri.startsWith("s3://")) {
    const { bucket, key } = s3Location(feed);
    try {
      const response = await sources.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), {
        abortSignal: signal,
      });
      return response.Body as Readable;
    } catch (err) {
      throw feedUnreadable(`Feed ${feed.uri} could not be read from S3: ${(err as Error).message}`, err);
    }
  }
  // file://: only below FILE_FEEDS_ROOT, after resolving symlinks.
  const root = await realpath(sources.fileFeedsRoot as string);
  let file: string;
  try {
    file = await realpath(fileURLToPath(feed.uri));
  } catch (err) {
    throw feedUnreadable(`Feed ${feed.uri} could not be read: ${(err as Error).message}`, err);
  }
  if (file !== root && !file.startsWith(root + path.sep)) {
    throw unprocessable(`Feed ${feed.uri} is outside FILE_FEEDS_ROOT`);
  }
  return createReadStream(file, { signal });
}

/** Resolves once `stream` can take more, or is gone. */
function writable(stream: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}

/**
 * Reads the whole object, measuring every byte, into `inlet` (the
 * decompressor's input) with backpressure. When decompression or parsing
 * failed (`inlet` destroyed) it keeps reading and measuring to the end, so
 * the verdict can tell a bad file (422) from an object that is not the one
 * announced (502). Rejects only when the object itself could not be read.
 */
async function pumpObject(raw: Readable, inlet: PassThrough, measure: (chunk: Buffer) => void): Promise<void> {
  try {
    for await (const chunk of raw as AsyncIterable<Buffer>) {
      measure(chunk);
      if (!inlet.destroyed && !inlet.write(chunk)) await writable(inlet);
    }
    if (!inlet.destroyed) inlet.end();
  } catch (err) {
    inlet.destroy(err as Error);
    throw err;
  }
}

/** 502 unless the object read is, byte for byte, the one the webhook announced. */
function checkAnnounced(feed: Feed, bytes: number, digest: string): void {
  if (bytes !== feed.bytes) {
    throw feedUnreadable(`Feed ${feed.uri} has ${bytes} bytes stored, the webhook announced ${feed.bytes}`);
  }
  if (feed.sha256 && digest !== feed.sha256) {
    throw feedUnreadable(`Feed ${feed.uri} has sha256 ${digest}, the webhook announced ${feed.sha256}`);
  }
}

/**
 * The feed's items, in order. Throws 422 at an item PostgreSQL can never
 * store, and at bad data — a stream that does not decompress (a truncated
 * gzip), bytes invalid in the encoding, a line/item/record that does not
 * parse, naming it — when the stored object is exactly what the webhook
 * announced: the runner wrote it so, and no retry can help. Throws 502 when
 * the object cannot be read, or its size or sha256 differs from the
 * announcement (checked after the last byte, so a caller loading inside a
 * transaction rolls the whole file back).
 */
export async function* feedLines(feed: Feed, sources: FeedSources, signal: AbortSignal): AsyncGenerator<FeedLine> {
  const parse = parserFor(feed.format) as FeedParser;
  const chain = decompressors(feed);
  const raw = await openObject(feed, sources, signal);
  const hash = createHash("sha256");
  let bytes = 0;
  const inlet = new PassThrough();
  const decoded = new PassThrough();
  // pipeline destroys every stage with the first error, so iterating `decoded` throws it.
  pipeline([inlet, ...chain.map((make) => make()), decoded], () => {});
  const pumped = pumpObject(raw, inlet, (chunk) => {
    hash.update(chunk);
    bytes += chunk.length;
  }).then(
    () => undefined,
    (err: Error) => err,
  );
  const verdict = async () => {
    const readError = await pumped;
    if (readError) throw feedUnreadable(`Feed ${feed.uri} could not be read: ${readError.message}`, readError);
    checkAnnounced(feed, bytes, hash.digest("hex"));
  };
  try {
    for await (const item of parse(decodeText(decoded as AsyncIterable<Buffer>, feed), feed)) {
      const why = unstorable(item.value);
      if (why) throw unprocessable(`Feed ${feed.uri} ${item.where} holds ${why}, which PostgreSQL cannot store`);
      yield { lineNo: item.lineNo, json: item.json };
    }
  } catch (err) {
    if (err instanceof IngestError) throw err;
    // Stop decompressing; the pump reads the rest of the object into the hash.
    inlet.destroy();
    await verdict();
    const what = err instanceof FeedDataError ? "" : "could not be decompressed: ";
    throw unprocessable(`Feed ${feed.uri} ${what}${(err as Error).message}`);
  } finally {
    // Also when the consumer stops early: no open S3 connection or file handle is left behind.
    raw.destroy();
    inlet.destroy();
    decoded.destroy();
  }
  await verdict();
}
