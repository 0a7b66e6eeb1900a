// One feed (one URI template) at run time: its open batch, the batch ids it hands
// out, the rollover rules (items, bytes, seconds — whichever comes first) and the
// batches still being stored. Operations on a slot run one at a time, in order.
import type { Logger } from "pino";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { FeedOptions } from "../../crds/schema/feeds.ts";
import type { Postprocessor } from "../../crds/schema/names.ts";
import { compressionName, contentEncoding } from "../../spec/compression.ts";
import { parseFeedLocation } from "../../spec/feed-location.ts";
import {
  formatUriTime,
  isBatchTemplate,
  type ParsedTemplate,
  renderUri,
  staticBatchPrefix,
  type UriParams,
} from "../../spec/uri-template.ts";
import type { Item } from "../item.ts";
import type { CrawlState, PageProgress } from "../state/types.ts";
import { Batch } from "./batch.ts";
import { createItemFilter } from "./filter.ts";
import { charset, type EncoderOptions, UnserializableItemError } from "./formats/encoder.ts";
import { canonicalFormat, createEncoder } from "./formats/index.ts";
import type { FeedFailed } from "./manifest.ts";
import { createCompressors } from "./postprocessing.ts";
import { AlreadyExistsError, type FeedStorage, StoreFailedError } from "./storages/types.ts";

export interface SlotEvents {
  /** Resolves true once the batch is reported (or there is nothing to report to); false when reporting failed. */
  closed(ev: FeedClosed): Promise<boolean>;
  failed(ev: FeedFailed): Promise<void>;
}

/** A CSV file's dialect as readers need it: only what differs from `,`, `"` and a header line. */
function csvDialect(options: FeedOptions): Pick<FeedClosed, "csvDelimiter" | "csvQuoteChar" | "csvHeader"> {
  if (canonicalFormat(options.format) !== "csv") return {};
  const { csvDelimiter, csvQuoteChar, csvIncludeHeader } = options;
  return {
    ...(csvDelimiter !== undefined && csvDelimiter !== "," ? { csvDelimiter } : {}),
    ...(csvQuoteChar !== undefined && csvQuoteChar !== '"' ? { csvQuoteChar } : {}),
    ...(csvIncludeHeader === false ? { csvHeader: false } : {}),
  };
}

export class FeedSlot {
  readonly template: string;
  readonly options: FeedOptions;
  readonly parsed: ParsedTemplate;
  readonly storage: FeedStorage;
  readonly accepts: (item: Item) => boolean;
  readonly batched: boolean;
  /** Items written to files of this feed, and dropped because they could not be serialised. */
  written = 0;
  dropped = 0;
  /** Items skipped because a file delivered before a restart holds them (a crawl with a state). */
  skipped = 0;
  private readonly log: Logger;
  private readonly params: Omit<UriParams, "batch_id" | "batch_time">;
  private readonly events: SlotEvents;
  private readonly encoderOptions: EncoderOptions;
  private readonly steps: Postprocessor[];
  private nextBatchId: number;
  private lastBatchTime = "";
  private batch: Batch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private openedAny = false;
  private readonly storing = new Set<Promise<void>>();
  private chain: Promise<unknown> = Promise.resolve();
  private lastReport: Promise<void> = Promise.resolve();
  private readonly state: CrawlState | undefined;
  /**
   * A batch of this feed failed (or its commit did): later batches are stored
   * but neither reported nor committed, so that committed counts stay a prefix
   * of each page's items. A restart deletes them and redoes their pages.
   */
  private commitBroken = false;

