// A controller: a work queue of `namespace/name` keys and N workers calling a
// level-triggered reconcile(request). Errors retry with the queue's per-key
// backoff; a TerminalError (errors.ts) is logged once and not retried;
// `requeueAfterMs` schedules a later look; success forgets the key's failures.
// Each reconcile gets a child logger carrying a reconcileID (as
// controller-runtime does), an AbortSignal that fires when the controller
// stops (shutdown grace over, or leadership lost), why the key was queued and
// how often it failed before; it feeds the reconcile metrics.
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { describeError, isConflict } from "../../kube/errors.ts";
import { reconcileDuration, reconcileErrors, reconcileTotal } from "../metrics.ts";
import { TerminalError } from "./errors.ts";
import { within } from "./within.ts";
import { type EnqueueReason, WorkQueue } from "./workqueue.ts";

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export interface ReconcileRequest {
  namespace: string;
  name: string;
  key: string;
  logger: Logger;
  /**
   * Aborts when the reconcile must give up: the shutdown grace is over or this
   * process lost the leader Lease. Pass it to every request that may block.
   */
  signal: AbortSignal;
  /** Why the key was queued: an informer event, a resync, a requeue-after, a retry after an error, or unknown. */
  reason: EnqueueReason;
  /** How many reconciles of this key failed in a row before this one (0: first try). */
  attempt: number;
}

type Reconcile = (request: ReconcileRequest) => Promise<ReconcileResult | undefined>;

interface ControllerOptions {
  name: string;
  reconcile: Reconcile;
  logger: Logger;
  workers?: number;
  /**
   * Called once when a reconcile throws a TerminalError (after it is logged):
   * where the reconciler's owner records an Event or a condition. Its own
   * failures are logged and otherwise ignored.
   */
  onTerminal?: (request: ReconcileRequest, error: TerminalError) => Promise<void> | void;
}

/** How a stop ended: every reconcile finished, or some ignored their abort and were left behind. */
export interface StopOutcome {
  abandoned: string[];
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  #reconcile: Reconcile;
  #onTerminal: ControllerOptions["onTerminal"];
  #log: Logger;
  #workers: number;
  #running: Promise<void>[] = [];
  /** The abort controllers of in-flight reconciles, by key. */
  #inFlight = new Map<string, AbortController>();
  #abortReason: string | undefined;

  constructor(options: ControllerOptions) {
    this.name = options.name;
    this.queue = new WorkQueue(options.name);
    this.#reconcile = options.reconcile;
    this.#onTerminal = options.onTerminal;
    this.#log = options.logger.child({ controller: options.name });
    this.#workers = options.workers ?? 2;
  }

  enqueue(namespace: string, name: string, reason: EnqueueReason = "event"): void {
    this.queue.add(`${namespace}/${name}`, reason);
  }

  start(): void {
    for (let i = 0; i < this.#workers; i++) this.#running.push(this.#worker());
  }

  /** Keys being reconciled right now. */
  get inFlight(): string[] {
    return [...this.#inFlight.keys()];
  }

  /**
   * At once and synchronously: stops taking keys and aborts every in-flight
   * reconcile's signal (leadership lost, or the shutdown grace is over).
   */
  abort(reason: string): void {
    this.queue.shutdown();
    this.#abortReason ??= reason;
    for (const ac of this.#inFlight.values()) if (!ac.signal.aborted) ac.abort(new Error(reason));
  }

  /**
   * Stops taking keys; in-flight reconciles get `graceMs` to finish, then
   * their signals abort and they get `unwindMs` more. A reconcile that ignores
   * its signal is left behind (named in the outcome) so shutdown stays bounded.
   */
  async stop(options: { graceMs?: number; unwindMs?: number } = {}): Promise<StopOutcome> {
    const { graceMs = Number.POSITIVE_INFINITY, unwindMs = 2_000 } = options;
    this.queue.shutdown();
    const all = Promise.all(this.#running).then(() => true);
    if (await within(all, graceMs)) return { abandoned: [] };
    this.abort(`Controller ${this.name} stopping`);
    if (await within(all, unwindMs)) return { abandoned: [] };
    return { abandoned: this.inFlight };
  }

  async #worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.processKey(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  /** One reconcile of one key, with metrics and requeue decisions. */
  async processKey(key: string): Promise<void> {
    const slash = key.indexOf("/");
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const logger = this.#log.child({ reconcileID: randomUUID(), namespace, name });
    const ac = new AbortController();
    if (this.#abortReason) ac.abort(new Error(this.#abortReason));
    this.#inFlight.set(key, ac);
    const request: ReconcileRequest = {
      namespace,
      name,
      key,
      logger,
      signal: ac.signal,
      reason: this.queue.reason(key),
      attempt: this.queue.failures(key),
    };
    const endTimer = reconcileDuration.startTimer({ controller: this.name });
    try {
      const result = await this.#reconcile(request);
      this.queue.forget(key);
      if (result?.requeueAfterMs !== undefined && result.requeueAfterMs >= 0) {
        reconcileTotal.inc({ controller: this.name, result: "requeue_after" });
        this.queue.addAfter(key, result.requeueAfterMs, "requeue");
      } else {
        reconcileTotal.inc({ controller: this.name, result: "success" });
      }
    } catch (err) {
      await this.#failed(request, err);
    } finally {
      this.#inFlight.delete(key);
      endTimer();
    }
  }

  async #failed(request: ReconcileRequest, err: unknown): Promise<void> {
    const { key, logger, signal } = request;
    if (signal.aborted) {
      // Stopping: the error is most likely the abort itself, and nothing is retried.
      reconcileTotal.inc({ controller: this.name, result: "aborted" });
      logger.info({ error: describeError(err) }, `Reconcile of ${this.name} ${key} aborted: ${signal.reason?.message}`);
      return;
    }
    reconcileErrors.inc({ controller: this.name });
    if (err instanceof TerminalError) {
      reconcileTotal.inc({ controller: this.name, result: "terminal" });
      this.queue.forget(key);
      logger.error(
        { error: err.message, reason: err.reason },
        `Reconcile of ${this.name} ${key} failed and will not be retried`,
      );
      try {
        await this.#onTerminal?.(request, err);
      } catch (hookErr) {
        logger.warn({ error: describeError(hookErr) }, `Could not record the terminal error of ${this.name} ${key}`);
      }
      return;
    }
    reconcileTotal.inc({ controller: this.name, result: "error" });
    const failures = this.queue.failures(key);
    // A conflict is optimistic concurrency doing its job (the object moved on
    // since the cache saw it): retry quietly.
    const level = isConflict(err) ? "debug" : "warn";
    logger[level]({ error: describeError(err), failures }, `Reconcile of ${this.name} ${key} failed; retrying`);
    if (!this.queue.shuttingDown) this.queue.addRateLimited(key);
  }
}
