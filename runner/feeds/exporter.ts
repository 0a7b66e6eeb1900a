// The feed exporter: the crawl engine's ItemSink. Offers each item to every feed
// whose filter takes it, rolls batches over, stores them, and reports a batch as
// closed only after the storage confirmed the object.
import { rmdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Writable } from "node:stream";
import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import type { Logger } from "pino";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { Feeds, StorageSpec } from "../../crds/schema/feeds.ts";
import type { BackoffPolicy } from "../../lib/backoff.ts";
import { parseFeedLocation } from "../../spec/feed-location.ts";
import { validateFeeds } from "../../spec/feeds.ts";
import { formatUriTime, parseUriTemplate, renderUri, staticBatchPrefix } from "../../spec/uri-template.ts";
import type { Item, ItemSink } from "../item.ts";
import { type FeedFailed, type Manifest, manifestUri } from "./manifest.ts";
import { FeedSlot } from "./slot.ts";
import { Spool } from "./spool.ts";
import { createFileStorage } from "./storages/file.ts";
import { createS3Storage } from "./storages/s3.ts";
import { createStdoutStorage } from "./storages/stdout.ts";
import type { FeedStorage } from "./storages/types.ts";

export type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
export type { FeedFailed } from "./manifest.ts";

export interface FeedExporterOptions {
  feeds: Feeds;
  storage?: StorageSpec;
  params: { name: string /* spider name */; job: string /* CrawlJob name */; shard: number; time?: Date };
  logger: Logger;
  /** Awaited for every batch the storage confirmed (the runner creates the CrawlFeed here). */
  onFeedClosed?: (ev: FeedClosed) => Promise<void>;
  /** Awaited for every batch that could not be stored within the retry budget. */
  onFeedFailed?: (ev: FeedFailed) => Promise<void>;
  /** Feed URI template -> last reported batch id: numbering continues after it (Scrapy #5153). */
  resumeAfter?: Record<string, number>;
  s3?: {
    credentials?: S3ClientConfig["credentials"];
    client?: S3Client;
    backoff?: BackoffPolicy;
  };
  /**
   * Where S3 batches are spooled (default: $FEEDCRAWL_SPOOL_DIR or $TMPDIR/feedcrawl-spool, then <job>-<shard>)
   * and how much disk they may take (default: $FEEDCRAWL_SPOOL_MAX_BYTES or 1 GiB).
   */
  spool?: { dir?: string; maxBytes?: number };
  /** Where `stdout:` feeds write (tests). */
  stdout?: Writable;
}

export interface FeedExporter extends ItemSink {
  readonly closedFeeds: readonly FeedClosed[];
  readonly failedFeeds: readonly FeedFailed[];
  /** Set once the manifest is written (after close). */
  readonly manifestUri?: string;
  /** Items each feed dropped because they could not be serialised. */
  readonly itemsDropped: Readonly<Record<string, number>>;
  /**
   * Tears down without storing: open batches are discarded, uploads stopped. For a
   * process that must exit after a failure; `close` is the normal end.
   */
  abort(): Promise<void>;
}

const DEFAULT_SPOOL_BYTES = 1024 * 1024 * 1024;

