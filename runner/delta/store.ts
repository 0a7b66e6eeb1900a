// The delta state of a recurring crawl (spider.settings.delta): per URL the
// validators its last 2xx answer carried (ETag, Last-Modified), and the
// content hashes of every item delivered so far. Kept between runs by a store:
// SQLite in a local directory (sqlite.ts, `feedcrawl crawl --delta-dir`) or one
// object in the feed bucket (s3.ts, the runner pod). See docs/design.md "Delta crawls".

/** What a response said about its version: sent back as If-None-Match / If-Modified-Since. */
export interface Validators {
  etag?: string;
  lastModified?: string;
}

/** The whole delta state, or the part one run adds to it. */
export interface DeltaSnapshot {
  /** Per absolute URL (as requested). */
  validators: Map<string, Validators>;
  /** Item content hashes (itemHash). */
  items: Set<string>;
}

export function emptySnapshot(): DeltaSnapshot {
  return { validators: new Map(), items: new Set() };
}

export interface DeltaStore {
  /** Where the state lives (logs). */
  readonly where: string;
  /** The state the previous successful runs left (empty the first time). */
  load(): Promise<DeltaSnapshot>;
  /** Adds one run's changes in one atomic step: validators replace those of the same URL; hashes are added. */
  save(changes: DeltaSnapshot): Promise<void>;
  close(): Promise<void>;
}
