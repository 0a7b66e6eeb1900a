// Webhook delivery: drives the persisted delivery state machine of a
// CrawlFeed (feed.closed, mode perFeed) or of a CrawlJob's completion event
// (crawl.completed, mode onCompletion). The operator-core controller calls
// `reconcile` from its CrawlFeed work queue (requeueing after
// `requeueAfterMs`) and `deliverCompletion` once the runner finished. Both
// only decide: a due POST is handed to the delivery dispatcher
// (delivery-dispatcher.ts, a queue per backend host), so no reconcile worker
// ever waits on a backend.
//
// Crash safety: the claim (`Sending`, attempts+1) is persisted with a
// resourceVersion precondition before the POST, and the result after it. A
// process that dies in between leaves `Sending` behind; whoever reads it next
// sends again under the same webhook-id (at-least-once, never lost). Retry
// times live in `nextAttemptAt`, so a restarted operator resumes the backoff.
//
// Trust: a CrawlFeed is created by a runner whose image the job author
// chooses, so before anything is signed the feed must be controlled by its
// CrawlJob (ownership.ts) and its URI must be one the job's feed templates
// name (feed-uri.ts); otherwise it is Failed with an Event. Which private
// networks a webhook may reach is the operator's list (dispatchers.ts).
//
// This file picks what to deliver (redelivery, ownership, URI, mode);
// driver.ts drives one delivery; delivery-dispatcher.ts runs the POSTs;
// target.ts holds the write-or-reread loop.
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { SecretKeyRef } from "../../crds/schema/builders.ts";
import type { CrawlFeed, DeliveryStatus } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { REDELIVER_ANNOTATION } from "../../crds/schema/names.ts";
import type { KubeClient } from "../../kube/client.ts";
import type { KubeAuth } from "../../kube/kubeconfig.ts";
import type { BackoffPolicy } from "../../lib/backoff.ts";
import { EventRecorder } from "../runtime/events.ts";
import { DeliveryDispatcher } from "./delivery-dispatcher.ts";
import { createDispatchers, type DispatcherFor, parsePrivateNetworks, privateNetworksFromEnv } from "./dispatchers.ts";
import { DeliveryDriver, type DeliveryMetrics, defaultMetrics } from "./driver.ts";
import { bucketProblem, type FeedSpecView, templateProblem } from "./feed-uri.ts";
import { DeliveryApi, type WriteResult } from "./kube.ts";
import { ownershipProblem } from "./ownership.ts";
import { SigningSecrets } from "./secrets.ts";
import { WebhookSender } from "./sender.ts";
import { DEFAULT_BACKOFF, redeliver } from "./state.ts";
import { CONFLICT_REQUEUE_MS, completionTarget, feedTarget, type Result } from "./target.ts";

export { completionWebhookId, feedWebhookId } from "./payload.ts";

interface FeedDeliveryDeps {
  kc: KubeAuth;
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
  /**
   * The private networks a webhook may reach, the operator's decision: CIDRs
   * and in-cluster Service host names. A CrawlJob's allowPrivateNetworks:
   * true means "these", false means none. Default: the comma-separated
   * $FEEDCRAWL_WEBHOOK_PRIVATE_NETWORKS, else none (public addresses only).
   */
  webhookPrivateNetworks?: readonly string[];
  /** The S3 buckets a feed URI may name (default: any; the job's templates still bind it). */
  feedBuckets?: readonly string[];
  /** The undici dispatcher per webhook URL and allowPrivateNetworks (default: dispatchers.ts). */
  dispatcherFor?: DispatcherFor;
  metrics?: DeliveryMetrics;
}

export interface FeedDeliveryReconciler {
  /** Decides on one CrawlFeed's delivery: settles it, or hands the POST to the dispatcher; says when to look again. */
  reconcile(feed: CrawlFeed, job: CrawlJob | undefined): Promise<Result>;
  /** The same for the CrawlJob's crawl.completed delivery (mode onCompletion), kept in status.completionDelivery. */
  deliverCompletion(job: CrawlJob, feeds: readonly CrawlFeed[]): Promise<Result>;
  /** Resolves once no delivery is queued or in flight. */
  idle(): Promise<void>;
  /** Drops the queues, gives the POSTs in flight `graceMs` (default 0), aborts the rest (their Sending stays), closes the connection pools. */
  close(graceMs?: number): Promise<void>;
}

