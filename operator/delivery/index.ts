// Webhook delivery: drives the persisted delivery state machine of a
// CrawlFeed (feed.closed, mode perFeed) or of a CrawlJob's completion event
// (crawl.completed, mode onCompletion). The operator-core controller calls
// `reconcile` from its CrawlFeed work queue (requeueing after
// `requeueAfterMs`) and `deliverCompletion` once the runner finished.
//
// Crash safety: the claim (`Sending`, attempts+1) is persisted with a
// resourceVersion precondition before the POST, and the result after it. A
// process that dies in between leaves `Sending` behind; whoever reads it next
// sends again under the same webhook-id (at-least-once, never lost). Retry
// times live in `nextAttemptAt`, so a restarted operator resumes the backoff.
import { hostname } from "node:os";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Webhook } from "standardwebhooks";
import type { SecretKeyRef } from "../../crds/schema/common.ts";
import { type CrawlFeed, type DeliveryStatus, REDELIVER_ANNOTATION } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob, IngestSpec } from "../../crds/schema/crawljob.ts";
import type { KubeClient, KubeObject } from "../../kube/client.ts";
import { type BackoffPolicy, backoffDelayMs } from "../../lib/backoff.ts";
import { deliveryLatencySeconds, webhookDeliveries } from "../metrics.ts";
import { EventRecorder } from "../runtime/events.ts";
import { createDispatchers, type DispatcherFor } from "./dispatchers.ts";
import { DEFAULT_SECRET_KEY, DeliveryApi, SigningSecretError, type WriteResult } from "./kube.ts";
import { ownershipProblem } from "./ownership.ts";
import { type CrawlJobRef, crawlCompletedEvent, feedClosedEvent } from "./payload.ts";
import { describeUrl, WebhookSender } from "./sender.ts";
import { signatureHeaders, webhookSigner } from "./signing.ts";
import { type AttemptOutcome, afterAttempt, DEFAULT_BACKOFF, type DeliveryPolicy, decide, redeliver } from "./state.ts";

export { completionWebhookId, feedWebhookId } from "./payload.ts";
export { DEFAULT_BACKOFF } from "./state.ts";

export type WebhookSpec = NonNullable<IngestSpec["webhook"]>;
export type Result = { requeueAfterMs?: number };

/** Counters the delivery updates; defaults to operator/metrics.ts. */
export interface DeliveryMetrics {
  outcome(outcome: "delivered" | "retry" | "failed" | "conflict"): void;
  latencySeconds(seconds: number): void;
}

export interface FeedDeliveryDeps {
  kc: KubeConfig;
  /** The API client (default: one of its own from `kc`, closed by `close`). */
  client?: KubeClient;
  /** Where DeliveryFailed Events go (default: an EventRecorder on the client). */
  events?: EventRecorder;
  logger: Logger;
  now?: () => Date;
  /** The signing key's bytes for a CrawlJob's signingSecretRef (default: read the Secret). */
  fetchSigningSecret?: (namespace: string, ref: SecretKeyRef) => Promise<Uint8Array>;
  /** Concurrent POSTs per backend host:port (default 4). */
  perHostConcurrency?: number;
  /** Retry timing when the backend sends no Retry-After (default 5 s doubling to 1 h, full jitter). */
  backoff?: Partial<BackoffPolicy>;
  random?: () => number;
  /** The undici dispatcher per allowPrivateNetworks value (default: the address guard, or a plain Agent). */
  dispatcherFor?: DispatcherFor;
  metrics?: DeliveryMetrics;
}

export interface FeedDeliveryReconciler {
  /** Drives one CrawlFeed's delivery one step, or until it must wait. */
  reconcile(feed: CrawlFeed, job: CrawlJob | undefined): Promise<Result>;
  /** Drives the CrawlJob's crawl.completed delivery (mode onCompletion), kept in status.completionDelivery. */
  deliverCompletion(job: CrawlJob, feeds: readonly CrawlFeed[]): Promise<Result>;
  /** Closes the connection pools. */
  close(): Promise<void>;
}

