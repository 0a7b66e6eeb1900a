// The CrawlSchedule part of the operator, wired for the manager: its informer
// (one per watched namespace), its controller, and the handlers that enqueue a
// schedule when it or one of its CrawlJobs changes. The manager starts the
// informer with its others and the controller while it leads.
import type { Logger } from "pino";
import type { KubeClient, KubeObject } from "../../kube/client.ts";
import { CRAWLSCHEDULES } from "../../kube/resources.ts";
import { Controller } from "../runtime/controller.ts";
import type { EventRecorder } from "../runtime/events.ts";
import { Informer, InformerGroup } from "../runtime/informer.ts";
import type { Job, Schedule } from "./jobs.ts";
import { createCrawlScheduleReconciler } from "./reconciler.ts";

export interface CrawlScheduleSetupOptions {
  client: KubeClient;
  /** Namespaces to watch; empty: all. */
  namespaces: readonly string[];
  /** The manager's CrawlJob informers (their cache, and their events). */
  crawlJobs: InformerGroup<Job>;
  events: EventRecorder;
  logger: Logger;
  resyncMs?: number;
  workers?: number;
  now?: () => Date;
}

export interface CrawlSchedules {
  informer: InformerGroup<Schedule>;
  controller: Controller;
}

const ownerSchedule = (obj: KubeObject) =>
  obj.metadata.ownerReferences?.find((r) => r.controller && r.kind === "CrawlSchedule")?.name;

export function setupCrawlSchedules(o: CrawlScheduleSetupOptions): CrawlSchedules {
  const informer = new InformerGroup<Schedule>(
    o.namespaces,
    (namespace) =>
      new Informer<Schedule>({
        client: o.client,
        resource: CRAWLSCHEDULES,
        namespace,
        logger: o.logger,
        ...(o.resyncMs !== undefined ? { resyncMs: o.resyncMs } : {}),
      }),
  );
  const controller = new Controller({
    name: "crawlschedule",
    logger: o.logger,
    workers: o.workers ?? 1,
    reconcile: createCrawlScheduleReconciler({
      client: o.client,
      schedules: informer,
      crawlJobs: o.crawlJobs,
      events: o.events,
      ...(o.now ? { now: o.now } : {}),
    }),
  });
  const enqueue = (obj: KubeObject) => controller.enqueue(obj.metadata.namespace!, obj.metadata.name!);
  informer.on("add", enqueue).on("update", enqueue);
  // A run that changed (finished, deleted) may free a Forbid slot or need an Event and pruning.
  const enqueueOwner = (obj: KubeObject) => {
    const owner = ownerSchedule(obj);
    if (owner) controller.enqueue(obj.metadata.namespace!, owner);
  };
  o.crawlJobs.on("add", enqueueOwner).on("update", enqueueOwner).on("delete", enqueueOwner);
  return { informer, controller };
}
