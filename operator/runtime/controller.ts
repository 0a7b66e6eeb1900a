// A controller: a work queue of `namespace/name` keys and N workers calling a
// level-triggered reconcile(key). Errors retry with the queue's per-key
// backoff; `requeueAfterMs` schedules a later look; success forgets the key's
// failures. Each reconcile gets a child logger carrying a reconcileID (as
// controller-runtime does) and feeds the reconcile metrics.
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { describeError, isConflict } from "../../kube/errors.ts";
import { reconcileDuration, reconcileErrors, reconcileTotal } from "../metrics.ts";
import { WorkQueue } from "./workqueue.ts";

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export interface ReconcileRequest {
  namespace: string;
  name: string;
  key: string;
  logger: Logger;
}

type Reconcile = (request: ReconcileRequest) => Promise<ReconcileResult | undefined>;

interface ControllerOptions {
  name: string;
  reconcile: Reconcile;
  logger: Logger;
  workers?: number;
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  #reconcile: Reconcile;
  #log: Logger;
  #workers: number;
  #running: Promise<void>[] = [];

  constructor(options: ControllerOptions) {
    this.name = options.name;
    this.queue = new WorkQueue(options.name);
    this.#reconcile = options.reconcile;
    this.#log = options.logger.child({ controller: options.name });
    this.#workers = options.workers ?? 2;
  }

  enqueue(namespace: string, name: string): void {
    this.queue.add(`${namespace}/${name}`);
  }

  start(): void {
    for (let i = 0; i < this.#workers; i++) this.#running.push(this.#worker());
  }

  /** Stops taking keys and waits for in-flight reconciles to finish. */
  async stop(): Promise<void> {
    this.queue.shutdown();
    await Promise.all(this.#running);
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
    const endTimer = reconcileDuration.startTimer({ controller: this.name });
    try {
      const result = await this.#reconcile({ namespace, name, key, logger });
      this.queue.forget(key);
      if (result?.requeueAfterMs !== undefined && result.requeueAfterMs >= 0) {
        reconcileTotal.inc({ controller: this.name, result: "requeue_after" });
        this.queue.addAfter(key, result.requeueAfterMs);
      } else {
        reconcileTotal.inc({ controller: this.name, result: "success" });
      }
    } catch (err) {
      reconcileTotal.inc({ controller: this.name, result: "error" });
      reconcileErrors.inc({ controller: this.name });
      const failures = this.queue.failures(key);
      // A conflict is optimistic concurrency doing its job (the object moved on
      // since the cache saw it): retry quietly.
      const level = isConflict(err) ? "debug" : "warn";
      logger[level]({ error: describeError(err), failures }, `Reconcile of ${this.name} ${key} failed; retrying`);
      if (!this.queue.shuttingDown) this.queue.addRateLimited(key);
    } finally {
      endTimer();
    }
  }
}
