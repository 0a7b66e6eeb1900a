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
import { formatUriTime, parseUriTemplate } from "../../spec/uri-template.ts";
import type { Item } from "../item.ts";
import { unresumableFeeds } from "../state/resumable-feeds.ts";
import type { CrawlState, PageAwareSink, PageProgress, RecoveredBatch } from "../state/types.ts";
import { type FeedFailed, type Manifest, storeManifest } from "./manifest.ts";
import { FeedSlot } from "./slot.ts";
import { Spool } from "./spool.ts";
import { createFileStorage } from "./storages/file.ts";
import { createStdoutStorage } from "./storages/stdout.ts";
import type { FeedStorage } from "./storages/types.ts";

export type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
export type { FeedFailed } from "./manifest.ts";

export interface FeedExporterOptions {
  feeds: Feeds;
  storage?: StorageSpec;
  params: {
    name: string /* spider name */;
    job: string /* CrawlJob name */;
    shard: number;
    /** %(worker)s: the worker id in a crawl shared over Redis (absent: the shard). */
    worker?: string;
    time?: Date;
  };
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
  /**
   * The crawl state (runner/state): every batch gets a pending-commit row before it is
   * stored and is committed after it is reported; items a delivered file holds are skipped.
   * Every feed must then be one whose files can be taken back: not stdout, and named per
   * batch (%(batch_id)s, %(batch_time)s) or per run (%(time)s).
   */
  state?: CrawlState;
}

export interface FeedExporter extends PageAwareSink {
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
  /**
   * Settles the pending batches a crawl state found at open, before any item: a stored
   * one is reported again (idempotent) and committed; any other is deleted from its
   * storage (it was never reported) and discarded, its pages to be redone.
   */
  recover(pending: readonly RecoveredBatch[]): Promise<void>;
}

const DEFAULT_SPOOL_BYTES = 1024 * 1024 * 1024;

/** runner/feeds/storages/s3.ts, once a feed needs it. */
let s3Storages: typeof import("./storages/s3.ts") | undefined;

type UriParams = { name: string; job: string; shard: number; worker?: string; time: string };

export async function createFeedExporter(opts: FeedExporterOptions): Promise<FeedExporter> {
  const errors = await validateFeeds(opts.feeds, opts.storage);
  if (opts.state) errors.push(...unresumableFeeds(opts.feeds));
  if (opts.params.worker !== undefined) errors.push(...unsharedFeeds(opts.feeds));
  if (errors.length > 0) {
    throw new Error(`Invalid feeds: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`);
  }
  // The AWS SDK costs ~30 MB RSS per process: loaded only when a feed goes to S3.
  if (Object.keys(opts.feeds).some((uri) => parseFeedLocation(uri).kind === "s3"))
    s3Storages = await import("./storages/s3.ts");
  const exporter = new Exporter(opts);
  await exporter.checkTargets();
  return exporter;
}

function s3Module(): typeof import("./storages/s3.ts") {
  if (!s3Storages) throw new Error("S3 feed storage used without an s3:// feed");
  return s3Storages;
}

/** Feeds that would mix workers' files in a shared crawl: each worker numbers its own batches. */
export function unsharedFeeds(feeds: Feeds): { path: string; message: string }[] {
  return Object.keys(feeds).flatMap((template) =>
    parseUriTemplate(template).params.has("worker")
      ? []
      : [
          {
            path: `feeds[${JSON.stringify(template)}]`,
            message: "with a shared frontier (--frontier), the URI needs %(worker)s: each worker writes its own files",
          },
        ],
  );
}

function openSpool(opts: FeedExporterOptions, params: UriParams): Spool {
  // The pod gives the spool an emptyDir through FEEDCRAWL_SPOOL_DIR (a read-only root filesystem has no /tmp).
  const spoolRoot = process.env.FEEDCRAWL_SPOOL_DIR || path.join(os.tmpdir(), "feedcrawl-spool");
  return new Spool(
    opts.spool?.dir ??
      path.join(spoolRoot, `${params.job}-${params.worker ?? params.shard}`.replace(/[^A-Za-z0-9._-]+/g, "_")),
    opts.spool?.maxBytes ?? (Number(process.env.FEEDCRAWL_SPOOL_MAX_BYTES) || DEFAULT_SPOOL_BYTES),
  );
}