export async function createFeedExporter(opts: FeedExporterOptions): Promise<FeedExporter> {
  const errors = validateFeeds(opts.feeds, opts.storage);
  if (errors.length > 0) {
    throw new Error(`Invalid feeds: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`);
  }
  const log = opts.logger.child({ subsystem: "feeds" });
  const startedAt = opts.params.time ?? new Date();
  const params = {
    name: opts.params.name,
    job: opts.params.job,
    shard: opts.params.shard,
    time: formatUriTime(startedAt),
  };
  // The pod gives the spool an emptyDir through FEEDCRAWL_SPOOL_DIR (a read-only root filesystem has no /tmp).
  const spoolRoot = process.env.FEEDCRAWL_SPOOL_DIR || path.join(os.tmpdir(), "feedcrawl-spool");
  const spool = new Spool(
    opts.spool?.dir ?? path.join(spoolRoot, `${params.job}-${params.shard}`.replace(/[^A-Za-z0-9._-]+/g, "_")),
    opts.spool?.maxBytes ?? (Number(process.env.FEEDCRAWL_SPOOL_MAX_BYTES) || DEFAULT_SPOOL_BYTES),
  );

  let s3: FeedStorage | undefined;
  let file: FeedStorage | undefined;
  let stdout: FeedStorage | undefined;
  const storageFor = (kind: "s3" | "file" | "stdout"): FeedStorage => {
    if (kind === "s3") {
      s3 ??= createS3Storage({
        spec: opts.storage?.s3,
        client: opts.s3?.client,
        credentials: opts.s3?.credentials,
        spool,
        logger: log,
        backoff: opts.s3?.backoff,
      });
      return s3;
    }
    if (kind === "file") {
      file ??= createFileStorage();
      return file;
    }
    stdout ??= createStdoutStorage(opts.stdout);
    return stdout;
  };

  const closedFeeds: FeedClosed[] = [];
  const failedFeeds: FeedFailed[] = [];
  const reportErrors: string[] = [];
  const slots: FeedSlot[] = [];
  for (const [template, options] of Object.entries(opts.feeds)) {
    const parsed = parseUriTemplate(template);
    const location = parseFeedLocation(template);
    slots.push(
      new FeedSlot({
        template,
        options,
        parsed,
        storage: storageFor(location.kind),
        params,
        lastBatchId: opts.resumeAfter?.[template] ?? 0,
        logger: log,
        events: {
          async closed(ev) {
            closedFeeds.push(ev);
            try {
              await opts.onFeedClosed?.(ev);
            } catch (err) {
              const message = `reporting ${ev.uri} failed: ${(err as Error).message}`;
              reportErrors.push(message);
              log.error({ uri: ev.uri, err }, "Feed closed event could not be reported");
            }
          },
          async failed(ev) {
            failedFeeds.push(ev);
            try {
              await opts.onFeedFailed?.(ev);
            } catch (err) {
              log.error({ uri: ev.uri, err }, "Feed failed event could not be reported");
            }
          },
        },
      }),
    );
  }

  // Every target is checked before the first item: a missing bucket fails the run now, not in an hour.
  for (const slot of slots) {
    const folder = renderUri(staticBatchPrefix(slot.parsed), { ...params, batch_id: 0, batch_time: "" });
    try {
      await slot.storage.check(folder || slot.template);
    } catch (err) {
      throw new Error(`Feed ${JSON.stringify(slot.template)}: ${(err as Error).message}`);
    }
  }

  const manifestSlot = slots.find((s) => parseFeedLocation(s.template).kind !== "stdout");
  let writtenManifest: string | undefined;
  let closing: Promise<void> | undefined;

  /** Past the spool budget: close batched S3 feeds' open batches and wait for their uploads to free space. */
  async function waitForSpool() {
    let warned = false;
    while (spool.full) {
      await Promise.all(slots.filter((s) => s.batched && s.hasOpenItems).map((s) => s.rollover()));
      if (!spool.full) return;
      // Only an unbatched feed's open file is left: nothing will free space before the end.
      if (slots.every((s) => s.storingCount === 0)) {
        log.warn(
          { used: spool.used, maxBytes: spool.maxBytes },
          "Feed spool is over budget with an unbatched S3 feed: set batchMaxBytes",
        );
        return;
      }
      if (!warned) {
        log.warn(
          { used: spool.used, maxBytes: spool.maxBytes },
          "Feed spool is full: waiting for uploads before taking more items",
        );
        warned = true;
      }
      await spool.released(5000);
    }
  }

  async function writeManifest(reason: string) {
    if (!manifestSlot) return;
    const uri = manifestUri(manifestSlot.parsed, params);
    const itemsDropped: Record<string, number> = {};
    for (const s of slots) itemsDropped[s.template] = s.dropped;
    const manifest: Manifest = {
      version: 1,
      name: params.name,
      job: params.job,
      shard: params.shard,
      time: params.time,
      reason,
      closedAt: new Date().toISOString(),
      ...(opts.resumeAfter && Object.keys(opts.resumeAfter).length > 0 ? { resumedAfter: opts.resumeAfter } : {}),
      files: closedFeeds,
      failed: failedFeeds,
      itemsDropped,
    };
    await manifestSlot.storage.putSmall(uri, `${JSON.stringify(manifest, null, 2)}\n`, "application/json");
    const loc = parseFeedLocation(uri);
    writtenManifest = loc.kind === "file" ? `file://${loc.path}` : uri;
    log.info({ uri: writtenManifest, files: closedFeeds.length, failed: failedFeeds.length }, "Feed manifest written");
  }

  async function closeAll(reason: string) {
    log.info({ reason }, "Feed exporter closing: storing every open batch");
    const results = await Promise.allSettled(slots.map((s) => s.close()));
    const problems: string[] = [];
    results.forEach((r, i) => {
      if (r.status === "rejected")
        problems.push(`feed ${slots[i]?.template}: ${(r.reason as Error)?.message ?? r.reason}`);
    });
    try {
      await writeManifest(reason);
    } catch (err) {
      problems.push(`manifest: ${(err as Error).message}`);
      log.error({ err: (err as Error).message }, "Feed manifest could not be written");
    }
    // The spool folder goes when empty; failed batches' files stay in it for recovery.
    await rmdir(spool.dir).catch(() => {});
    for (const f of failedFeeds) problems.push(`${f.uri} (batch ${f.batchId}, ${f.items} items): ${f.error}`);
    problems.push(...reportErrors);
    if (problems.length > 0) {
      throw new Error(`Feed export failed for ${problems.length} file(s): ${problems.join("; ")}`);
    }
  }

  return {
    get closedFeeds() {
      return closedFeeds;
    },
    get failedFeeds() {
      return failedFeeds;
    },
    get manifestUri() {
      return writtenManifest;
    },
    get itemsDropped() {
      return Object.fromEntries(slots.map((s) => [s.template, s.dropped]));
    },
    async write(item: Item) {
      if (closing) throw new Error("Feed exporter is closed: no more items");
      if (spool.full) await waitForSpool();
      for (const slot of slots) if (slot.accepts(item)) await slot.write(item);
    },
    close(reason: string) {
      closing ??= closeAll(reason);
      return closing;
    },
    async abort() {
      closing ??= Promise.reject(new Error("Feed exporter aborted"));
      closing.catch(() => {});
      for (const storage of [s3, file, stdout]) storage?.abort?.();
      await Promise.allSettled(slots.map((s) => s.abandon()));
    },
  };
}
