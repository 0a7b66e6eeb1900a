// The crawl state contract: frontier, seen-set, per-page item accounting and
// the pending-commit rows of feed batches, kept outside the process so a
// crawl survives being killed. Two engines implement it: SQLite in a local
// directory (sqlite.ts, `--jobdir`) and Redis shared by many workers
// (redis*.ts, spec.frontier.redis). The guarantee it carries is stated in
// docs/design.md ("Exactly-once items"); this file is what an engine must do.
//
// Vocabulary.
// - page key: the request fingerprint as 16 lower-case hex digits
//   (fingerprint.ts `fingerprintKey`: sha1 of method, canonical URL, body).
//   One key, one row: the seen-set, the queue and the in-flight set are one
//   map keyed by it, so "seen" and "queued" can never disagree.
// - feed: a feed URI *template* (the key of spec.feeds), never a rendered URI.
// - produced[feed]: how many items of the page that feed accepted (its filter
//   said yes), in emission order. Items are deterministic per response, so a
//   redone page offers the same items to the same feeds in the same order.
// - committed[feed]: how many of those are in batches of that feed that are
//   stored AND reported (commitBatch ran). Always a prefix: a feed's batches
//   are committed in batch-id order, and a page's items enter a feed in order.
// - A page is DONE when it was processed (pageProcessed ran) and, for every
//   feed, committed[feed] >= produced[feed]. A done page is never handed out
//   again; every page that is not done is handed out again after a restart.
//
// Every method is one atomic step: it happens entirely or not at all, whatever
// kills the process (SQLite: one transaction; Redis: one Lua script or MULTI).
// Methods of one instance may be called concurrently; an engine serialises
// what must be. Nothing here logs or throws for an expected outcome (a
// duplicate, an unknown batch); it throws only when the store fails.

import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { Item, ItemSink } from "../item.ts";
import type { CrawlRequest } from "../request.ts";

/** The request fingerprint, 16 hex digits (see fingerprintKey). */
export type PageKey = string;

/** A request offered to the frontier. */
export interface EnqueueEntry {
  key: PageKey;
  request: CrawlRequest;
  /** Served before every non-priority entry (redirect hops). Default false. */
  priority?: boolean;
}

/** A request handed out by dequeue: it is now in flight until pageProcessed (or a restart/lease expiry). */
export interface LeasedRequest {
  key: PageKey;
  request: CrawlRequest;
  /**
   * Items of this page already committed per feed (absent feed: 0). The first
   * `committed[feed]` items the page offers to `feed` this time are skipped:
   * they are in a delivered file already.
   */
  committed: Record<string, number>;
}

/** A closed batch on its way to storage: which pages' items it holds. Recorded before any byte is uploaded. */
export interface PendingBatch {
  feed: string;
  batchId: number;
  /** The rendered URI the batch is stored under (a later conflict renames it: see batchStored). */
  uri: string;
  /** [page key, items of that page in this batch], each page once, counts > 0. */
  pages: Array<[PageKey, number]>;
}

/** A pending batch as found by open(): `stored` is set once batchStored ran for it. */
export interface RecoveredBatch extends PendingBatch {
  stored?: FeedClosed;
}

export interface StateOpening {
  /**
   * "new": nothing was ever enqueued. "resumed": a crawl was under way (the
   * caller enqueues the start URLs again: they are seen and dropped). "finished":
   * markFinished ran; the caller writes nothing and exits 0.
   */
  status: "new" | "resumed" | "finished";
  finishReason?: string;
  /**
   * Pending batches of this worker, in (feed, batchId) order, for the caller to
   * settle BEFORE it crawls: a batch with `stored` is reported again
   * (idempotent) and then committed; one without is deleted from the storage
   * if it got there (it was never reported) and then discarded.
   */
  pending: RecoveredBatch[];
  /** Pages requeued by open (were in flight, or processed but not done). */
  requeued: number;
  /** Pages done so far (informational). */
  done: number;
}

/**
 * One worker's view of a crawl's durable state. SQLite: one worker per
 * directory (a second open of the same directory fails). Redis: any number of
 * workers share frontier, seen-set and page accounting; batch ids, pending
 * batches and leases belong to the worker id the engine was built with.
 */
export interface CrawlState {
  /**
   * Opens the store and recovers: every page that is in flight (SQLite: all of
   * them; Redis: those of this worker id, and of any worker whose lease
   * expired) or processed but not done goes back to the queue, ahead of pages
   * never started, keeping its committed counts. Pending batches are returned,
   * not settled. Call once, before anything else.
   */
  open(): Promise<StateOpening>;

  /**
   * Insert-if-unseen, atomically per entry: an entry whose key was ever
   * enqueued (queued, in flight or done) is dropped. Returns, per entry in
   * order, whether it was added. Durable when the promise resolves: a page's
   * discovered links are enqueued before its pageProcessed, so a page that is
   * done never loses a link. Entries with the same key in one call: the first wins.
   */
  enqueue(entries: readonly EnqueueEntry[]): Promise<boolean[]>;

  /**
   * Moves up to `max` queued pages to in flight and returns them: priority
   * entries first, then FIFO (enqueue order; requeued pages first after
   * open). An empty array means the queue is empty right now (Redis: other
   * workers may still add to it; the caller polls while pages are in flight anywhere).
   */
  dequeue(max: number): Promise<LeasedRequest[]>;

  /**
   * The page was handled this run (downloaded and its items offered to the
   * sink, or given up: an error, robots.txt, a non-2xx). `produced` counts
   * per feed (absent: 0). The page becomes done now if its committed counts
   * already cover it, else when commitBatch brings them up. Idempotent.
   * A page handed back without being handled (the crawl stopped) is simply not
   * reported: it stays in flight and open() requeues it.
   */
  pageProcessed(key: PageKey, produced: Record<string, number>): Promise<void>;

