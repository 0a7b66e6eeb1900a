// The delivery dispatcher: webhook POSTs run here, never in a reconcile
// worker. A reconcile decides (fresh read, ownership, URI, state machine) and
// hands the claim-and-POST of a due delivery to this dispatcher, which keeps
// one first-in-first-out queue per backend host:port and runs at most
// `perHostConcurrency` deliveries at once per host. A backend that hangs fills
// its own slots only; every other host's queue keeps moving, and no reconcile
// worker waits on any of them.
//
// State stays in the API: a queued delivery is still Pending (unclaimed), so
// a crash or close() loses nothing. close(graceMs) takes no more, drops the
// queues, lets the POSTs in flight finish (and write their result) for up to
// graceMs, then aborts the rest: their `Sending` stays and is resent under the
// same webhook-id by whoever delivers next, as after a crash.
import type { Logger } from "pino";
import { within } from "../runtime/within.ts";
import { HostLimiter } from "./host-limiter.ts";

/** One delivery's claim, POST and result write; `signal` aborts the POST when the dispatcher closes. */
export type DeliveryTask = (signal: AbortSignal) => Promise<void>;

/** How soon a reconcile looks again at a delivery still queued or in flight: doubling from the first to the last. */
const RECHECK_FIRST_MS = 500;
const RECHECK_MAX_MS = 10_000;

/** The host:port a URL's POSTs count against. */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "<invalid URL>";
  }
}

export class DeliveryDispatcher {
  readonly #limiter: HostLimiter;
  readonly #log: Logger;
  /** Deliveries queued or in flight, by key, with how often a reconcile found them busy. */
  readonly #busy = new Map<string, { rechecks: number }>();
  readonly #running = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #closing = false;

  constructor(options: { perHostConcurrency: number; logger: Logger }) {
    this.#limiter = new HostLimiter(options.perHostConcurrency);
    this.#log = options.logger;
  }

  /** Whether `key`'s delivery is queued or in flight here (a `Sending` found for it is this process's own). */
  busy(key: string): boolean {
    return this.#busy.has(key);
  }

  /**
   * When a reconcile should look again at `key`, which is busy here: the
   * result write usually brings it back sooner (a watch event); this is the
   * safety net for a task that ended without writing (a lost race, an API error).
   */
  recheckMs(key: string): number {
    const entry = this.#busy.get(key);
    if (!entry) return RECHECK_FIRST_MS;
    entry.rechecks += 1;
    return Math.min(RECHECK_FIRST_MS * 2 ** (entry.rechecks - 1), RECHECK_MAX_MS);
  }

  /**
   * Queues `task` behind the other deliveries to `url`'s host:port. Returns
   * false (and runs nothing) when `key` is already queued or in flight, or the
   * dispatcher is closed.
   */
  enqueue(key: string, url: string, task: DeliveryTask): boolean {
    if (this.#closing || this.#busy.has(key)) return false;
    this.#busy.set(key, { rechecks: 0 });
    const signal = this.#abort.signal;
    const run = this.#limiter
      .run(hostOf(url), async () => {
        // Closed while queued: it is still Pending in the API, nothing to undo.
        if (!this.#closing) await task(signal);
      })
      .catch((err: unknown) => {
        // The state in the API decides what happens next: the next reconcile reads it again.
        this.#log.warn({ err, key }, `Delivery of ${key} ended with an error; the next reconcile decides again`);
      })
      .finally(() => {
        this.#busy.delete(key);
        this.#running.delete(run);
      });
    this.#running.add(run);
    return true;
  }

  /** Resolves once nothing is queued or in flight. */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  /**
   * Takes no more deliveries and drops the queued ones; the POSTs in flight get
   * `graceMs` to finish, then are aborted. Resolves once all have ended.
   */
  async close(graceMs = 0): Promise<void> {
    this.#closing = true;
    if (graceMs > 0) await within(this.idle(), graceMs);
    this.#abort.abort(new Error("The delivery dispatcher is closing"));
    await this.idle();
  }
}