  constructor(init: {
    template: string;
    options: FeedOptions;
    parsed: ParsedTemplate;
    storage: FeedStorage;
    params: Omit<UriParams, "batch_id" | "batch_time">;
    lastBatchId: number;
    logger: Logger;
    events: SlotEvents;
    /** The crawl state: pending-commit rows around each stored batch (docs/design.md, "Exactly-once items"). */
    state?: CrawlState;
  }) {
    this.state = init.state;
    this.template = init.template;
    this.options = init.options;
    this.parsed = init.parsed;
    this.storage = init.storage;
    this.params = init.params;
    this.events = init.events;
    this.log = init.logger.child({ feed: init.template });
    this.accepts = createItemFilter(init.options);
    this.batched = isBatchTemplate(init.parsed);
    this.nextBatchId = init.lastBatchId + 1;
    this.steps = [...(init.options.postprocessing ?? [])];
    this.encoderOptions = { ...init.options, encoding: charset(init.options.encoding) };
  }

  get format() {
    return canonicalFormat(this.options.format);
  }

  get compression() {
    return compressionName(this.steps);
  }

  /** True while the slot holds an open batch with at least one item (a rollover would store something). */
  get hasOpenItems(): boolean {
    return (this.batch?.items ?? 0) > 0;
  }

  /** Closed batches still being stored. */
  get storingCount(): number {
    return this.storing.size;
  }

  /**
   * Before the first item: the folder takes files, feedcrawl's temp files left there by
   * killed runs go, and an unbatched create-only target is still free — found now, not
   * after the whole crawl.
   */
  async check(): Promise<void> {
    const runParams = { ...this.params, batch_id: 0, batch_time: "" };
    const folder = renderUri(staticBatchPrefix(this.parsed), runParams) || this.template;
    await this.storage.check(folder);
    const stale = (await this.storage.removeStale?.(folder)) ?? [];
    if (stale.length > 0) {
      this.log.warn(
        { folder, removed: stale.length, files: stale.slice(0, 20) },
        "Feed folder held temp files of killed runs: removed",
      );
    }
    if (this.batched || this.options.overwrite) return;
    const uri = renderUri(this.parsed, runParams);
    if (await this.storage.exists(uri)) {
      const loc = parseFeedLocation(uri);
      const where = loc.kind === "file" ? loc.path : uri;
      throw new AlreadyExistsError(`${where} already exists: move it away, or set overwrite: true to replace it`);
    }
  }

  private run<T>(op: () => Promise<T>): Promise<T> {
    const next = this.chain.then(op);
    this.chain = next.catch(() => {});
    return next;
  }

  /** A unique, filesystem-safe batch time (milliseconds; bumped when two batches share one). */
  private batchTime(): string {
    let now = Date.now();
    let text = formatUriTime(new Date(now), true);
    while (text <= this.lastBatchTime) text = formatUriTime(new Date(++now), true);
    this.lastBatchTime = text;
    return text;
  }

  private renderNext(): { batchId: number; uri: string } {
    const batchId = this.nextBatchId++;
    return {
      batchId,
      uri: renderUri(this.parsed, { ...this.params, batch_id: batchId, batch_time: this.batchTime() }),
    };
  }

  private async open(): Promise<Batch> {
    let { batchId, uri } = this.renderNext();
    // Skip batch ids whose file exists (a batch stored but not reported before a restart).
    // The create-only completion still guards the race; this keeps the ids in item order.
    for (let skipped = 0; this.batched && !this.options.overwrite && skipped < 1000; skipped++) {
      if (!(await this.storage.exists(uri))) break;
      this.log.warn({ uri }, "Feed file already exists: skipping its batch id");
      ({ batchId, uri } = this.renderNext());
    }
    const encoder = createEncoder(this.options.format, this.encoderOptions);
    const sink = await this.storage.open({
      uri,
      contentType: encoder.contentType,
      contentEncoding: contentEncoding(this.steps),
      overwrite: this.options.overwrite ?? false,
    });
    const batch = new Batch({
      batchId,
      uri,
      encoder,
      encoding: this.encoderOptions.encoding,
      compressors: createCompressors(this.steps, this.options.compressionLevel),
      sink,
    });
    this.openedAny = true;
    this.batch = batch;
    const seconds = this.options.batchMaxSeconds ?? 0;
    if (seconds > 0) {
      this.timer = setTimeout(() => {
        this.run(async () => {
          if (this.batch === batch) await this.closeBatch();
        }).catch((err) => this.log.error({ err }, "Feed batch could not be closed on its timer"));
      }, seconds * 1000);
      this.timer.unref();
    }
    return batch;
  }

