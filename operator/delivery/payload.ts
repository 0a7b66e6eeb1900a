// The bulk-ingest webhook's bodies and ids (DESIGN.md "The bulk-ingest webhook").
// The webhook-id is derived from what the event is about, never from the
// attempt, so it is stable across retries and operator restarts: it is the
// backend's idempotency key.
import { createHash } from "node:crypto";
import type { CrawlFeedSpec } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { parseS3Uri, type S3Location } from "../../lib/s3-uri.ts";

interface CrawlJobRef {
  namespace: string;
  name: string;
  uid: string;
}

/** The CrawlJob as the events name it. */
export function crawlJobRef(job: CrawlJob): CrawlJobRef {
  return { namespace: job.metadata.namespace!, name: job.metadata.name!, uid: job.metadata.uid! };
}

interface FeedPayload {
  uri: string;
  bucket?: string;
  key?: string;
  format: string;
  compression?: string;
  /** The file's text encoding when not UTF-8. */
  encoding?: string;
  /** CSV: the delimiter when not `,`. */
  csvDelimiter?: string;
  /** CSV: the quote character when not `"`. */
  csvQuoteChar?: string;
  /** CSV: false when the file has no header line. */
  csvHeader?: boolean;
  items: number;
  bytes: number;
  sha256: string;
  batchId: number;
  shard: number;
}

interface FeedClosedEvent {
  type: "feed.closed";
  id: string;
  crawlJob: CrawlJobRef;
  feed: FeedPayload;
}

interface CrawlCompletedEvent {
  type: "crawl.completed";
  id: string;
  crawlJob: CrawlJobRef;
  manifest?: string;
  feeds: FeedPayload[];
}

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** `<crawljob uid>:<sha256(feed uri) hex>`: no `.` in it (the signed content is `id.timestamp.body`). */
export function feedWebhookId(jobUid: string, uri: string): string {
  return `${jobUid}:${sha256Hex(uri)}`;
}

/** One crawl.completed event per CrawlJob. */
export function completionWebhookId(jobUid: string): string {
  return `${jobUid}:completed`;
}

/** Bucket and key of an `s3://bucket/key` URI; undefined for other storages. */
export function s3Location(uri: string): S3Location | undefined {
  try {
    return parseS3Uri(uri);
  } catch {
    return undefined;
  }
}

function feedPayload(spec: CrawlFeedSpec): FeedPayload {
  return {
    uri: spec.uri,
    ...s3Location(spec.uri),
    format: spec.format,
    ...(spec.compression ? { compression: spec.compression } : {}),
    ...(spec.encoding ? { encoding: spec.encoding } : {}),
    ...(spec.csvDelimiter ? { csvDelimiter: spec.csvDelimiter } : {}),
    ...(spec.csvQuoteChar ? { csvQuoteChar: spec.csvQuoteChar } : {}),
    ...(spec.csvHeader === false ? { csvHeader: false } : {}),
    items: spec.items,
    bytes: spec.bytes,
    sha256: spec.sha256,
    batchId: spec.batchId,
    shard: spec.shard,
  };
}

export function feedClosedEvent(job: CrawlJobRef, spec: CrawlFeedSpec): FeedClosedEvent {
  return { type: "feed.closed", id: feedWebhookId(job.uid, spec.uri), crawlJob: job, feed: feedPayload(spec) };
}

/** Feeds in a stable order (shard, batch, uri), so every retry sends the same bytes. */
export function crawlCompletedEvent(
  job: CrawlJobRef,
  manifest: string | undefined,
  feeds: readonly CrawlFeedSpec[],
): CrawlCompletedEvent {
  const sorted = [...feeds].sort((a, b) => a.shard - b.shard || a.batchId - b.batchId || a.uri.localeCompare(b.uri));
  const event: CrawlCompletedEvent = {
    type: "crawl.completed",
    id: completionWebhookId(job.uid),
    crawlJob: job,
    feeds: [],
  };
  if (manifest) event.manifest = manifest;
  event.feeds = sorted.map(feedPayload);
  return event;
}
