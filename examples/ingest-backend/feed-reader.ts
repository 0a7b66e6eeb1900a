// Streams one feed file as JSON lines: the object's bytes (S3 GetObject body
// or a local file) → sha256 + byte count → decompress (gzip/brotli/zstd, by
// feed.compression) → split into lines. Memory stays flat whatever the size.
// Before that, `canonicalFeed` gives every spelling of one file one URI (the
// dedupe key), and every line is checked to hold only what PostgreSQL can
// store (no NUL, no lone surrogate): such a file is 422, never retried.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { realpath } from "node:fs/promises";
import path from "node:path";
import { type Duplex, PassThrough, pipeline, type Readable, Transform } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import zlib from "node:zlib";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { parseS3Uri } from "../../lib/s3-uri.ts";
import { feedUnreadable, IngestError, unprocessable } from "./errors.ts";
import type { Feed } from "./webhook.ts";

/** The formats whose objects are one JSON document per line. */
const JSON_LINES = new Set(["jsonlines", "jsonl", "jl"]);
/** A longer line is refused rather than buffered (memory stays bounded). */
const MAX_LINE_CHARS = 16 * 1024 * 1024;

export interface FeedSources {
  s3: S3Client;
  /** `file://` feeds are read only under this folder; unset: refused. */
  fileFeedsRoot?: string;
}

export interface FeedLine {
  /** 1-based physical line number in the decompressed file (blank lines are skipped but counted). */
  lineNo: number;
  /** The line's JSON text, checked to be a JSON object. */
  json: string;
}

/** Refuses, before any byte is read, what this backend cannot load (422: retrying cannot help). */
export function checkLoadable(feed: Feed, sources: FeedSources): void {
  if (!JSON_LINES.has(feed.format)) {
    throw unprocessable(`Feed ${feed.uri} has format "${feed.format}": this backend loads jsonlines feeds only`);
  }
  decompressors(feed);
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

/**
 * The feed's lines, in order. Throws (502) when the object cannot be read or
 * decompressed, a line is not a JSON object, or the stored object's size or
 * sha256 differs from what the webhook announced — after the last line, so a
 * caller loading inside a transaction rolls the whole file back — and (422)
 * at a line PostgreSQL can never store.
 */
export async function* feedLines(feed: Feed, sources: FeedSources, signal: AbortSignal): AsyncGenerator<FeedLine> {
  const chain = decompressors(feed);
  const raw = await openObject(feed, sources, signal);
  const hash = createHash("sha256");
  let bytes = 0;
  const measure = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
  });
  // pipeline destroys every stage with the first error, so iterating `decoded` throws it.
  const decoded = new PassThrough();
  pipeline([raw, measure, ...chain.map((make) => make()), decoded], () => {});

  let lineNo = 0;
  let rest = "";
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const emit = function* (text: string): Generator<FeedLine> {
    lineNo += 1;
    const line = text.endsWith("\r") ? text.slice(0, -1) : text;
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw feedUnreadable(`Feed ${feed.uri} line ${lineNo} is not JSON: ${(err as Error).message}`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw feedUnreadable(`Feed ${feed.uri} line ${lineNo} is not a JSON object`);
    }
    const why = unstorable(value);
    if (why) throw unprocessable(`Feed ${feed.uri} line ${lineNo} holds ${why}, which PostgreSQL cannot store`);
    yield { lineNo, json: line };
  };
  try {
    for await (const chunk of decoded as AsyncIterable<Buffer>) {
      const parts = (rest + decoder.decode(chunk, { stream: true })).split("\n");
      rest = parts.pop() as string;
      if (rest.length > MAX_LINE_CHARS)
        throw feedUnreadable(`Feed ${feed.uri} has a line over ${MAX_LINE_CHARS} chars`);
      for (const part of parts) yield* emit(part);
    }
    rest += decoder.decode();
    if (rest !== "") yield* emit(rest);
  } catch (err) {
    if (err instanceof IngestError) throw err;
    throw feedUnreadable(`Feed ${feed.uri} could not be read: ${(err as Error).message}`, err);
  } finally {
    // Also when the consumer stops early: no open S3 connection or file handle is left behind.
    decoded.destroy();
  }
  if (bytes !== feed.bytes) {
    throw feedUnreadable(`Feed ${feed.uri} has ${bytes} bytes stored, the webhook announced ${feed.bytes}`);
  }
  const digest = hash.digest("hex");
  if (feed.sha256 && digest !== feed.sha256) {
    throw feedUnreadable(`Feed ${feed.uri} has sha256 ${digest}, the webhook announced ${feed.sha256}`);
  }
}