  /**
   * Writes an item to the open batch (opening one first); rolls over when a limit is reached.
   * With `page`, the item is counted as the page's next item for this feed, and skipped
   * when a delivered file already holds it (page.committed).
   */
  write(item: Item, page?: PageProgress): Promise<void> {
    if (page) {
      const n = (page.produced[this.template] ?? 0) + 1;
      page.produced[this.template] = n;
      if (n <= (page.committed[this.template] ?? 0)) {
        this.skipped++;
        return Promise.resolve();
      }
    }
    return this.run(async () => {
      const batch = this.batch ?? (await this.open());
      // Counted before it is encoded: an item dropped as unserialisable is settled with its batch too.
      if (page) batch.pages.set(page.key, (batch.pages.get(page.key) ?? 0) + 1);
      try {
        await batch.add(item.fields);
      } catch (err) {
        if (!(err instanceof UnserializableItemError)) throw err;
        if (this.dropped++ === 0 || this.dropped % 1000 === 0) {
          this.log.warn(
            { itemType: item.type, reason: err.message, dropped: this.dropped },
            "Feed item dropped: it cannot be serialised",
          );
        }
        return;
      }
      this.written++;
      const o = this.options;
      if (
        ((o.batchItemCount ?? 0) > 0 && batch.items >= (o.batchItemCount ?? 0)) ||
        ((o.batchMaxBytes ?? 0) > 0 && batch.approxBytes >= (o.batchMaxBytes ?? 0))
      ) {
        await this.closeBatch();
      }
    });
  }

  /** Closes the open batch now (spool pressure, or a stop), if it has items and the feed is batched. */
  rollover(): Promise<void> {
    return this.run(async () => {
      if (this.batched && this.hasOpenItems) await this.closeBatch();
    });
  }

  /** Closes the open batch (storing an empty first file when storeEmpty) and waits until every batch is stored or failed. */
  close(): Promise<void> {
    return this.run(async () => {
      if (this.batch) await this.closeBatch();
      else if (!this.openedAny && this.options.storeEmpty) {
        await this.open();
        await this.closeBatch();
      }
      await Promise.all([...this.storing]);
    });
  }

  /** Throws the open batch away (teardown after a failure): nothing more is stored from it. */
  async abandon(): Promise<void> {
    const batch = this.batch;
    this.batch = undefined;
    clearTimeout(this.timer);
    await batch?.abandon();
  }

  /** Ends the open batch and starts storing it in the background (the storage bounds its uploads in flight). */
  private async closeBatch(): Promise<void> {
    const batch = this.batch;
    if (!batch) return;
    this.batch = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    // Scrapy: an empty file is stored only for the feed's first batch and only with storeEmpty.
    const storeIt = batch.items > 0 || (batch.batchId === 1 && (this.options.storeEmpty ?? false));
    if (!storeIt) {
      if (batch.batchId === this.nextBatchId - 1) this.nextBatchId = batch.batchId; // never used: hand it out again
      await batch.abandon();
      return;
    }
    let summary: { bytes: number; sha256: string };
    try {
      summary = await batch.end();
    } catch (err) {
      // The items written so far stay where the storage has them.
      const keptAt = await batch.sink.keep().catch(() => undefined);
      await this.reportFailure(batch, err, keptAt);
      return;
    }
    const pendingId = batch.batchId;
    if (this.state) {
      try {
        await this.state.beginBatch({
          feed: this.template,
          batchId: pendingId,
          uri: batch.uri,
          pages: [...batch.pages],
        });
      } catch (err) {
        const keptAt = await batch.sink.keep().catch(() => undefined);
        await this.reportFailure(batch, err, keptAt);
        return;
      }
    }
    // Stored concurrently, reported in batch order: "last reported batch id" is then a clean prefix.
    const previous = this.lastReport;
    const storing = this.store(batch, summary, previous, pendingId);
    this.lastReport = storing;
    this.storing.add(storing);
    storing.finally(() => this.storing.delete(storing));
  }