const defaultMetrics: DeliveryMetrics = {
  outcome: (outcome) => webhookDeliveries.inc({ outcome }),
  latencySeconds: (seconds) => deliveryLatencySeconds.observe(seconds),
};

/** How long to come back after losing a write race (someone else changed the object). */
const CONFLICT_REQUEUE_MS = 1_000;
/** Re-reads after a conflicting write before handing back to the work queue. */
const MAX_CONFLICT_RETRIES = 5;
const DEFAULT_TIMEOUT_SECONDS = 30;
const DEFAULT_MAX_ATTEMPTS = 12;
/** How long a signing Secret read is reused. */
const SECRET_CACHE_MS = 10_000;

/** One persisted delivery: where its status lives and what it sends. */
interface DeliveryTarget<T extends CrawlFeed | CrawlJob> {
  /** For logs and events, e.g. `CrawlFeed crawl/books-7f3a9c01aa`. */
  describe: string;
  read(): Promise<T | undefined>;
  status(object: T): DeliveryStatus | undefined;
  write(object: T, status: DeliveryStatus): Promise<WriteResult<T>>;
  /** The object Events are recorded on. */
  eventObject(object: T): CrawlFeed | CrawlJob;
  webhookId: string;
  body: string;
  /** When the data became ready (the feed's closedAt), for the latency histogram. */
  readyAt?: string;
}