export function createFeedDeliveryReconciler(deps: FeedDeliveryDeps): FeedDeliveryReconciler {
  return new FeedDelivery(deps);
}

const settled = (delivery: DeliveryStatus | undefined) =>
  delivery?.state === "Delivered" || delivery?.state === "Failed";

/** A single write that lost: a gone object needs nothing more, a conflict comes back from the work queue. */
const giveBack = (reason: "conflict" | "gone"): Result =>
  reason === "gone" ? {} : { requeueAfterMs: CONFLICT_REQUEUE_MS };

class FeedDelivery implements FeedDeliveryReconciler {
  readonly #api: DeliveryApi;
  readonly #driver: DeliveryDriver;
  readonly #dispatcher: DeliveryDispatcher;
  readonly #logger: Logger;
  /** The dispatchers this reconciler made (none when they were injected), closed by `close`. */
  readonly #dispatchers: ReturnType<typeof createDispatchers> | undefined;
  /** Objects a reconcile is deciding on right now (the dispatcher knows those queued or POSTing). */
  readonly #inFlight = new Set<string>();
  readonly #feedBuckets: readonly string[] | undefined;

  constructor(deps: FeedDeliveryDeps) {
    const api = new DeliveryApi(deps.client ?? deps.kc);
    const now = deps.now ?? (() => new Date());
    this.#api = api;
    this.#logger = deps.logger;
    this.#feedBuckets = deps.feedBuckets;
    const privateNetworks = [...(deps.webhookPrivateNetworks ?? privateNetworksFromEnv())];
    // Parsed even when dispatchers are injected: a bad entry fails at start, not at the first POST.
    const networks = parsePrivateNetworks(privateNetworks);
    this.#dispatchers = deps.dispatcherFor ? undefined : createDispatchers(networks);
    this.#dispatcher = new DeliveryDispatcher({
      perHostConcurrency: deps.perHostConcurrency ?? 4,
      logger: deps.logger,
    });
    this.#driver = new DeliveryDriver({
      sender: new WebhookSender({ now }),
      dispatcher: this.#dispatcher,
      dispatcherFor: deps.dispatcherFor ?? this.#dispatchers!.dispatcherFor,
      privateNetworks,
      signers: new SigningSecrets(deps.fetchSigningSecret ?? ((namespace, ref) => api.readSecret(namespace, ref))),
      events:
        deps.events ??
        new EventRecorder(api.client, {
          component: "feedcrawl-operator",
          host: process.env.HOSTNAME ?? hostname(),
          logger: deps.logger,
        }),
      metrics: deps.metrics ?? defaultMetrics,
      now,
      random: deps.random ?? Math.random,
      backoff: { ...DEFAULT_BACKOFF, ...deps.backoff },
    });
  }

  async reconcile(cached: CrawlFeed, job: CrawlJob | undefined): Promise<Result> {
    const { namespace, name } = cached.metadata as { namespace: string; name: string };
    const key = `crawlfeed/${cached.metadata.uid ?? `${namespace}/${name}`}`;
    return this.#exclusive(key, async () => {
      const annotated = cached.metadata.annotations?.[REDELIVER_ANNOTATION] !== undefined;
      // The cache is enough to see that a settled feed needs nothing.
      if (settled(cached.status?.delivery) && !annotated) return {};
      const log = this.#logger.child({ crawlfeed: { namespace, name } });
      // Act on the API's current copy, never on a cache that may lag behind our own writes.
      const fresh = await this.#api.getFeed(namespace, name);
      if (!fresh) return {};
      const taken = await this.#takeRedeliver(fresh, log);
      if (!taken.ok) return giveBack(taken.reason);
      const feed = taken.object;
      if (settled(feed.status?.delivery)) return {};

      const problem = ownershipProblem(feed, job);
      if (problem) return this.#rejectFeed(feed, problem, log);
      const webhook = job!.spec.ingest?.webhook;
      // No webhook: nothing will be signed for this feed.
      if (!webhook) return {};
      const uriProblem = await this.#uriProblem(feed, job!);
      if (uriProblem) return this.#rejectFeed(feed, uriProblem, log);
      // One crawl.completed event instead: nothing to do per feed.
      if (webhook.mode === "onCompletion") return {};
      return this.#driver.drive(key, feedTarget(this.#api, feed, job!), feed, webhook, namespace, log);
    });
  }

  async deliverCompletion(cached: CrawlJob, feeds: readonly CrawlFeed[]): Promise<Result> {
    const webhook = cached.spec.ingest?.webhook;
    if (!webhook) return {};
    const { namespace, name, uid } = cached.metadata as { namespace: string; name: string; uid: string };
    const key = `crawljob/${uid}`;
    return this.#exclusive(key, async () => {
      if (settled(cached.status?.completionDelivery)) return {};
      const job = await this.#api.getJob(namespace, name);
      if (!job || job.metadata.uid !== uid) return {};
      const log = this.#logger.child({ crawljob: { namespace, name } });
      const own: CrawlFeed[] = [];
      for (const feed of feeds) {
        if (!feed.metadata.ownerReferences?.some((ref) => ref.controller && ref.uid === uid)) continue;
        // A feed whose URI the job's templates do not name is left out (its own reconcile marks it Failed).
        const problem = await this.#uriProblem(feed, job);
        if (problem)
          log.warn({ crawlfeed: feed.metadata.name, reason: problem }, "Left a CrawlFeed out of crawl.completed");
        else own.push(feed);
      }
      return this.#driver.drive(key, completionTarget(this.#api, job, own), job, webhook, namespace, log);
    });
  }

  idle(): Promise<void> {
    return this.#dispatcher.idle();
  }

  async close(graceMs = 0): Promise<void> {
    await this.#dispatcher.close(graceMs);
    await this.#dispatchers?.close();
    await this.#api.close();
  }

  /**
   * Runs `task` unless this process is already working on `key` (deciding, or
   * its delivery queued or in flight): then it comes back later, without a read.
   */
  async #exclusive(key: string, task: () => Promise<Result>): Promise<Result> {
    if (this.#inFlight.has(key)) return { requeueAfterMs: CONFLICT_REQUEUE_MS };
    if (this.#dispatcher.busy(key)) return { requeueAfterMs: this.#dispatcher.recheckMs(key) };
    this.#inFlight.add(key);
    try {
      return await task();
    } finally {
      this.#inFlight.delete(key);
    }
  }

  /** The redeliver annotation: a settled feed starts over with a fresh budget, and the annotation comes off. */
  async #takeRedeliver(feed: CrawlFeed, log: Logger): Promise<WriteResult<CrawlFeed>> {
    if (feed.metadata.annotations?.[REDELIVER_ANNOTATION] === undefined) return { ok: true, object: feed };
    const delivery = feed.status?.delivery;
    if (settled(delivery)) {
      const reset = await this.#api.writeFeedDelivery(feed, redeliver(delivery));
      if (!reset.ok) return reset;
      feed = reset.object;
      const { namespace, name } = feed.metadata;
      log.info(`Queued CrawlFeed ${namespace}/${name} for redelivery (${REDELIVER_ANNOTATION})`);
    }
    // Pending or Sending already means "will be sent": just take the annotation off.
    return this.#api.removeAnnotation(feed, REDELIVER_ANNOTATION);
  }

  /**
   * Why the feed's URI is not one the job's feeds name (or its bucket not one
   * the operator allows). A running crawl writes with the spec it started
   * with (the `<job>-spec` snapshot), so a URI that the current spec does not
   * name is checked against the snapshot before it is refused.
   */
  async #uriProblem(feed: CrawlFeed, job: CrawlJob): Promise<string | undefined> {
    const bucket = bucketProblem(feed.spec.uri, this.#feedBuckets);
    if (bucket) return bucket;
    const view: FeedSpecView = { job: job.metadata.name!, spec: job.spec };
    const problem = templateProblem(feed, view);
    if (!problem) return undefined;
    const snapshot = await this.#api.getSnapshot(job);
    if (snapshot && !templateProblem(feed, { job: view.job, spec: snapshot })) return undefined;
    return problem;
  }

  /** A feed no running CrawlJob owns, or whose URI its feeds do not name, is never sent: Failed, with the reason. */
  async #rejectFeed(feed: CrawlFeed, problem: string, log: Logger): Promise<Result> {
    const rejected: DeliveryStatus = {
      state: "Failed",
      attempts: feed.status?.delivery?.attempts ?? 0,
      lastError: problem,
    };
    const written = await this.#api.writeFeedDelivery(feed, rejected);
    if (!written.ok) return giveBack(written.reason);
    const { namespace, name } = feed.metadata;
    await this.#driver.reject(`CrawlFeed ${namespace}/${name}`, written.object, rejected, log);
    return {};
  }
}