  private async store(
    batch: Batch,
    summary: { bytes: number; sha256: string },
    previous: Promise<void>,
    pendingId: number,
  ): Promise<void> {
    let uri: string;
    try {
      uri = await batch.sink.finish({
        ...summary,
        onConflict: () => {
          if (!this.batched) return undefined;
          const next = this.renderNext();
          batch.batchId = next.batchId;
          batch.uri = next.uri;
          return next.uri;
        },
      });
    } catch (err) {
      await previous;
      await this.reportFailure(batch, err, err instanceof StoreFailedError ? err.keptAt : undefined);
      return;
    }
    await previous;
    const ev: FeedClosed = {
      uri,
      batchId: batch.batchId,
      shard: this.params.shard,
      feed: this.template,
      format: this.format,
      compression: this.compression,
      ...(this.encoderOptions.encoding.name !== "utf-8" ? { encoding: this.encoderOptions.encoding.name } : {}),
      ...csvDialect(this.options),
      items: batch.items,
      bytes: summary.bytes,
      sha256: summary.sha256,
      closedAt: new Date().toISOString(),
    };
    this.log.info({ uri: ev.uri, batchId: ev.batchId, items: ev.items, bytes: ev.bytes }, "Feed batch stored");
    if (this.state) await this.commit(ev, pendingId);
    else await this.events.closed(ev);
  }

  /**
   * Stored → remembered as stored → reported → committed, each step before the next:
   * a restart after any of them finishes the batch (reports it again, idempotent) or,
   * before the first, deletes the object and redoes its pages.
   */
  private async commit(ev: FeedClosed, pendingId: number): Promise<void> {
    const state = this.state as CrawlState;
    if (this.commitBroken) {
      this.log.error(
        { uri: ev.uri, batchId: ev.batchId },
        "Feed batch stored but not reported: an earlier batch of this feed failed (a resumed crawl redoes its pages)",
      );
      return;
    }
    let reported = false;
    try {
      await state.batchStored(this.template, pendingId, ev);
      reported = await this.events.closed(ev);
      if (reported) await state.commitBatch(this.template, pendingId);
      else this.commitBroken = true;
    } catch (err) {
      // A failed batch, not a throw: nothing awaits this background store's rejection. A restart settles the row.
      this.commitBroken = true;
      const error = `${reported ? "reported but not committed" : "stored but not reported"}: the crawl state failed: ${(err as Error)?.message ?? String(err)}`;
      this.log.error({ uri: ev.uri, batchId: ev.batchId, error }, "Feed batch not committed");
      await this.events.failed({ feed: this.template, uri: ev.uri, batchId: ev.batchId, items: ev.items, error });
    }
  }

  private async reportFailure(batch: Batch, err: unknown, keptAt: string | undefined) {
    this.commitBroken = true;
    const message = (err as Error)?.message ?? String(err);
    const error = keptAt ? `${message}; its bytes are kept in ${keptAt}` : message;
    this.log.error(
      { uri: batch.uri, batchId: batch.batchId, items: batch.items, error, ...(keptAt ? { keptAt } : {}) },
      "Feed batch failed: not stored",
    );
    await this.events.failed({
      feed: this.template,
      uri: batch.uri,
      batchId: batch.batchId,
      items: batch.items,
      error,
      ...(keptAt ? { keptAt } : {}),
    });
  }
}
