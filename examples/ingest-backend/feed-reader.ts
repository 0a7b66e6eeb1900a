// Streams one feed file as JSON lines: the object's bytes (S3 GetObject body
// or a local file) → sha256 + byte count → decompress (gzip/brotli/zstd, by
// feed.compression) → split into lines. Memory stays flat whatever the size.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { realpath } from "node:fs/promises";
import path from "node:path";
import { type Duplex, PassThrough, pipeline, type Readable, Transform } from "node:stream";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { parseS3Uri } from "../../lib/s3-uri.ts";
import { feedUnreadable, unprocessable } from "./errors.ts";
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
 * caller loading inside a transaction rolls the whole file back.
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
    if (err instanceof Error && err.name === "IngestError") throw err;
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
