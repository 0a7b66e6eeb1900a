// The operator process: informers (CrawlJobs, CrawlFeeds, runner Jobs and their pods) per
// watched namespace, two controllers (crawljob, crawlfeed), optional leader
// election, and the probe/metrics endpoints. Informers start at once (a warm
// cache for a fast takeover); controllers work only while leading.

import type { Server } from "node:http";
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { CrawlFeed } from "../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../crds/schema/crawljob.ts";
import { CRAWLJOB_LABEL } from "../crds/schema/names.ts";
import { KubeClient, type KubeObject } from "../kube/client.ts";
import { describeError } from "../kube/errors.ts";
import type { KubeAuth } from "../kube/kubeconfig.ts";
import {
  CONFIGMAPS,
  CRAWLFEEDS,
  CRAWLJOBS,
  JOBS,
  PODS,
  type ResourceType,
  ROLEBINDINGS,
  ROLES,
  SECRETS,
  SERVICEACCOUNTS,
} from "../kube/resources.ts";
import { createCrawlFeedReconciler, type FeedDeliveryReconciler } from "./crawlfeed/controller.ts";
import {
  type ChildCaches,
  type ConfigMapDigest,
  configMapDigestTransform,
  crawlFeedCacheTransform,
  crawlJobsBySecretIndex,
  feedsByJobIndex,
  indexKey,
  podsByOwnerIndex,
  type SecretKeys,
  secretKeysTransform,
} from "./crawljob/caches.ts";
import { MANAGED_BY, MANAGED_BY_LABEL } from "./crawljob/children.ts";
import { podCacheTransform, type RunnerPod } from "./crawljob/pods.ts";
import { type CompletionDelivery, createCrawlJobReconciler } from "./crawljob/reconciler.ts";
import { type BatchJob, jobCacheTransform } from "./crawljob/status.ts";
import { observeCrawlJobs } from "./crawljob-metrics.ts";
import { type CrawlSchedules, setupCrawlSchedules } from "./crawlschedule/setup.ts";
import { createFeedDeliveryReconciler } from "./delivery/index.ts";
import { leaderStatus } from "./metrics.ts";
import { Controller } from "./runtime/controller.ts";
import { EventRecorder } from "./runtime/events.ts";
import { Informer, InformerGroup } from "./runtime/informer.ts";
import { LeaderElector } from "./runtime/leader-election.ts";
import { within } from "./runtime/within.ts";
import { listen } from "./server.ts";

interface DeliveryParts {
  feeds: FeedDeliveryReconciler;
  completion?: CompletionDelivery;
  close?: (graceMs?: number) => Promise<void>;
}

export interface ManagerOptions {
  kc: KubeAuth;
  logger: Logger;
  /** Namespaces to watch; empty: all. */
  namespaces: string[];
  runnerImage: string;
  leaderElect?: boolean;
  leaderElectionNamespace?: string;
  leaderElectionId?: string;
  identity?: string;
  metricsAddr?: string;
  healthAddr?: string;
  /** The webhook delivery; default: operator/delivery/index.ts. */
  delivery?: DeliveryParts;
  /** CIDRs / Service hosts a webhook may reach (default: $FEEDCRAWL_WEBHOOK_PRIVATE_NETWORKS, else none). */
  webhookPrivateNetworks?: readonly string[];
  /** Buckets a CrawlFeed URI may name (default: any). */
  feedBuckets?: readonly string[];
  resyncMs?: number;
  workers?: number;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /**
   * On stop(), how long in-flight reconciles may run before their signals
   * abort (default 5 s). stop() returns within this plus 5 s.
   */
  shutdownGraceMs?: number;
  /** Called when leadership is lost: the process must exit (its state may be stale). */
  onFatal?: (reason: string) => void;
}

const DEFAULT_SHUTDOWN_GRACE_MS = 5_000;
/** After the grace: how long aborted reconciles get to unwind, and everything else (Lease, informers) to stop. */
const SHUTDOWN_UNWIND_MS = 2_000;
const SHUTDOWN_TEARDOWN_MS = 5_000;

/** The webhook delivery, sharing the manager's API client (one connection pool) and Event recorder. */
function loadDelivery(o: ManagerOptions, client: KubeClient, events: EventRecorder, logger: Logger): DeliveryParts {
  const delivery = createFeedDeliveryReconciler({
    kc: o.kc,
    client,
    events,
    logger: logger.child({ subsystem: "delivery" }),
    ...(o.webhookPrivateNetworks ? { webhookPrivateNetworks: o.webhookPrivateNetworks } : {}),
    ...(o.feedBuckets ? { feedBuckets: o.feedBuckets } : {}),
  });
  return { feeds: delivery, completion: delivery, close: (graceMs) => delivery.close(graceMs) };
}

