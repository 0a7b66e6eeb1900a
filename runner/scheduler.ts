// The scheduler: Scrapy's slot model. Requests wait in the frontier (FIFO,
// breadth-first) or in a small priority lane (retries and redirects, served
// first); the pump moves them into per-host download slots while
// queued-in-slots + in-flight < concurrentRequests; a slot sends while its
// active count is below concurrentRequestsPerDomain and its delay (fixed, with
// jitter, or AutoThrottle's, never below the host's robots.txt Crawl-delay)
// has passed. It also knows when the crawl is done.
import type { RequestQueue } from "./frontier.ts";
import type { CrawlRequest } from "./request.ts";
import type { HostGate } from "./state/types.ts";
import { nextThrottleDelay } from "./throttle.ts";

export interface SchedulerOptions {
  frontier: RequestQueue;
  concurrency: number;
  perDomain: number;
  delayMs: number;
  randomizeDelay: boolean;
  throttle: { enabled: boolean; targetConcurrency: number; startDelayMs: number; maxDelayMs: number };
  /**
   * Sends and handles one request; it counts as in flight until the promise
   * settles. `observe(latencyMs, status)` feeds AutoThrottle for its slot;
   * `skipDelay()` says no request was made (an HTTP cache hit), so the slot's
   * download delay is not spent on it.
   */
  process(
    req: CrawlRequest,
    observe: (latencyMs: number, status: number) => void,
    skipDelay: () => void,
  ): Promise<void>;
  /** process() rejected: a bug, not a download error. */
  onProcessError(err: unknown, req: CrawlRequest): void;
  /** closeSpider.pageCount (0: none): never start more pages than this. */
  pageLimit: number;
  pagesDone(): number;
  /** The page limit was reached and nothing is left in flight. */
  onPageLimit(): void;
  /**
   * The least delay between requests to `origin` (robots.txt Crawl-delay), in
   * ms. A slot sends nothing to an origin until this settled, so even the first
   * requests to a host are spaced. Absent: no such floor.
   */
  originDelayMs?: (origin: string) => Promise<number>;
  /**
   * Politeness over every worker of a shared crawl (Redis): a request that
   * leaves its slot also waits for one of the host's shared slots and its
   * shared next-allowed time (this slot's delay), and frees it once
   * process() settled; AutoThrottle's observations go there too. `slotTtlMs`:
   * the longest a request can take, after which a dead worker's slot frees itself.
   */
  hostGate?: { gate: HostGate; slotTtlMs: number };
}

interface Slot {
  queue: CrawlRequest[];
  active: number;
  /** Earliest time the next request may start (download delay). */
  nextAt: number;
  /** AutoThrottle's current delay for this slot, ms. */
  throttleDelay: number;
  /** The least delay between two requests of this slot (the highest Crawl-delay of its origins), ms. */
  minDelay: number;
  /** Origins whose floor is known (originDelayMs settled). */
  origins: Set<string>;
  /** Waiting for an origin's floor: nothing is sent meanwhile. */
  waiting: boolean;
  timer?: NodeJS.Timeout;
  idleSince: number;
}

const SLOT_IDLE_MS = 60_000;

export class Scheduler {
  readonly #o: SchedulerOptions;
  readonly #lane: CrawlRequest[] = [];
  readonly #slots = new Map<string, Slot>();
  /** Timers of retries waiting for their delay. */
  readonly #timers = new Set<NodeJS.Timeout>();
  #slotQueued = 0;
  #inFlight = 0;
  /** Work outside the queues that may still add requests (hold()). */
  #held = 0;
  #stopped = false;
  #resolveDone: (() => void) | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  /** Ends the waits for the shared host gate when the crawl stops. */
  readonly #gateWaits = new AbortController();

  constructor(opts: SchedulerOptions) {
    this.#o = opts;
  }