export function createFeedDeliveryReconciler(deps: FeedDeliveryDeps): FeedDeliveryReconciler {
  const api = new DeliveryApi(deps.client ?? deps.kc);
  const events =
    deps.events ??
    new EventRecorder(api.client, {
      component: "feedcrawl-operator",
      host: process.env.HOSTNAME ?? hostname(),
      logger: deps.logger,
    });
  const now = deps.now ?? (() => new Date());
  const random = deps.random ?? Math.random;
  const backoff: BackoffPolicy = { ...DEFAULT_BACKOFF, ...deps.backoff };
  const metrics = deps.metrics ?? defaultMetrics;
  const sender = new WebhookSender({ perHostConcurrency: deps.perHostConcurrency ?? 4, now });
  const owned = deps.dispatcherFor ? undefined : createDispatchers();
  const dispatcherFor = deps.dispatcherFor ?? owned!.dispatcherFor;
  const readSecret = deps.fetchSigningSecret ?? ((namespace, ref) => api.readSecret(namespace, ref));
  // A short cache: a burst of feeds of one CrawlJob reads its Secret once, and
  // a rotated secret is used within SECRET_CACHE_MS. Failures are not cached.
  const secrets = new Map<string, { until: number; bytes: Promise<Uint8Array> }>();
  const fetchSecret = (namespace: string, ref: SecretKeyRef): Promise<Uint8Array> => {
    const key = `${namespace}/${ref.name}/${ref.key ?? DEFAULT_SECRET_KEY}`;
    const cached = secrets.get(key);
    if (cached && cached.until > Date.now()) return cached.bytes;
    const bytes = readSecret(namespace, ref);
    secrets.set(key, { until: Date.now() + SECRET_CACHE_MS, bytes });
    bytes.catch(() => secrets.delete(key));
    return bytes;
  };
  /** Objects this process is POSTing for right now: a `Sending` it finds for one of them is its own. */
  const inFlight = new Set<string>();

  async function signerFor(namespace: string, webhook: WebhookSpec): Promise<Webhook | undefined> {
    if (!webhook.signingSecretRef) return undefined;
    const bytes = await fetchSecret(namespace, webhook.signingSecretRef);
    try {
      return webhookSigner(bytes);
    } catch (err) {
      throw new SigningSecretError(
        `Secret ${namespace}/${webhook.signingSecretRef.name} key "${webhook.signingSecretRef.key ?? DEFAULT_SECRET_KEY}": ${(err as Error).message}`,
      );
    }
  }

  async function drive<T extends CrawlFeed | CrawlJob>(
    target: DeliveryTarget<T>,
    start: T,
    webhook: WebhookSpec,
    namespace: string,
    log: Logger,
  ): Promise<Result> {
    const policy: DeliveryPolicy = { maxAttempts: webhook.maxAttempts ?? DEFAULT_MAX_ATTEMPTS, backoff };
    let object = start;
    for (let round = 0; round <= MAX_CONFLICT_RETRIES; round++) {
      const current = target.status(object);
      const decision = decide(current, now(), policy.maxAttempts);
      if (decision.action === "done") return {};
      if (decision.action === "wait") return { requeueAfterMs: decision.delayMs };
      if (decision.action === "fail") {
        const written = await target.write(object, decision.status);
        if (!written.ok) {
          const fresh = written.reason === "conflict" ? await target.read() : undefined;
          if (!fresh) return {};
          object = fresh;
          continue;
        }
        metrics.outcome("failed");
        await failed(target, written.object, decision.status, log);
        return {};
      }

      // Sign before claiming: a missing Secret is a configuration problem, not
      // an attempt. It is retried on the backoff schedule without using one up.
      let signer: Webhook | undefined;
      try {
        signer = await signerFor(namespace, webhook);
      } catch (err) {
        if (!(err instanceof SigningSecretError)) throw err;
        const attempts = current?.attempts ?? 0;
        const waiting: DeliveryStatus = {
          state: "Pending",
          attempts,
          lastError: err.message,
          nextAttemptAt: new Date(
            now().getTime() + backoffDelayMs(Math.max(attempts, 1), backoff, random),
          ).toISOString(),
        };
        if (current?.lastResponseCode !== undefined) waiting.lastResponseCode = current.lastResponseCode;
        log.warn({ reason: err.message }, `Deferred the webhook of ${target.describe}: signing secret unavailable`);
        const written = await target.write(object, waiting);
        if (!written.ok) {
          const fresh = written.reason === "conflict" ? await target.read() : undefined;
          if (!fresh) return {};
          object = fresh;
          continue;
        }
        return { requeueAfterMs: Date.parse(waiting.nextAttemptAt!) - now().getTime() };
      }

      // Claim and POST inside the backend's host slot: feeds queued behind a
      // slow backend stay Pending (and unclaimed) until a slot is free.
      const claimedObject = object;
      const attempt = await sender.withHostSlot(webhook.url, async () => {
        const claimed = await target.write(claimedObject, decision.claim);
        if (!claimed.ok) return claimed;
        if (decision.resumed) {
          log.info(
            { attempts: decision.claim.attempts },
            `Resending the webhook of ${target.describe} after an interrupted attempt`,
          );
        }
        const sentAt = now();
        const headers = signer
          ? signatureHeaders(signer, target.webhookId, sentAt, target.body)
          : { "webhook-id": target.webhookId, "webhook-timestamp": String(Math.floor(sentAt.getTime() / 1000)) };
        const outcome = await sender.post({
          url: webhook.url,
          body: target.body,
          headers,
          timeoutMs: (webhook.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000,
          dispatcher: dispatcherFor(webhook.allowPrivateNetworks === true),
        });
        return { ok: true as const, object: claimed.object, outcome };
      });
      if (!attempt.ok) {
        if (attempt.reason === "gone") return {};
        // Someone else wrote in between: look again at what they wrote.
        const fresh = await target.read();
        if (!fresh) return {};
        object = fresh;
        continue;
      }
      object = attempt.object;
      const outcome = attempt.outcome;
      const result = afterAttempt(decision.claim, outcome, now(), policy, random);
      countOutcome(outcome, result, target);

      const written = await writeResult(target, object, decision.claim, result);
      if (!written) {
        log.warn(`Lost the result of the webhook of ${target.describe}: the object changed or is gone`);
        return { requeueAfterMs: CONFLICT_REQUEUE_MS };
      }
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
        await failed(target, written, result, log);
        return {};
      }
      const delayMs = Math.max(Date.parse(result.nextAttemptAt!) - now().getTime(), 0);
      log.info(
        { ...fields, error: result.lastError, retryInMs: delayMs },
        `Will retry the webhook of ${target.describe}`,
      );
      return { requeueAfterMs: delayMs };
    }
    return { requeueAfterMs: CONFLICT_REQUEUE_MS };
  }

  function countOutcome(outcome: AttemptOutcome, result: DeliveryStatus, target: DeliveryTarget<CrawlFeed | CrawlJob>) {
    if (outcome.kind === "delivered") {
      metrics.outcome("delivered");
      if (target.readyAt) {
        const ready = Date.parse(target.readyAt);
        if (!Number.isNaN(ready)) metrics.latencySeconds(Math.max(now().getTime() - ready, 0) / 1000);
      }
    } else if (outcome.kind === "conflict") {
      metrics.outcome("conflict");
    } else {
      metrics.outcome(result.state === "Failed" ? "failed" : "retry");
    }
  }

  /**
   * Persists an attempt's result. A conflict here usually means a metadata
   * edit (a label, an annotation) during the POST: if the object still shows
   * our claim, apply the result on top of the fresh copy.
   */
  async function writeResult<T extends CrawlFeed | CrawlJob>(
    target: DeliveryTarget<T>,
    claimedObject: T,
    claim: DeliveryStatus,
    result: DeliveryStatus,
  ): Promise<T | undefined> {
    let object = claimedObject;
    for (let round = 0; round <= MAX_CONFLICT_RETRIES; round++) {
      const written = await target.write(object, result);
      if (written.ok) return written.object;
      if (written.reason === "gone") return undefined;
      const fresh = await target.read();
      const status = fresh && target.status(fresh);
      if (!fresh || status?.state !== "Sending" || status.attempts !== claim.attempts) return undefined;
      object = fresh;
    }
    return undefined;
  }

  async function failed<T extends CrawlFeed | CrawlJob>(
    target: DeliveryTarget<T>,
    object: T,
    status: DeliveryStatus,
    log: Logger,
  ): Promise<void> {
    const message = `Webhook of ${target.describe} failed after ${status.attempts} attempt(s): ${status.lastError ?? "unknown error"}`;
    log.warn({ attempts: status.attempts, code: status.lastResponseCode, error: status.lastError }, message);
    // Never throws: an Event that cannot be written is logged.
    await events.record(
      target.eventObject(object) as (CrawlFeed | CrawlJob) & KubeObject,
      "Warning",
      "DeliveryFailed",
      message,
    );
  }

  function jobRef(job: CrawlJob): CrawlJobRef {
    return { namespace: job.metadata.namespace!, name: job.metadata.name!, uid: job.metadata.uid! };
  }

  async function reconcile(cached: CrawlFeed, job: CrawlJob | undefined): Promise<Result> {
    const namespace = cached.metadata.namespace!;
    const name = cached.metadata.name!;
    const describe = `CrawlFeed ${namespace}/${name}`;
    const log = deps.logger.child({ crawlfeed: { namespace, name } });
    const key = `crawlfeed/${cached.metadata.uid ?? `${namespace}/${name}`}`;
    if (inFlight.has(key)) return { requeueAfterMs: CONFLICT_REQUEUE_MS };

    const state = cached.status?.delivery?.state;
    const annotated = cached.metadata.annotations?.[REDELIVER_ANNOTATION] !== undefined;
    // The cache is enough to see that a settled feed needs nothing.
    if ((state === "Delivered" || state === "Failed") && !annotated) return {};

    inFlight.add(key);
    try {
      // Act on the API's current copy, never on a cache that may lag behind our own writes.
      let feed = await api.getFeed(namespace, name);
      if (!feed) return {};

      const target: DeliveryTarget<CrawlFeed> = {
        describe,
        read: () => api.getFeed(namespace, name),
        status: (f) => f.status?.delivery,
        write: (f, status) => api.writeFeedDelivery(f, status),
        eventObject: (f) => f,
        webhookId: "",
        body: "",
        readyAt: feed.spec.closedAt,
      };

      if (feed.metadata.annotations?.[REDELIVER_ANNOTATION] !== undefined) {
        const delivery = feed.status?.delivery;
        if (delivery && (delivery.state === "Delivered" || delivery.state === "Failed")) {
          const reset = await api.writeFeedDelivery(feed, redeliver(delivery));
          if (!reset.ok) return reset.reason === "gone" ? {} : { requeueAfterMs: CONFLICT_REQUEUE_MS };
          feed = reset.object;
          log.info(`Queued CrawlFeed ${namespace}/${name} for redelivery (${REDELIVER_ANNOTATION})`);
        }
        // Pending or Sending already means "will be sent": just take the annotation off.
        const cleared = await api.removeAnnotation(feed, REDELIVER_ANNOTATION);
        if (!cleared.ok) return cleared.reason === "gone" ? {} : { requeueAfterMs: CONFLICT_REQUEUE_MS };
        feed = cleared.object;
      }

      const delivery = feed.status?.delivery;
      if (delivery?.state === "Delivered" || delivery?.state === "Failed") return {};

      const problem = ownershipProblem(feed, job);
      if (problem) {
        const rejected: DeliveryStatus = { state: "Failed", attempts: delivery?.attempts ?? 0, lastError: problem };
        const written = await api.writeFeedDelivery(feed, rejected);
        if (!written.ok) return written.reason === "gone" ? {} : { requeueAfterMs: CONFLICT_REQUEUE_MS };
        metrics.outcome("failed");
        await failed(target, written.object, rejected, log);
        return {};
      }

      const webhook = job!.spec.ingest?.webhook;
      // No webhook, or one crawl.completed event instead: nothing to do per feed.
      if (!webhook || webhook.mode === "onCompletion") return {};

      const event = feedClosedEvent(jobRef(job!), feed.spec);
      target.webhookId = event.id;
      target.body = JSON.stringify(event);
      return await drive(target, feed, webhook, namespace, log);
    } finally {
      inFlight.delete(key);
    }
  }

  async function deliverCompletion(cached: CrawlJob, feeds: readonly CrawlFeed[]): Promise<Result> {
    const webhook = cached.spec.ingest?.webhook;
    if (!webhook) return {};
    const namespace = cached.metadata.namespace!;
    const name = cached.metadata.name!;
    const key = `crawljob/${cached.metadata.uid}`;
    if (inFlight.has(key)) return { requeueAfterMs: CONFLICT_REQUEUE_MS };
    const settled = cached.status?.completionDelivery?.state;
    if (settled === "Delivered" || settled === "Failed") return {};

    inFlight.add(key);
    try {
      const job = await api.getJob(namespace, name);
      if (!job || job.metadata.uid !== cached.metadata.uid) return {};
      const own = feeds.filter((f) =>
        f.metadata.ownerReferences?.some((ref) => ref.controller && ref.uid === job.metadata.uid),
      );
      const event = crawlCompletedEvent(
        jobRef(job),
        job.status?.manifest,
        own.map((f) => f.spec),
      );
      const target: DeliveryTarget<CrawlJob> = {
        describe: `CrawlJob ${namespace}/${name} (crawl.completed)`,
        read: () => api.getJob(namespace, name),
        status: (j) => j.status?.completionDelivery,
        write: (j, status) => api.writeCompletionDelivery(j, status),
        eventObject: (j) => j,
        webhookId: event.id,
        body: JSON.stringify(event),
      };
      const log = deps.logger.child({ crawljob: { namespace, name } });
      return await drive(target, job, webhook, namespace, log);
    } finally {
      inFlight.delete(key);
    }
  }

  return {
    reconcile,
    deliverCompletion,
    async close() {
      await owned?.close();
      await api.close();
    },
  };
}