const ownerCrawlJob = (obj: KubeObject) =>
  obj.metadata.ownerReferences?.find((r) => r.controller && r.kind === "CrawlJob")?.name;

export class Manager {
  readonly client: KubeClient;
  readonly identity: string;
  #o: ManagerOptions;
  #log: Logger;
  #crawlJobs: InformerGroup<CrawlJob & KubeObject>;
  #crawlFeeds: InformerGroup<CrawlFeed & KubeObject>;
  #runnerJobs: InformerGroup<BatchJob>;
  #runnerPods: InformerGroup<RunnerPod>;
  /** The CrawlJobs' other children (label-selected) and the Secrets (key names only). */
  #childCaches: { [K in keyof ChildCaches]: InformerGroup<ReturnType<ChildCaches[K]["get"]> & KubeObject> };
  #secrets: InformerGroup<SecretKeys>;
  #feedsByJob: ReturnType<typeof feedsByJobIndex>;
  #podsByOwner: ReturnType<typeof podsByOwnerIndex>;
  #crawlJobsBySecret: ReturnType<typeof crawlJobsBySecretIndex>;
  #schedules: CrawlSchedules | undefined;
  #stopMetrics: (() => void) | undefined;
  #controllers: Controller[] = [];
  #elector: LeaderElector | undefined;
  #servers: Server[] = [];
  #delivery: DeliveryParts | undefined;
  #leading = false;
  #stopped = false;
  metricsPort: number | undefined;
  healthPort: number | undefined;

