// A work queue of keys with client-go's semantics: a key waiting in the queue
// is there once (dedup), a key being processed is never handed out again until
// done() (re-adds meanwhile are remembered and delivered after), delayed adds,
// and rate-limited retries: per-key exponential backoff (5 ms · 2^n, capped at
// 1000 s) combined with a global token bucket (10/s, burst 100) — the max of
// both, like client-go's DefaultControllerRateLimiter.
// Each queued key remembers why it was added first (an informer event, a
// resync, a requeue-after, a retry): the reconcile's `reason`.

import { backoffDelayMs } from "../../lib/backoff.ts";
import { workqueueAdds, workqueueDepth, workqueueRetries } from "../metrics.ts";

interface RateLimiterOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Token bucket refill per second (overall retry rate). */
  qps?: number;
  burst?: number;
}

/** Why a key was queued: what the reconcile sees as `reason`. */
export type EnqueueReason = "event" | "resync" | "requeue" | "retry" | "unknown";

export class WorkQueue {
  readonly name: string;
  #queue: string[] = [];
  #dirty = new Set<string>();
  #processing = new Set<string>();
  #delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  #failures = new Map<string, number>();
  /** Why each waiting (dirty) key was added; moved to #handedOut when a worker takes it. */
  #reasons = new Map<string, EnqueueReason>();
  #handedOut = new Map<string, EnqueueReason>();
  #waiters: ((key: string | undefined) => void)[] = [];
  #shuttingDown = false;
  #baseDelayMs: number;
  #maxDelayMs: number;
  #qps: number;
  #burst: number;
  #tokens: number;
  #lastRefill: number;
  #now: () => number;

  constructor(name: string, options: RateLimiterOptions & { now?: () => number } = {}) {
    this.name = name;
    this.#baseDelayMs = options.baseDelayMs ?? 5;
    this.#maxDelayMs = options.maxDelayMs ?? 1_000_000;
    this.#qps = options.qps ?? 10;
    this.#burst = options.burst ?? 100;
    this.#tokens = this.#burst;
    this.#now = options.now ?? Date.now;
    this.#lastRefill = this.#now();
  }

  /** Keys ready or waiting for a delay (what the depth metric shows). */
  get depth(): number {
    return this.#queue.length + this.#delayed.size;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  #updateDepth() {
    workqueueDepth.set({ name: this.name }, this.depth);
  }

  add(key: string, reason: EnqueueReason = "unknown"): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    workqueueAdds.inc({ name: this.name });
    this.#dirty.add(key);
    this.#reasons.set(key, reason);
    if (this.#processing.has(key)) return; // delivered again by done()
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#handOut(key);
      waiter(key);
    } else {
      this.#queue.push(key);
    }
    this.#updateDepth();
  }

  #handOut(key: string): void {
    this.#dirty.delete(key);
    this.#processing.add(key);
    this.#handedOut.set(key, this.#reasons.get(key) ?? "unknown");
    this.#reasons.delete(key);
  }

  /** Why the key a worker holds was queued (valid between get() and done()). */
  reason(key: string): EnqueueReason {
    return this.#handedOut.get(key) ?? "unknown";
  }

  /** Adds the key after `delayMs`; an earlier pending delay for the same key wins. */
  addAfter(key: string, delayMs: number, reason: EnqueueReason = "requeue"): void {
    if (this.#shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key, reason);
      return;
    }
    const at = this.#now() + delayMs;
    const existing = this.#delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key, reason);
    }, delayMs);
    timer.unref();
    this.#delayed.set(key, { at, timer });
    this.#updateDepth();
  }

  /** The delay the rate limiter gives the key's next retry (and counts the failure). */
  when(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    const perItem = backoffDelayMs(failures + 1, {
      baseMs: this.#baseDelayMs,
      capMs: this.#maxDelayMs,
      jitter: "none",
    });
    return Math.max(perItem, this.#bucketDelay());
  }

  #bucketDelay(): number {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#lastRefill) / 1000) * this.#qps);
    this.#lastRefill = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.#qps) * 1000);
  }

  addRateLimited(key: string): void {
    workqueueRetries.inc({ name: this.name });
    this.addAfter(key, this.when(key), "retry");
  }

  /** Resets the key's failure count (call after a successful reconcile). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** The next key to process, or undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    if (this.#shuttingDown) return Promise.resolve(undefined);
    const key = this.#queue.shift();
    if (key !== undefined) {
      this.#handOut(key);
      this.#updateDepth();
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Marks the key processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.#processing.delete(key);
    this.#handedOut.delete(key);
    if (this.#dirty.has(key)) {
      const reason = this.#reasons.get(key);
      this.#dirty.delete(key);
      this.add(key, reason);
    }
  }

  shutdown(): void {
    this.#shuttingDown = true;
    for (const { timer } of this.#delayed.values()) clearTimeout(timer);
    this.#delayed.clear();
    this.#queue = [];
    this.#reasons.clear();
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
    this.#updateDepth();
  }

  /** Whether the key is being processed right now (for tests and diagnostics). */
  isProcessing(key: string): boolean {
    return this.#processing.has(key);
  }
}
