// Bounded concurrency per backend host: a burst of closed feeds (or a queue
// drained after an outage) never opens more than `limit` POSTs at once to one
// backend, however many feeds and CrawlJobs point at it.

export class HostLimiter {
  readonly #limit: number;
  readonly #hosts = new Map<string, { active: number; waiting: Array<() => void> }>();

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new Error(`per-host concurrency must be a positive integer, got ${limit}`);
    this.#limit = limit;
  }

  /** Runs `task` once fewer than `limit` tasks for `host` are running. */
  async run<T>(host: string, task: () => Promise<T>): Promise<T> {
    let slot = this.#hosts.get(host);
    if (!slot) {
      slot = { active: 0, waiting: [] };
      this.#hosts.set(host, slot);
    }
    if (slot.active >= this.#limit) {
      await new Promise<void>((resolve) => slot.waiting.push(resolve));
    } else {
      slot.active++;
    }
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter (active stays the same), or free it.
      const next = slot.waiting.shift();
      if (next) next();
      else if (--slot.active === 0) this.#hosts.delete(host);
    }
  }

  /** Running tasks for `host` (for tests and metrics). */
  active(host: string): number {
    return this.#hosts.get(host)?.active ?? 0;
  }
}