  /** Requests waiting: frontier, priority lane, slot queues and retries waiting for their delay. */
  get queued(): number {
    return this.#o.frontier.size + this.#lane.length + this.#slotQueued + this.#timers.size;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Queues a new request at the back of the frontier. */
  push(req: CrawlRequest): void {
    this.#o.frontier.push(req);
  }

  /** Queues a redirect hop ahead of the frontier. */
  pushPriority(req: CrawlRequest): void {
    this.#lane.push(req);
  }

  /** Queues `req` ahead of the frontier after `waitMs` (a retry); dropped if the crawl stops first. */
  pushLater(req: CrawlRequest, waitMs: number): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (this.#stopped) return this.#checkDone();
      this.#lane.push(req);
      this.pump();
    }, waitMs);
    this.#timers.add(t);
  }

  /** Keeps the crawl from finishing until `work` settles (it may push requests meanwhile, e.g. robots.txt Sitemap lines). */
  hold(work: Promise<unknown>): void {
    this.#held++;
    work
      .catch(() => {})
      .finally(() => {
        this.#held--;
        this.pump();
      });
  }

  /** Starts sending; resolves when nothing is left to do, or after stop() once in-flight requests finished. */
  run(): Promise<void> {
    const done = new Promise<void>((resolve) => {
      this.#resolveDone = () => {
        clearInterval(this.#sweepTimer);
        resolve();
      };
    });
    this.#sweepTimer = setInterval(() => this.#sweepSlots(), SLOT_IDLE_MS / 2);
    this.#sweepTimer.unref();
    this.pump();
    return done;
  }

  /** Sends nothing new: requests waiting in slots and retries are dropped, in-flight ones finish. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#gateWaits.abort();
    for (const slot of this.#slots.values()) {
      this.#slotQueued -= slot.queue.length;
      slot.queue = [];
      if (slot.timer) clearTimeout(slot.timer);
      slot.timer = undefined;
    }
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#checkDone();
  }

  /** Moves requests from the queues into download slots while global concurrency allows. */
  pump(): void {
    const o = this.#o;
    while (!this.#stopped && this.#slotQueued + this.#inFlight < o.concurrency) {
      if (o.pageLimit > 0 && o.pagesDone() + this.#slotQueued + this.#inFlight >= o.pageLimit) break;
      const req = this.#lane.shift() ?? o.frontier.shift();
      if (!req) break;
      const slot = this.#slotFor(new URL(req.url).hostname);
      slot.queue.push(req);
      this.#slotQueued++;
      this.#processSlot(slot);
    }
    this.#checkDone();
  }

  #slotFor(key: string): Slot {
    let slot = this.#slots.get(key);
    if (!slot) {
      const throttleDelay = Math.max(this.#o.throttle.startDelayMs, this.#o.delayMs);
      slot = {
        queue: [],
        active: 0,
        nextAt: 0,
        throttleDelay,
        minDelay: 0,
        origins: new Set(),
        waiting: false,
        idleSince: Date.now(),
      };
      this.#slots.set(key, slot);
    }
    return slot;
  }

  /** downloadDelayMs (randomized) or AutoThrottle's delay, never below the Crawl-delay floor (not randomized). */
  #slotDelay(slot: Slot): number {
    const base = this.#o.throttle.enabled ? slot.throttleDelay : this.#o.delayMs;
    const delay = base <= 0 ? 0 : this.#o.randomizeDelay ? base * (0.5 + Math.random()) : base;
    return Math.max(delay, slot.minDelay);
  }

  /** Whether the floor of `req`'s origin is known; if not, asks for it and holds the slot until it is. */
  #originKnown(slot: Slot, req: CrawlRequest): boolean {
    const ask = this.#o.originDelayMs;
    if (!ask) return true;
    const origin = new URL(req.url).origin;
    if (slot.origins.has(origin)) return true;
    slot.waiting = true;
    ask(origin)
      .catch(() => 0)
      .then((ms) => {
        slot.origins.add(origin);
        slot.minDelay = Math.max(slot.minDelay, ms);
        slot.waiting = false;
        this.#processSlot(slot);
        this.#checkDone();
      });
    return false;
  }

  #processSlot(slot: Slot): void {
    if (slot.timer || slot.waiting) return;
    while (slot.queue.length > 0 && slot.active < this.#o.perDomain && !this.#stopped) {
      if (!this.#originKnown(slot, slot.queue[0] as CrawlRequest)) return;
      const now = Date.now();
      if (slot.nextAt > now) {
        slot.timer = setTimeout(() => {
          slot.timer = undefined;
          this.#processSlot(slot);
        }, slot.nextAt - now);
        return;
      }
      const req = slot.queue.shift() as CrawlRequest;
      this.#slotQueued--;
      slot.active++;
      this.#inFlight++;
      const delay = this.#slotDelay(slot);
      const before = slot.nextAt;
      if (delay > 0) slot.nextAt = now + delay;
      const skipDelay = () => {
        if (delay <= 0) return;
        slot.nextAt = before;
        if (slot.timer) clearTimeout(slot.timer);
        slot.timer = undefined;
      };
      const send = () =>
        this.#o.process(req, (latencyMs, status) => this.#autoThrottle(slot, latencyMs, status, req), skipDelay);
      (this.#o.hostGate ? this.#throughGate(req, delay, send) : send())
        .catch((err) => this.#o.onProcessError(err, req))
        .finally(() => {
          slot.active--;
          this.#inFlight--;
          if (slot.active === 0 && slot.queue.length === 0) slot.idleSince = Date.now();
          this.#processSlot(slot);
          this.pump();
        });
    }
  }

  /**
   * Sends once the shared gate granted the host a slot; a crawl stopped while
   * waiting sends nothing (the page stays leased and is handed out again).
   */
  async #throughGate(req: CrawlRequest, delayMs: number, send: () => Promise<void>): Promise<void> {
    const { gate, slotTtlMs } = this.#o.hostGate as NonNullable<SchedulerOptions["hostGate"]>;
    const host = new URL(req.url).hostname;
    const limits = { perHost: this.#o.perDomain, delayMs, slotTtlMs };
    const token = await gate.acquire(host, limits, this.#gateWaits.signal);
    if (token === undefined) return;
    try {
      await send();
    } finally {
      await gate.release(host, token).catch(() => {});
    }
  }

  /** Scrapy's AutoThrottle (see throttle.ts), per slot, and over all workers through the shared gate. */
  #autoThrottle(slot: Slot, latencyMs: number, status: number, req: CrawlRequest): void {
    const t = this.#o.throttle;
    if (!t.enabled) return;
    const shared = this.#o.hostGate?.gate;
    if (shared)
      void shared
        .observe(new URL(req.url).hostname, latencyMs, status, {
          startDelayMs: t.startDelayMs,
          targetConcurrency: t.targetConcurrency,
          minDelayMs: this.#o.delayMs,
          maxDelayMs: t.maxDelayMs,
        })
        .catch(() => {});
    slot.throttleDelay = nextThrottleDelay(slot.throttleDelay, latencyMs, status, {
      targetConcurrency: t.targetConcurrency,
      minDelayMs: this.#o.delayMs,
      maxDelayMs: t.maxDelayMs,
    });
  }

  /** Forgets slots idle for a minute (Scrapy does the same), keeping memory flat over many hosts. */
  #sweepSlots(): void {
    const cutoff = Date.now() - SLOT_IDLE_MS;
    for (const [key, slot] of this.#slots) {
      if (slot.active === 0 && slot.queue.length === 0 && !slot.timer && !slot.waiting && slot.idleSince < cutoff)
        this.#slots.delete(key);
    }
  }

  #checkDone(): void {
    if (!this.#resolveDone) return;
    const idle = this.#inFlight === 0 && this.#slotQueued === 0;
    if (this.#stopped) {
      if (idle) this.#resolveDone();
      return;
    }
    if (!idle || this.#timers.size > 0 || this.#held > 0) return;
    if (this.#lane.length === 0 && this.#o.frontier.size === 0) this.#resolveDone();
    else if (this.#o.pageLimit > 0 && this.#o.pagesDone() >= this.#o.pageLimit) this.#o.onPageLimit();
  }
}