class Exporter implements FeedExporter {
  readonly closedFeeds: FeedClosed[] = [];
  readonly failedFeeds: FeedFailed[] = [];
  manifestUri: string | undefined;
  readonly #opts: FeedExporterOptions;
  readonly #log: Logger;
  readonly #params: UriParams;
  readonly #spool: Spool;
  readonly #storages = new Map<"s3" | "file" | "stdout", FeedStorage>();
  readonly #slots: FeedSlot[];
  readonly #reportErrors: string[] = [];
  #closing: Promise<void> | undefined;

  constructor(opts: FeedExporterOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ subsystem: "feeds" });
    this.#params = {
      name: opts.params.name,
      job: opts.params.job,
      shard: opts.params.shard,
      ...(opts.params.worker !== undefined ? { worker: opts.params.worker } : {}),
      time: formatUriTime(opts.params.time ?? new Date()),
    };
    this.#spool = openSpool(opts, this.#params);
    this.#slots = Object.entries(opts.feeds).map(
      ([template, options]) =>
        new FeedSlot({
          template,
          options,
          parsed: parseUriTemplate(template),
          storage: this.#storageFor(parseFeedLocation(template).kind),
          params: this.#params,
          lastBatchId: opts.resumeAfter?.[template] ?? 0,
          logger: this.#log,
          events: { closed: (ev) => this.#closed(ev), failed: (ev) => this.#failed(ev) },
          ...(opts.state ? { state: opts.state } : {}),
        }),
    );
  }

  get itemsDropped(): Record<string, number> {
    return Object.fromEntries(this.#slots.map((s) => [s.template, s.dropped]));
  }

  /** Every target is checked before the first item: a missing bucket fails the run now, not in an hour. */
  async checkTargets(): Promise<void> {
    for (const slot of this.#slots) {
      try {
        await slot.check();
      } catch (err) {
        throw new Error(`Feed ${JSON.stringify(slot.template)}: ${(err as Error).message}`);
      }
    }
  }

  async write(item: Item, page?: PageProgress): Promise<void> {
    if (this.#closing) throw new Error("Feed exporter is closed: no more items");
    if (this.#spool.full) await this.#waitForSpool();
    for (const slot of this.#slots) if (slot.accepts(item)) await slot.write(item, page);
  }

  async recover(pending: readonly RecoveredBatch[]): Promise<void> {
    const state = this.#opts.state;
    if (!state) return;
    for (const b of pending) {
      if (b.stored) {
        this.#log.info(
          { uri: b.stored.uri, batchId: b.stored.batchId },
          "Feed batch stored before a restart: reporting it",
        );
        if (!(await this.#closed(b.stored)))
          throw new Error(`Feed batch ${b.stored.uri} stored before a restart could not be reported`);
        await state.commitBatch(b.feed, b.batchId);
        continue;
      }
      // Never reported: whatever got stored is taken back, and its pages are redone.
      const storage = this.#storageFor(parseFeedLocation(b.uri).kind);
      if (!storage.remove) throw new Error(`Feed batch ${b.uri} cannot be taken back from its storage`);
      await storage.remove(b.uri);
      this.#log.warn(
        { uri: b.uri, batchId: b.batchId, pages: b.pages.length },
        "Feed batch not reported before a restart: removed, its pages are redone",
      );
      await state.discardBatch(b.feed, b.batchId);
    }
  }

  close(reason: string): Promise<void> {
    this.#closing ??= this.#closeAll(reason);
    return this.#closing;
  }

  async abort(): Promise<void> {
    this.#closing ??= Promise.reject(new Error("Feed exporter aborted"));
    this.#closing.catch(() => {});
    for (const storage of this.#storages.values()) storage.abort?.();
    await Promise.allSettled(this.#slots.map((s) => s.abandon()));
  }

  #storageFor(kind: "s3" | "file" | "stdout"): FeedStorage {
    let storage = this.#storages.get(kind);
    if (!storage) {
      const { s3 } = this.#opts;
      storage =
        kind === "s3"
          ? s3Module().createS3Storage({
              spec: this.#opts.storage?.s3,
              client: s3?.client,
              credentials: s3?.credentials,
              spool: this.#spool,
              logger: this.#log,
              backoff: s3?.backoff,
            })
          : kind === "file"
            ? createFileStorage()
            : createStdoutStorage(this.#opts.stdout);
      this.#storages.set(kind, storage);
    }
    return storage;
  }

  async #closed(ev: FeedClosed): Promise<boolean> {
    this.closedFeeds.push(ev);
    try {
      await this.#opts.onFeedClosed?.(ev);
      return true;
    } catch (err) {
      this.#reportErrors.push(`reporting ${ev.uri} failed: ${(err as Error).message}`);
      this.#log.error({ uri: ev.uri, err }, "Feed closed event could not be reported");
      return false;
    }
  }

  async #failed(ev: FeedFailed): Promise<void> {
    this.failedFeeds.push(ev);
    try {
      await this.#opts.onFeedFailed?.(ev);
    } catch (err) {
      this.#log.error({ uri: ev.uri, err }, "Feed failed event could not be reported");
    }
  }

  /** Past the spool budget: close batched S3 feeds' open batches and wait for their uploads to free space. */
  async #waitForSpool(): Promise<void> {
    const spool = this.#spool;
    let warned = false;
    while (spool.full) {
      await Promise.all(this.#slots.filter((s) => s.batched && s.hasOpenItems).map((s) => s.rollover()));
      if (!spool.full) return;
      // Only an unbatched feed's open file is left: nothing will free space before the end.
      if (this.#slots.every((s) => s.storingCount === 0)) {
        this.#log.warn(
          { used: spool.used, maxBytes: spool.maxBytes },
          "Feed spool is over budget with an unbatched S3 feed: set batchMaxBytes",
        );
        return;
      }
      if (!warned) {
        this.#log.warn(
          { used: spool.used, maxBytes: spool.maxBytes },
          "Feed spool is full: waiting for uploads before taking more items",
        );
        warned = true;
      }
      await spool.released(5000);
    }
  }

  async #writeManifest(reason: string): Promise<void> {
    const manifestSlot = this.#slots.find((s) => parseFeedLocation(s.template).kind !== "stdout");
    if (!manifestSlot) return;
    const { resumeAfter } = this.#opts;
    const manifest: Manifest = {
      version: 1,
      ...this.#params,
      reason,
      closedAt: new Date().toISOString(),
      ...(resumeAfter && Object.keys(resumeAfter).length > 0 ? { resumedAfter: resumeAfter } : {}),
      files: this.closedFeeds,
      failed: this.failedFeeds,
      itemsDropped: this.itemsDropped,
    };
    const uri = await storeManifest(manifestSlot.storage, manifestSlot.parsed, this.#params, manifest);
    const loc = parseFeedLocation(uri);
    this.manifestUri = loc.kind === "file" ? `file://${loc.path}` : uri;
    this.#log.info(
      { uri: this.manifestUri, files: this.closedFeeds.length, failed: this.failedFeeds.length },
      "Feed manifest written",
    );
  }

  async #closeAll(reason: string): Promise<void> {
    this.#log.info({ reason }, "Feed exporter closing: storing every open batch");
    const results = await Promise.allSettled(this.#slots.map((s) => s.close()));
    const problems: string[] = [];
    results.forEach((r, i) => {
      if (r.status === "rejected")
        problems.push(`feed ${this.#slots[i]?.template}: ${(r.reason as Error)?.message ?? r.reason}`);
    });
    try {
      await this.#writeManifest(reason);
    } catch (err) {
      problems.push(`manifest: ${(err as Error).message}`);
      this.#log.error({ err: (err as Error).message }, "Feed manifest could not be written");
    }
    // The spool folder goes when empty; failed batches' files stay in it for recovery.
    await rmdir(this.#spool.dir).catch(() => {});
    for (const f of this.failedFeeds) problems.push(`${f.uri} (batch ${f.batchId}, ${f.items} items): ${f.error}`);
    problems.push(...this.#reportErrors);
    if (problems.length > 0) {
      throw new Error(`Feed export failed for ${problems.length} file(s): ${problems.join("; ")}`);
    }
  }
}
