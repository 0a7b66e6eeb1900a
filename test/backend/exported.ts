// Feed files written by the runner's real exporter (runner/feeds), and the
// webhook events the operator's own code builds for them: what the reference
// backend must load, in every format feedcrawl writes.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";
import { pino } from "pino";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { FeedOptions } from "../../crds/schema/feeds.ts";
import { crawlCompletedEvent, feedClosedEvent } from "../../operator/delivery/payload.ts";
import { createFeedExporter } from "../../runner/feeds/exporter.ts";
import { platform } from "../platform/env.ts";
import { JOB } from "./helpers.ts";

/**
 * Writes `items` through one feed and returns its closed files (one per
 * batch): `file://dir/name`, or with `bucket` `s3://bucket/name` on the
 * platform's S3 server (the spool under `dir`).
 */
export async function exportFeed(
  dir: string,
  name: string,
  options: FeedOptions,
  items: Record<string, unknown>[],
  bucket?: string,
): Promise<FeedClosed[]> {
  const closed: FeedClosed[] = [];
  const s3 = platform().s3;
  const exporter = await createFeedExporter({
    feeds: { [bucket ? `s3://${bucket}/${name}` : `file://${join(dir, name)}`]: options },
    ...(bucket
      ? {
          storage: { s3: { endpoint: s3.endpoint, region: s3.region, forcePathStyle: true } },
          s3: { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
        }
      : {}),
    params: { name: "books", job: "books-job", shard: 0, time: new Date("2026-12-01T10:00:00Z") },
    logger: pino({ level: "silent" }),
    onFeedClosed: async (ev) => {
      closed.push(ev);
    },
    spool: { dir: join(dir, ".spool") },
  });
  for (const fields of items) await exporter.write({ type: "book", fields });
  await exporter.close("finished");
  return closed;
}

/** The feed.closed event the operator sends for one file, and its webhook-id. */
export function closedEvent(spec: FeedClosed, extra: Record<string, unknown> = {}) {
  const event = feedClosedEvent(JOB, spec);
  return { id: event.id, event: { ...event, feed: { ...event.feed, ...extra } } };
}

/** The crawl.completed event for these files (mode: onCompletion). */
export function completedEvent(specs: FeedClosed[]) {
  const event = crawlCompletedEvent(JOB, undefined, specs);
  return { id: event.id, event };
}

/** A stored file's decompressed bytes (postprocessing applied in order, undone in reverse). */
export function plainBytes(spec: FeedClosed): Buffer {
  let body = readFileSync(fileURLToPath(spec.uri));
  const steps = (spec.compression ?? "none").split(/[+,]/).filter((s) => s !== "none");
  for (const step of steps.reverse()) {
    body =
      step === "gzip"
        ? zlib.gunzipSync(body)
        : step === "brotli"
          ? zlib.brotliDecompressSync(body)
          : zlib.zstdDecompressSync(body);
  }
  return body;
}

/** Items with what each format must carry: commas, quotes, newlines, tabs, backslashes, unicode, lists, objects. */
export function richItems(count: number, offset = 0): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, i) => {
    const id = offset + i + 1;
    return {
      id,
      title: `Book ${id}, "quoted"\nsecond line\twith tab \\ back\\slash é 📚 <b>&amp;</b>`,
      price: id * 1.5,
      tags: [`t${id % 3}`, "x y"],
      dims: { w: id, unit: "cm" },
      note: id % 4 === 0 ? null : `n${id}`,
    };
  });
}

/** A value as text, the way CSV and XML carry scalars. */
const text = (v: unknown) => (v === null || v === undefined ? "" : String(v));

/**
 * What the backend stores for `item` in `format` (docs/backend.md, "Formats"):
 * JSON formats keep the item; CSV gives header → cell text (a list of strings
 * joined with ",", another nested value as its JSON); XML gives strings, lists
 * as arrays, objects as objects.
 */
export function storedAs(format: string, item: Record<string, unknown>): unknown {
  if (format === "jsonlines" || format === "json") return item;
  if (format === "csv") {
    return Object.fromEntries(
      Object.entries(item).map(([k, v]) => [
        k,
        Array.isArray(v) && v.every((s) => typeof s === "string")
          ? v.join(",")
          : v !== null && typeof v === "object"
            ? JSON.stringify(v)
            : text(v),
      ]),
    );
  }
  const xml = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(xml)
      : v !== null && typeof v === "object"
        ? Object.fromEntries(Object.entries(v).map(([k, w]) => [k, xml(w)]))
        : text(v);
  return xml(item);
}
