// The scheduler's queue on top of a CrawlState: the same RequestQueue as the
// in-memory frontier, so the scheduler stays synchronous, with the state's
// async steps behind it. Pushed requests are gathered and enqueued in one
// state step per tick (insert-if-unseen: the state is the seen-set); requests
// are leased in small prefetched batches; a page's end (pageProcessed) is
// written only after every link it found is durable. Every state step is
// held (Scheduler.hold), so the crawl cannot look finished while one runs.
import { sleep } from "../../lib/sleep.ts";
import { fingerprintKey } from "../fingerprint.ts";
import type { RequestQueue } from "../frontier.ts";
import type { CrawlRequest } from "../request.ts";
import type { CrawlState, EnqueueEntry, LeasedRequest, PageKey, PageProgress } from "./types.ts";

export interface DurableFrontierOptions {
  state: CrawlState;
  /** Requests leased per dequeue (default 64). */
  prefetch?: number;
  /** The state refused the request: its key was seen before. */
  onDuplicate(req: CrawlRequest): void;
  /** A state step failed: the crawl cannot go on safely. */
  onError(err: Error): void;
  /** How long to wait before dequeuing again while other workers are busy (state.crawlIdle; default 500 ms). */
  pollMs?: number;
}

/** One attempt at a page: what the feeds count against, and whether a retry took the page over. */
export interface PageRun {
  readonly progress: PageProgress;
  handedOff: boolean;
}

export function pageKeyOf(req: CrawlRequest): PageKey {
  return fingerprintKey(req.method, req.url, req.body);
}

export class DurableFrontier implements RequestQueue {
  readonly #o: DurableFrontierOptions;
  readonly #prefetch: number;
  #buffer: LeasedRequest[] = [];
  #pos = 0;
  #pending: Array<{ entry: EnqueueEntry; req: CrawlRequest }> = [];
  /** Queued in the state, not leased yet (exact for one worker; changed only by state steps, in order). */
  #stored: number;
  /** Handed to a state enqueue step that has not resolved yet. */
  #enqueueing = 0;
  /** Committed counts of the pages leased and not yet processed, by key. */
  readonly #leases = new Map<PageKey, Readonly<Record<string, number>>>();
  /** Every state step of this frontier, in order. */
  #chain: Promise<void> = Promise.resolve();
  #flushQueued = false;
  #refilling = false;
  /** A shared crawl looked idle everywhere at this worker's last empty dequeue: it stops asking until it enqueues again. */
  #sawCrawlIdle = false;
  #failed = false;
  /** Keeps the crawl from finishing while `work` runs (Scheduler.hold); set once the scheduler exists. */
  hold: (work: Promise<unknown>) => void = () => {};

  constructor(opts: DurableFrontierOptions & { queued: number }) {
    this.#o = opts;
    this.#prefetch = Math.max(1, opts.prefetch ?? 64);
    this.#stored = opts.queued;
  }

  get size(): number {
    return this.#buffer.length - this.#pos + this.#pending.length + this.#enqueueing + this.#stored;
  }

  /** Pages leased and not yet processed. */
  get leased(): number {
    return this.#leases.size;
  }

  push(req: CrawlRequest): void {
    this.#add(req, false);
  }

  /** Ahead of the FIFO (redirect hops), durably like any other request. */
  pushPriority(req: CrawlRequest): void {
    this.#add(req, true);
  }

  shift(): CrawlRequest | undefined {
    if (this.#pos >= this.#buffer.length) {
      this.#refill();
      return undefined;
    }
    const lease = this.#buffer[this.#pos] as LeasedRequest;
    this.#buffer[this.#pos++] = undefined as never;
    if (this.#pos === this.#buffer.length) {
      this.#buffer = [];
      this.#pos = 0;
    }
    this.#leases.set(lease.key, lease.committed);
    if (this.#buffer.length - this.#pos < this.#prefetch / 2) this.#refill();
    return lease.request;
  }

  /** Starts an attempt at a leased page (a retry of the same page gets the same committed counts). */
  begin(req: CrawlRequest): PageRun {
    const key = pageKeyOf(req);
    return { progress: { key, committed: this.#leases.get(key) ?? {}, produced: {} }, handedOff: false };
  }

  /** The page was handled: once its links are durable, the state learns what it produced. */
  processed(run: PageRun): void {
    const { key, produced } = run.progress;
    this.#leases.delete(key);
    this.#flushNow();
    this.#step(() => this.#o.state.pageProcessed(key, produced));
  }

  /** Resolves when every state step so far is done. */
  drain(): Promise<void> {
    this.#flushNow();
    return this.#chain;
  }

  close(): void {
    this.#buffer = [];
    this.#pos = 0;
  }

  #add(req: CrawlRequest, priority: boolean): void {
    this.#pending.push({ entry: { key: pageKeyOf(req), request: req, ...(priority ? { priority } : {}) }, req });
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    // One state step for everything pushed in this tick (a page's links come in a burst).
    queueMicrotask(() => this.#flushNow());
  }

  #flushNow(): void {
    this.#flushQueued = false;
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    this.#enqueueing += batch.length;
    // Counters change inside the step: the scheduler's pump runs as soon as the step settles.
    this.#step(async () => {
      try {
        const added = await this.#o.state.enqueue(batch.map((b) => b.entry));
        // Whatever became of them, the crawl may have moved on since it last looked idle.
        this.#sawCrawlIdle = false;
        added.forEach((ok, i) => {
          if (ok) this.#stored++;
          else this.#o.onDuplicate((batch[i] as { req: CrawlRequest }).req);
        });
      } finally {
        this.#enqueueing -= batch.length;
      }
    });
  }

  #refill(): void {
    // A shared state (crawlIdle) is asked even when this worker queued nothing: other workers may have.
    const ask = this.#stored > 0 || (this.#o.state.crawlIdle !== undefined && !this.#sawCrawlIdle);
    if (this.#refilling || !ask || this.#failed) return;
    this.#refilling = true;
    const want = this.#prefetch;
    this.#step(async () => {
      try {
        const rows = await this.#o.state.dequeue(want);
        this.#stored = rows.length < want ? 0 : Math.max(1, this.#stored - rows.length);
        if (rows.length === 0 && this.#o.state.crawlIdle) {
          if (await this.#o.state.crawlIdle()) this.#sawCrawlIdle = true;
          else {
            // Other workers are still at it: look again shortly (this step holds the crawl open meanwhile).
            this.#stored = 1;
            await sleep(this.#o.pollMs ?? 500);
          }
        }
        if (this.#pos > 0) {
          this.#buffer = this.#buffer.slice(this.#pos);
          this.#pos = 0;
        }
        this.#buffer.push(...rows);
      } finally {
        this.#refilling = false;
      }
    });
  }

  #step(fn: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(async () => {
      if (this.#failed) {
        this.#enqueueing = 0;
        this.#refilling = false;
        return;
      }
      try {
        await fn();
      } catch (err) {
        this.#failed = true;
        this.#stored = 0;
        this.#pending = [];
        this.#o.onError(err as Error);
      }
    });
    this.#chain = run;
    this.hold(run);
    return run;
  }
}
