// The operator process: informers (CrawlJobs, CrawlFeeds, runner Jobs and their pods) per
// watched namespace, two controllers (crawljob, crawlfeed), optional leader
// election, and the probe/metrics endpoints. Informers start at once (a warm
// cache for a fast takeover); controllers work only while leading.

import type { Server } from "node:http";
import { hostname } from "node:os";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { CrawlFeed } from "../crds/schema/crawlfeed.ts";
import { CRAWLJOB_LABEL } from "../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../crds/schema/crawljob.ts";
import { KubeClient, type KubeObject } from "../kube/client.ts";
import { CRAWLFEEDS, CRAWLJOBS, JOBS, PODS, type ResourceType } from "../kube/resources.ts";
import { createCrawlFeedReconciler, type FeedDeliveryReconciler } from "./crawlfeed/controller.ts";
import { MANAGED_BY, MANAGED_BY_LABEL } from "./crawljob/children.ts";
import { podCacheTransform, type RunnerPod } from "./crawljob/pods.ts";
import { type CompletionDelivery, createCrawlJobReconciler } from "./crawljob/reconciler.ts";
import type { BatchJob } from "./crawljob/status.ts";
import { createFeedDeliveryReconciler } from "./delivery/index.ts";
import { leaderStatus } from "./metrics.ts";
import { Controller } from "./runtime/controller.ts";
import { EventRecorder } from "./runtime/events.ts";
import { Informer, InformerGroup } from "./runtime/informer.ts";
import { LeaderElector } from "./runtime/leader-election.ts";
import { listen } from "./server.ts";

interface DeliveryParts {
  feeds: FeedDeliveryReconciler;
  completion?: CompletionDelivery;
  close?: () => Promise<void>;
}

export interface ManagerOptions {
  kc: KubeConfig;
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
  /** Called when leadership is lost: the process must exit (its state may be stale). */
  onFatal?: (reason: string) => void;
}

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
  return { feeds: delivery, completion: delivery, close: () => delivery.close() };
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
    this.#crawlFeeds = new InformerGroup(options.namespaces, make<CrawlFeed & KubeObject>(CRAWLFEEDS));
    const managed = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
    this.#runnerJobs = new InformerGroup(options.namespaces, make<BatchJob>(JOBS, managed));
    this.#runnerPods = new InformerGroup(options.namespaces, make<RunnerPod>(PODS, managed, podCacheTransform));
  }

  #informers(): InformerGroup<KubeObject>[] {
    return [this.#crawlJobs, this.#crawlFeeds, this.#runnerJobs, this.#runnerPods] as InformerGroup<KubeObject>[];
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
      reconcile: createCrawlJobReconciler({
        client: this.client,
        crawlJobs: this.#crawlJobs,
        runnerJobs: this.#runnerJobs,
        crawlFeeds: this.#crawlFeeds,
        runnerPods: this.#runnerPods,
        events,
        runnerImage: o.runnerImage,
        delivery: delivery.completion,
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
    const enqueueJob = (obj: KubeObject) => crawlJobController.enqueue(obj.metadata.namespace!, obj.metadata.name!);
    this.#crawlJobs.on("add", enqueueJob).on("update", enqueueJob);
    const enqueueOwner = (obj: KubeObject) => {
      const owner = ownerCrawlJob(obj);
      if (owner) crawlJobController.enqueue(obj.metadata.namespace!, owner);
    };
    this.#runnerJobs.on("add", enqueueOwner).on("update", enqueueOwner).on("delete", enqueueOwner);
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
      onStoppedLeading: () => {
        this.#leading = false;
        o.onFatal?.("leader election lost");
      },
    });
    this.#log.info({ identity: this.identity }, "Waiting for the leader Lease");
    this.#elector.start();
  }

  /** Graceful: stop taking work, let in-flight reconciles finish, release the Lease. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#log.info("Stopping the operator");
    await Promise.all(this.#controllers.map((c) => c.stop()));
    await this.#elector?.stop();
    await Promise.all(this.#informers().map((i) => i.stop()));
    await Promise.all(this.#servers.map((s) => new Promise((resolve) => s.close(resolve))));
    await this.#delivery?.close?.();
    await this.client.close();
    this.#leading = false;
  }
}
