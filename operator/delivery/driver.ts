// Drives one persisted delivery through state.ts's state machine: decide on
// the status as read, then give up (Failed), defer (the signing Secret is
// missing), or hand a due delivery to the dispatcher (delivery-dispatcher.ts),
// which re-reads it in the backend's host slot, claims it (Sending,
// attempts+1), POSTs and persists the attempt's result. The reconcile never
// waits for a POST. Every status write goes through target.ts's writeOrReread.
import type { Logger } from "pino";
import type { Webhook } from "standardwebhooks";
import type { CrawlFeed, DeliveryStatus } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob, IngestSpec } from "../../crds/schema/crawljob.ts";
import type { KubeObject } from "../../kube/client.ts";
import type { BackoffPolicy } from "../../lib/backoff.ts";
import { deliveryLatencySeconds, webhookDeliveries } from "../metrics.ts";
import type { EventRecorder } from "../runtime/events.ts";
import type { DeliveryDispatcher } from "./delivery-dispatcher.ts";
import { type DispatcherFor, PRIVATE_NETWORKS_SETTING } from "./dispatchers.ts";
import { SigningSecretError, type WriteResult } from "./kube.ts";
import type { SigningSecrets } from "./secrets.ts";
import { describeUrl, type WebhookSender } from "./sender.ts";
import { signatureHeaders } from "./signing.ts";
import { type AttemptOutcome, afterAttempt, decide, deferred } from "./state.ts";
import {
  CONFLICT_REQUEUE_MS,
  continueWith,
  type DeliveryTarget,
  type Result,
  type Step,
  writeOrReread,
  writeStep,
} from "./target.ts";

type WebhookSpec = NonNullable<IngestSpec["webhook"]>;
type Delivered = CrawlFeed | CrawlJob;

/** Counters the delivery updates; defaults to operator/metrics.ts. */
export interface DeliveryMetrics {
  outcome(outcome: "delivered" | "retry" | "failed" | "conflict"): void;
  latencySeconds(seconds: number): void;
}

export const defaultMetrics: DeliveryMetrics = {
  outcome: (outcome) => webhookDeliveries.inc({ outcome }),
  latencySeconds: (seconds) => deliveryLatencySeconds.observe(seconds),
};

const DEFAULT_TIMEOUT_SECONDS = 30;
const DEFAULT_MAX_ATTEMPTS = 12;

interface DriverDeps {
  sender: WebhookSender;
  /** Where due deliveries are claimed and POSTed, per backend host. */
  dispatcher: DeliveryDispatcher;
  dispatcherFor: DispatcherFor;
  /** The operator's webhook private networks as configured (CIDRs and host names), for messages. */
  privateNetworks: readonly string[];
  signers: SigningSecrets;
  events: EventRecorder;
  metrics: DeliveryMetrics;
  now: () => Date;
  random: () => number;
  backoff: BackoffPolicy;
}

/** One drive of one delivery: the webhook it goes to and where it logs. */
interface Drive {
  /** The dispatcher's key for this delivery (one queued or in-flight delivery per key). */
  key: string;
  webhook: WebhookSpec;
  namespace: string;
  log: Logger;
  maxAttempts: number;
  /** Set inside the dispatcher's host slot, where a due delivery is claimed and POSTed; aborts the POST. */
  signal?: AbortSignal;
}

/** A claim (`Sending`) decided on, with whether it resumes an interrupted attempt. */
type Claim = { claim: DeliveryStatus; resumed: boolean };

export class DeliveryDriver {
  readonly #d: DriverDeps;

  constructor(deps: DriverDeps) {
    this.#d = deps;
  }

  /**
   * Decides on the delivery as read: settles it, waits, or hands a due one to
   * the dispatcher and returns when to look again. Never POSTs itself.
   */
  async drive<T extends Delivered>(
    key: string,
    target: DeliveryTarget<T>,
    start: T,
    webhook: WebhookSpec,
    namespace: string,
    log: Logger,
  ): Promise<Result> {
    const drive: Drive = { key, webhook, namespace, log, maxAttempts: webhook.maxAttempts ?? DEFAULT_MAX_ATTEMPTS };
    return this.#run(target, start, drive);
  }

