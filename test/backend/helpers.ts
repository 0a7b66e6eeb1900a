// Helpers for the reference backend's tests: build feed objects the way the
// runner stores them, and call the backend the way the operator does (signed
// with the delivery engineer's own signer, so both sides must agree).
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import zlib from "node:zlib";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { request } from "undici";
import { signatureHeaders, webhookSigner } from "../../operator/delivery/signing.ts";

export const SECRET = `whsec_${Buffer.from("feedcrawl-backend-test-secret-32b").toString("base64")}`;

export interface TestItem {
  id: number;
  title: string;
  price: number;
  tags: string[];
}

/** Items with the characters COPY's text format must escape (tab, backslash, newline, quotes, unicode). */
export function makeItems(count: number, offset = 0): TestItem[] {
  return Array.from({ length: count }, (_, i) => {
    const id = offset + i + 1;
    return {
      id,
      title: `Book ${id}\twith "quotes" \\ back\\slash\nand é ünïcode 📚`,
      price: id * 1.5,
      tags: [`t${id % 3}`],
    };
  });
}

export type Compression = "gzip" | "brotli" | "zstd" | "none";

/** The stored object of a jsonlines feed: compressed bytes, their sha256 and size. */
export function feedObject(items: unknown[], compression: Compression = "gzip") {
  const text = Buffer.from(items.map((item) => `${JSON.stringify(item)}\n`).join(""));
  const body =
    compression === "gzip"
      ? zlib.gzipSync(text)
      : compression === "brotli"
        ? zlib.brotliCompressSync(text)
        : compression === "zstd"
          ? zlib.zstdCompressSync(text)
          : text;
  return { body, sha256: createHash("sha256").update(body).digest("hex"), bytes: body.length };
}

export async function putFeed(s3: S3Client, bucket: string, key: string, body: Buffer): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

export function feedPayload(
  uri: string,
  object: { sha256: string; bytes: number },
  items: number,
  compression: Compression = "gzip",
  batchId = 1,
) {
  const s3 = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  return {
    uri,
    ...(s3 ? { bucket: s3[1], key: s3[2] } : {}),
    format: "jsonlines",
    ...(compression === "none" ? {} : { compression }),
    items,
    bytes: object.bytes,
    sha256: object.sha256,
    batchId,
    shard: 0,
  };
}

export const JOB = { namespace: "crawl", name: "books", uid: "6b1e6c1a-0000-4000-8000-000000000001" };

export function feedClosed(id: string, feed: ReturnType<typeof feedPayload>) {
  return { type: "feed.closed", id, crawlJob: JOB, feed };
}

export interface Delivery {
  status: number;
  body: Record<string, unknown>;
}

/** POSTs `body` (an object, or raw text) signed as the operator signs it. */
export async function deliver(
  url: string,
  webhookId: string,
  body: unknown,
  options: { secret?: string; timestamp?: Date; signature?: string } = {},
): Promise<Delivery> {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const signer = webhookSigner(new TextEncoder().encode(options.secret ?? SECRET));
  const headers = signatureHeaders(signer, webhookId, options.timestamp ?? new Date(), text);
  if (options.signature) headers["webhook-signature"] = options.signature;
  const response = await request(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: text,
  });
  return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> };
}

/** Resolves with the URL a backend child process logs once it listens. */
export function listening(child: ChildProcess): Promise<string> {
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`backend exited with ${code} before listening`)));
    lines.on("line", (line) => {
      const entry = JSON.parse(line) as { msg?: string; url?: string };
      if (entry.msg === "Ingest backend is listening") resolve(String(entry.url));
    });
  });
}

/** Samples a process's RSS until stopped; `growth()` is the peak above the first sample, in bytes. */
export function sampleRss(pid: number, everyMs = 20): { growth(): number; stop(): void } {
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) * 1024;
  const baseline = rss();
  let peak = baseline;
  const timer = setInterval(() => {
    peak = Math.max(peak, rss());
  }, everyMs);
  return { growth: () => peak - baseline, stop: () => clearInterval(timer) };
}