  /** Records a pending batch. Called after the batch's bytes are final and before its upload completes. */
  beginBatch(batch: PendingBatch): Promise<void>;

  /**
   * The storage confirmed the object: remembers `closed` (its final uri and
   * batch id, which may differ from beginBatch's after a create-only conflict)
   * so a restart can report it again instead of deleting it. Keyed by
   * (closed.feed ?? feed, batchId as given to beginBatch).
   */
  batchStored(feed: string, batchId: number, closed: FeedClosed): Promise<void>;

  /**
   * The batch is stored and reported: in one step, adds its page counts to
   * committed, marks done the processed pages now covered, raises the feed's
   * last batch id to the stored batch id, and deletes the pending row.
   * Unknown (already committed or discarded) batch: no-op.
   */
  commitBatch(feed: string, batchId: number): Promise<void>;

  /** Deletes a pending row without committing (its items come back when its pages are redone). No-op when unknown. */
  discardBatch(feed: string, batchId: number): Promise<void>;

  /** Per feed template, the highest batch id committed by this worker: numbering continues after it. */
  lastBatchIds(): Promise<Record<string, number>>;

  /** Queued pages right now (gauges; Redis: may be approximate). */
  queuedCount(): Promise<number>;

  /**
   * Shared engines only (Redis): whether the whole crawl is idle — nothing
   * queued and nothing in flight at any worker. When dequeue returns nothing
   * and this resolves false, the caller waits a moment and dequeues again
   * (another worker's page may still add links, or its lease may expire).
   * Absent (SQLite, one worker): an empty dequeue means the crawl is done.
   */
  crawlIdle?(): Promise<boolean>;

  /**
   * The crawl ran to its end (queue empty, nothing in flight, every batch
   * committed): later open() calls return "finished". Never called for a
   * stop that leaves work behind (SIGTERM, a failed feed).
   */
  markFinished(reason: string): Promise<void>;

  /** Flushes and releases the store (SQLite: the directory lock). */
  close(): Promise<void>;
}

/**
 * One page being handled in a crawl with a state: the engine makes it from the
 * lease and passes it with every item; each feed counts what it accepted in
 * `produced` and skips the first `committed[feed]` of them (already delivered).
 */
export interface PageProgress {
  readonly key: PageKey;
  readonly committed: Readonly<Record<string, number>>;
  readonly produced: Record<string, number>;
}

/** An item sink that can attribute items to their page (the feed exporter); plain sinks ignore `page`. */
export interface PageAwareSink extends ItemSink {
  write(item: Item, page?: PageProgress): Promise<void>;
}

// --- A state shared by several workers (Redis: redis-state.ts). Additive: an
// engine that has `shared: true` also offers the crawl-wide view below.

/** What the whole crawl is doing, over every worker: the termination check of a shared crawl. */
export interface SharedCrawlProgress {
  /** Pages queued, waiting for any worker. */
  queued: number;
  /** Pages handed out and not yet processed by any worker (they may still enqueue links). */
  inFlight: number;
  /** Pages not done: queued, in flight, or processed with items not yet committed. */
  unfinished: number;
  done: number;
  /** Set once the crawl finished. */
  finishReason?: string;
}

/** Per-host limits one request is sent under. */
export interface HostLimits {
  /** concurrentRequestsPerDomain. */
  perHost: number;
  /** The least time between two request starts to the host, ms (download delay or AutoThrottle's, robots.txt Crawl-delay). */
  delayMs: number;
  /** The longest a request can take (its timeout plus a margin): a slot held longer frees itself. */
  slotTtlMs: number;
}

/** Politeness over every worker of the crawl: per-host slots and delays, robots.txt fetched once per origin. */
export interface HostGate {
  /** Waits for a free slot of `host` and its next-allowed time, takes the slot; its token, or undefined once `signal` aborted. */
  acquire(host: string, limits: HostLimits, signal?: AbortSignal): Promise<string | undefined>;
  /** Frees the slot (after the response was handled). */
  release(host: string, token: string): Promise<void>;
  /** AutoThrottle over every worker: folds one response into the host's shared delay; returns it. */
  observe(
    host: string,
    latencyMs: number,
    status: number,
    o: { startDelayMs: number; targetConcurrency: number; minDelayMs: number; maxDelayMs: number },
  ): Promise<number>;
  /** The first worker to ask runs `fetch` (robots.txt, serialized as a string); every other worker gets its result. */
  robotsOnce(origin: string, fetch: () => Promise<string>, signal?: AbortSignal): Promise<string>;
}

/**
 * A CrawlState several workers share. A worker ends when crawlIdle() shows
 * nothing queued or in flight anywhere; it then closes and commits its open
 * batches and calls markFinished, which marks the crawl finished only once no
 * worker has anything left (the last worker to end does).
 */
export interface SharedCrawlState extends CrawlState {
  readonly shared: true;
  progress(): Promise<SharedCrawlProgress>;
  readonly politeness: HostGate;
}

/**
 * Where each feed's batch numbering continues after open(): past the last
 * committed batch and past every stored pending batch (it is committed by the
 * recovery); a pending batch that was never stored gives its id back.
 */
export function resumeBatchIds(
  last: Record<string, number>,
  pending: readonly RecoveredBatch[],
): Record<string, number> {
  const out = { ...last };
  for (const b of pending) if (b.stored) out[b.feed] = Math.max(out[b.feed] ?? 0, b.stored.batchId);
  return out;
}
