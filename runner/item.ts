// The narrow interface between the crawl engine and the feed exporter.

/** One scraped item: `type` is the extract rule's name (Scrapy's item class). */
export interface Item {
  readonly type: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

/**
 * Where the engine sends items. `write` resolves when the sink can take the
 * next item: awaiting it is the backpressure that keeps memory flat.
 * `close` flushes and stores everything still open; the engine calls it once.
 */
export interface ItemSink {
  write(item: Item): Promise<void>;
  close(reason: string): Promise<void>;
}