  constructor(options: ManagerOptions) {
    this.#o = options;
    this.identity = options.identity ?? `${hostname()}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    this.#log = options.logger;
    this.client = new KubeClient(options.kc, { fieldManager: "feedcrawl-operator" });
    const make =
      <T extends KubeObject>(resource: ResourceType, labelSelector?: string, transform?: (obj: T) => T) =>
      (namespace: string | undefined) =>
        new Informer<T>({
          client: this.client,
          resource,
          namespace,
          labelSelector,
          transform,
          logger: this.#log,
          resyncMs: options.resyncMs,
        });
    this.#crawlJobs = new InformerGroup(options.namespaces, make<CrawlJob & KubeObject>(CRAWLJOBS));
    this.#crawlFeeds = new InformerGroup(
      options.namespaces,
      make<CrawlFeed & KubeObject>(CRAWLFEEDS, undefined, crawlFeedCacheTransform),
    );
    const managed = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
    this.#runnerJobs = new InformerGroup(options.namespaces, make<BatchJob>(JOBS, managed, jobCacheTransform));
    this.#runnerPods = new InformerGroup(options.namespaces, make<RunnerPod>(PODS, managed, podCacheTransform));
    const child = (resource: ResourceType) =>
      new InformerGroup(options.namespaces, make<KubeObject>(resource, managed));
    this.#childCaches = {
      configMaps: new InformerGroup(
        options.namespaces,
        make<ConfigMapDigest>(CONFIGMAPS, managed, configMapDigestTransform),
      ),
      serviceAccounts: child(SERVICEACCOUNTS),
      roles: child(ROLES),
      roleBindings: child(ROLEBINDINGS),
    };
    // Every Secret of the watched namespaces (a user's Secrets carry no label of ours), values dropped on arrival.
    this.#secrets = new InformerGroup(options.namespaces, make<SecretKeys>(SECRETS, undefined, secretKeysTransform));
    // Indexes follow their informers from the first list on.
    this.#feedsByJob = feedsByJobIndex(this.#crawlFeeds);
    this.#podsByOwner = podsByOwnerIndex(this.#runnerPods);
    this.#crawlJobsBySecret = crawlJobsBySecretIndex(this.#crawlJobs);
  }

  #informers(): InformerGroup<KubeObject>[] {
    return [
      this.#crawlJobs,
      this.#crawlFeeds,
      this.#runnerJobs,
      this.#runnerPods,
      this.#secrets,
      ...Object.values(this.#childCaches),
      ...(this.#schedules ? [this.#schedules.informer] : []),
    ] as InformerGroup<KubeObject>[];
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  get ready(): boolean {
    return this.#informers().every((i) => i.hasSynced);
  }

  async start(): Promise<void> {
    const o = this.#o;
    const events = new EventRecorder(this.client, {
      component: "feedcrawl-operator",
      host: this.identity,
      logger: this.#log,
    });
    const delivery = o.delivery ?? loadDelivery(o, this.client, events, this.#log);
    this.#delivery = delivery;
    this.#controllers = this.#wire(events, delivery);
    this.#schedules = setupCrawlSchedules({
      client: this.client,
      namespaces: o.namespaces,
      crawlJobs: this.#crawlJobs,
      events,
      logger: this.#log,
      ...(o.resyncMs !== undefined ? { resyncMs: o.resyncMs } : {}),
    });
    this.#controllers.push(this.#schedules.controller);
    this.#stopMetrics = observeCrawlJobs({
      crawlJobs: this.#crawlJobs,
      crawlFeeds: this.#crawlFeeds,
      active: () => this.#leading,
    });
    await this.#serve();

    await Promise.all(this.#informers().map((i) => i.start()));
    if (this.#stopped) return; // stopped while the caches were syncing
    this.#log.info({ namespaces: o.namespaces.length ? o.namespaces : "all" }, "Informer caches synced");
    this.#campaign();
  }

  /** The two controllers, and the informer handlers that enqueue their keys. */
  #wire(events: EventRecorder, delivery: DeliveryParts): Controller[] {
    const o = this.#o;
    const crawlJobController = new Controller({
      name: "crawljob",
      logger: this.#log,
      workers: o.workers,
      // Not retried (e.g. a child of that name owned by someone else): said once, on the CrawlJob.
      onTerminal: async (req, err) => {
        const job = this.#crawlJobs.get(req.namespace, req.name);
        if (job) await events.record(job, "Warning", err.reason, err.message, req.signal);
      },
      reconcile: createCrawlJobReconciler({
        client: this.client,
        crawlJobs: this.#crawlJobs,
        runnerJobs: this.#runnerJobs,
        feedsByJob: this.#feedsByJob,
        podsByOwner: this.#podsByOwner,
        children: this.#childCaches,
        secrets: this.#secrets,
        events,
        runnerImage: o.runnerImage,
        delivery: delivery.completion,
        ...(o.resyncMs !== undefined ? { recheckMs: o.resyncMs } : {}),
      }),
    });
    const crawlFeedController = new Controller({
      name: "crawlfeed",
      logger: this.#log,
      workers: o.workers ?? 4,
      reconcile: createCrawlFeedReconciler({
        crawlFeeds: this.#crawlFeeds,
        crawlJobs: this.#crawlJobs,
        delivery: delivery.feeds,
      }),
    });

    // Event handlers only enqueue keys; reconciles re-read the caches.
    // The informer's resync re-delivers each cached object as update(obj, obj).
    const enqueueJob = (obj: KubeObject, old?: KubeObject) =>
      crawlJobController.enqueue(obj.metadata.namespace!, obj.metadata.name!, old === obj ? "resync" : "event");
    // delete too: the reconcile then forgets what it memoised about the job.
    this.#crawlJobs.on("add", enqueueJob).on("update", enqueueJob).on("delete", enqueueJob);
    const enqueueOwner = (obj: KubeObject) => {
      const owner = ownerCrawlJob(obj);
      if (owner) crawlJobController.enqueue(obj.metadata.namespace!, owner);
    };
    this.#runnerJobs.on("add", enqueueOwner).on("update", enqueueOwner).on("delete", enqueueOwner);
    for (const cache of Object.values(this.#childCaches) as InformerGroup<KubeObject>[]) {
      cache.on("add", enqueueOwner).on("update", enqueueOwner).on("delete", enqueueOwner);
    }
    // A Secret event: exactly the CrawlJobs whose spec names it (validation reads its key names).
    const enqueueReferrers = (secret: KubeObject) => {
      for (const job of this.#crawlJobsBySecret.get(indexKey(secret.metadata.namespace, secret.metadata.name!))) {
        enqueueJob(job);
      }
    };
    this.#secrets.on("add", enqueueReferrers).on("update", enqueueReferrers).on("delete", enqueueReferrers);
    // A pod belongs to the Job, not the CrawlJob: the template's CrawlJob label names it (the
    // reconcile then keeps only pods owned by that CrawlJob's runner Job).
    const enqueueLabelled = (obj: KubeObject) => {
      const job = obj.metadata.labels?.[CRAWLJOB_LABEL];
      if (job) crawlJobController.enqueue(obj.metadata.namespace!, job);
    };
    this.#runnerPods.on("add", enqueueLabelled).on("update", enqueueLabelled).on("delete", enqueueLabelled);
    const onFeed = (obj: KubeObject) => {
      crawlFeedController.enqueue(obj.metadata.namespace!, obj.metadata.name!);
      const job = obj.metadata.labels?.[CRAWLJOB_LABEL];
      if (job) crawlJobController.enqueue(obj.metadata.namespace!, job);
    };
    this.#crawlFeeds.on("add", onFeed).on("update", onFeed);
    this.#crawlFeeds.on("delete", (obj) => {
      const job = obj.metadata.labels?.[CRAWLJOB_LABEL];
      if (job) crawlJobController.enqueue(obj.metadata.namespace!, job);
    });
    return [crawlJobController, crawlFeedController];
  }

  /** The probe and metrics endpoints. */
  async #serve(): Promise<void> {
    const o = this.#o;
    if (o.healthAddr) {
      const { server, port } = await listen(o.healthAddr, {
        healthz: () => !this.#stopped,
        readyz: () => this.ready && !this.#stopped,
      });
      this.#servers.push(server);
      this.healthPort = port;
    }
    if (o.metricsAddr) {
      const { server, port } = await listen(o.metricsAddr, { metrics: true });
      this.#servers.push(server);
      this.metricsPort = port;
    }
  }

  /** Starts the controllers, at once or once this process holds the leader Lease. */
  #campaign(): void {
    const o = this.#o;
    const lead = () => {
      if (this.#stopped) return;
      this.#leading = true;
      this.#log.info({ identity: this.identity }, "Starting controllers");
      for (const c of this.#controllers) c.start();
    };
    if (!o.leaderElect) {
      leaderStatus.set({ name: o.leaderElectionId ?? "feedcrawl-operator" }, 1);
      lead();
      return;
    }
    this.#elector = new LeaderElector({
      client: this.client,
      namespace: o.leaderElectionNamespace ?? "default",
      name: o.leaderElectionId ?? "feedcrawl-operator",
      identity: this.identity,
      logger: this.#log,
      leaseDurationMs: o.leaseDurationMs,
      renewDeadlineMs: o.renewDeadlineMs,
      retryPeriodMs: o.retryPeriodMs,
      onStartedLeading: lead,
      // At the renew deadline, before anyone else may take the Lease: stop
      // taking keys and abort in-flight reconciles now; onFatal makes the
      // process stop (stop() then closes the delivery at once) and exit.
      onStoppedLeading: () => {
        this.#leading = false;
        for (const c of this.#controllers) c.abort("Lost the leader Lease");
        o.onFatal?.("leader election lost");
      },
    });
    this.#log.info({ identity: this.identity }, "Waiting for the leader Lease");
    this.#elector.start();
  }

  /**
   * Graceful and bounded: stop taking keys; in-flight reconciles get
   * `shutdownGraceMs` (none after a lost Lease), then their signals abort;
   * the delivery takes no more at once and gives its POSTs in flight the same
   * grace to finish and record their result, then aborts them, with 2 s to
   * unwind; then the Lease is released while the
   * informers, servers and client stop. Returns within shutdownGraceMs + 5 s:
   * work that ignores the abort is left behind (logged) and ends with the
   * process.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const graceMs = this.#leading ? (this.#o.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS) : 0;
    const graceEnd = performance.now() + graceMs;
    const endBy = graceEnd + SHUTDOWN_TEARDOWN_MS;
    this.#log.info({ graceMs }, "Stopping the operator");
    this.#stopMetrics?.();
    const step = async (what: string, run: () => Promise<unknown> | undefined, byMs: number) => {
      const done = Promise.resolve()
        .then(run)
        .catch((err) => this.#log.warn({ error: describeError(err) }, `${what} failed`));
      if (!(await within(done, byMs - performance.now()))) this.#log.warn(`${what} did not finish in time`);
    };
    const drained = Promise.all(this.#controllers.map((c) => c.stop({ graceMs, unwindMs: SHUTDOWN_UNWIND_MS })));
    const closing = step("Closing the webhook delivery", () => this.#delivery?.close?.(graceMs), endBy);
    await within(drained, graceMs);
    const abandoned = (await drained).flatMap((outcome) => outcome.abandoned);
    if (abandoned.length > 0) this.#log.warn({ keys: abandoned }, "Reconciles ignored their abort; left behind");
    // POSTs in flight may use the whole grace (they started before the stop), then 2 s to unwind.
    await within(closing, graceEnd - performance.now() + SHUTDOWN_UNWIND_MS);
    await Promise.all([
      step("Releasing the Lease", () => this.#elector?.stop(), endBy),
      step("Stopping the informers", () => Promise.all(this.#informers().map((i) => i.stop())), endBy),
      step("Closing the servers", () => Promise.all(this.#servers.map((s) => new Promise((r) => s.close(r)))), endBy),
    ]);
    await step("Closing the API client", () => this.client.close(), endBy);
    this.#leading = false;
  }
}