  async #run<T extends Delivered>(target: DeliveryTarget<T>, start: T, drive: Drive): Promise<Result> {
    const out = await writeOrReread(
      () => target.read(),
      start,
      (object) => this.#next(target, object, drive),
    );
    if (out === "gone") return {};
    if (out === "exhausted") return { requeueAfterMs: CONFLICT_REQUEUE_MS };
    return out;
  }

  /**
   * Queues the claim and POST in the backend's host slot. There the delivery
   * is read again (it may have waited behind others) and decided afresh; its
   * result reaches the work queue through the status write (a watch event),
   * or through the recheck this returns.
   */
  #handOff<T extends Delivered>(target: DeliveryTarget<T>, drive: Drive): Result {
    const { dispatcher } = this.#d;
    dispatcher.enqueue(drive.key, drive.webhook.url, async (signal) => {
      const fresh = await target.read();
      if (fresh) await this.#run(target, fresh, { ...drive, signal });
    });
    return { requeueAfterMs: dispatcher.recheckMs(drive.key) };
  }

  /** Counts a delivery given up without a POST, and says so in the log and an Event. */
  async reject(describe: string, object: Delivered, status: DeliveryStatus, log: Logger): Promise<void> {
    this.#d.metrics.outcome("failed");
    await this.#failed(describe, object, status, log);
  }

  async #next<T extends Delivered>(target: DeliveryTarget<T>, object: T, drive: Drive): Promise<Step> {
    const current = target.status(object);
    const decision = decide(current, this.#d.now(), drive.maxAttempts);
    if (decision.action === "done") return { settle: {} };
    if (decision.action === "wait") return { settle: { requeueAfterMs: decision.delayMs } };
    if (decision.action === "fail") {
      return writeStep(target, object, decision.status, async (written) => {
        await this.reject(target.describe, written, decision.status, drive.log);
        return {};
      });
    }
    // Sign before claiming: a missing Secret is a configuration problem, not
    // an attempt. It is retried on the backoff schedule without using one up.
    let signer: Webhook;
    try {
      signer = await this.#d.signers.signer(drive.namespace, drive.webhook.signingSecretRef);
    } catch (err) {
      if (!(err instanceof SigningSecretError)) throw err;
      const waiting = deferred(current, err.message, this.#d.now(), this.#d.backoff, this.#d.random);
      drive.log.warn({ reason: err.message }, `Deferred the webhook of ${target.describe}: signing secret unavailable`);
      return writeStep(target, object, waiting, async () => ({
        requeueAfterMs: Date.parse(waiting.nextAttemptAt!) - this.#d.now().getTime(),
      }));
    }
    const signal = drive.signal;
    if (!signal) return { settle: this.#handOff(target, drive) };
    return { write: () => this.#claimAndPost(target, object, decision, signer, drive, signal) };
  }

  /**
   * Claims, POSTs and records, in the dispatcher's host slot for the backend:
   * feeds queued behind a slow backend stay Pending (and unclaimed) until a
   * slot is free. An attempt the dispatcher's close() interrupts is not
   * recorded: its Sending stays, to be resent under the same webhook-id.
   */
  async #claimAndPost<T extends Delivered>(
    target: DeliveryTarget<T>,
    object: T,
    { claim, resumed }: Claim,
    signer: Webhook,
    drive: Drive,
    signal: AbortSignal,
  ): Promise<WriteResult<() => Promise<Result>>> {
    const { webhook, log } = drive;
    const interrupted: WriteResult<() => Promise<Result>> = { ok: true, object: async () => ({}) };
    if (signal.aborted) return interrupted;
    const claimed = await target.write(object, claim);
    if (!claimed.ok) return claimed;
    if (resumed) {
      log.info(
        { attempts: claim.attempts },
        `Resending the webhook of ${target.describe} after an interrupted attempt`,
      );
    }
    const allowPrivate = webhook.allowPrivateNetworks === true;
    const outcome = await this.#d.sender.post({
      url: webhook.url,
      body: target.body,
      headers: signatureHeaders(signer, target.webhookId, this.#d.now(), target.body),
      timeoutMs: (webhook.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000,
      dispatcher: this.#d.dispatcherFor(webhook.url, allowPrivate),
      quoteBody: !allowPrivate,
      blockedHint: this.#blockedHint(allowPrivate),
      signal,
    });
    // Only an attempt the abort cut short is left unrecorded; an answer that came in is written.
    if (signal.aborted && outcome.kind === "retry") {
      log.info(`Interrupted the webhook of ${target.describe}: the delivery is closing; it stays Sending`);
      return interrupted;
    }
    return continueWith(claimed, (written) => this.#record(target, written, claim, outcome, drive));
  }

  /** Which setting refused a private address: the job's, or the operator's list it can only narrow. */
  #blockedHint(allowPrivate: boolean): string {
    if (!allowPrivate) return "the CrawlJob's ingest.webhook.allowPrivateNetworks is false (public addresses only)";
    const listed = this.#d.privateNetworks.length > 0 ? this.#d.privateNetworks.join(", ") : "none";
    return (
      "ingest.webhook.allowPrivateNetworks: true allows only the private networks the operator allows, " +
      `and its ${PRIVATE_NETWORKS_SETTING} allows: ${listed}`
    );
  }

  /**
   * Persists an attempt's result. A conflict here usually means a metadata
   * edit (a label, an annotation) during the POST: while the object still
   * shows our claim, the result is applied on top of the fresh copy.
   */
  async #record<T extends Delivered>(
    target: DeliveryTarget<T>,
    claimedObject: T,
    claim: DeliveryStatus,
    outcome: AttemptOutcome,
    drive: Drive,
  ): Promise<Result> {
    const policy = { maxAttempts: drive.maxAttempts, backoff: this.#d.backoff };
    const result = afterAttempt(claim, outcome, this.#d.now(), policy, this.#d.random);
    this.#count(outcome, result, target);
    const lost = (): Result => {
      drive.log.warn(`Lost the result of the webhook of ${target.describe}: the object changed or is gone`);
      return { requeueAfterMs: CONFLICT_REQUEUE_MS };
    };
    const out = await writeOrReread(
      () => target.read(),
      claimedObject,
      async (object) => {
        const status = target.status(object);
        if (status?.state !== "Sending" || status.attempts !== claim.attempts) return { settle: lost() };
        return writeStep(target, object, result, (written) => this.#report(target, written, result, drive));
      },
    );
    return out === "gone" || out === "exhausted" ? lost() : out;
  }

  /** Logs a persisted result; a retry comes back at its nextAttemptAt. */
  async #report<T extends Delivered>(
    target: DeliveryTarget<T>,
    written: T,
    result: DeliveryStatus,
    { webhook, log }: Drive,
  ): Promise<Result> {
    const fields = {
      attempts: result.attempts,
      code: result.lastResponseCode,
      webhookId: target.webhookId,
      url: describeUrl(webhook.url),
    };
    if (result.state === "Delivered") {
      log.info(fields, `Delivered the webhook of ${target.describe}`);
      return {};
    }
    if (result.state === "Failed") {
      await this.#failed(target.describe, written, result, log);
      return {};
    }
    const delayMs = Math.max(Date.parse(result.nextAttemptAt!) - this.#d.now().getTime(), 0);
    log.info(
      { ...fields, error: result.lastError, retryInMs: delayMs },
      `Will retry the webhook of ${target.describe}`,
    );
    return { requeueAfterMs: delayMs };
  }

  #count(outcome: AttemptOutcome, result: DeliveryStatus, target: DeliveryTarget<Delivered>): void {
    const { metrics, now } = this.#d;
    if (outcome.kind === "delivered") {
      metrics.outcome("delivered");
      const ready = target.readyAt ? Date.parse(target.readyAt) : Number.NaN;
      if (!Number.isNaN(ready)) metrics.latencySeconds(Math.max(now().getTime() - ready, 0) / 1000);
    } else if (outcome.kind === "conflict") {
      metrics.outcome("conflict");
    } else {
      metrics.outcome(result.state === "Failed" ? "failed" : "retry");
    }
  }

  async #failed(describe: string, object: Delivered, status: DeliveryStatus, log: Logger): Promise<void> {
    const message = `Webhook of ${describe} failed after ${status.attempts} attempt(s): ${status.lastError ?? "unknown error"}`;
    log.warn({ attempts: status.attempts, code: status.lastResponseCode, error: status.lastError }, message);
    // Never throws: an Event that cannot be written is logged.
    await this.#d.events.record(object as Delivered & KubeObject, "Warning", "DeliveryFailed", message);
  }
}
