// Bounded concurrency per backend host, and the delivery dispatcher's queue
// per host (the semaphore's waiters, first in first out): a burst of closed
// feeds (or a queue drained after an outage) never opens more than `limit`
// POSTs at once to one backend, however many feeds and CrawlJobs point at it,
// and one host's queue never waits on another's.
import { Semaphore } from "../../lib/semaphore.ts";

export class HostLimiter {
  readonly #limit: number;
  readonly #hosts = new Map<string, Semaphore>();

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new Error(`per-host concurrency must be a positive integer, got ${limit}`);
    this.#limit = limit;
  }

  /** Runs `task` once fewer than `limit` tasks for `host` are running. */
  async run<T>(host: string, task: () => Promise<T>): Promise<T> {
    let slots = this.#hosts.get(host);
    if (!slots) {
      slots = new Semaphore(this.#limit);
      this.#hosts.set(host, slots);
    }
    try {
      return await slots.run(task);
    } finally {
      if (slots.active === 0 && slots.waiting === 0) this.#hosts.delete(host);
    }
  }
}
