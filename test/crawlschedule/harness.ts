// Helpers for the CrawlSchedule integration tests: the schedule controller
// wired by operator/crawlschedule/setup.ts against the real API server (with
// a clock the test may move), and the test playing the CrawlJob controller
// (a run finishes when the test writes its status).
import { join } from "node:path";
import { pino } from "pino";
import type { CrawlJobSpec } from "../../crds/schema/crawljob.ts";
import type { CrawlScheduleSpec } from "../../crds/schema/crawlschedule.ts";
import { CRAWLSCHEDULE_LABEL } from "../../crds/schema/names.ts";
import type { KubeClient, KubeObject } from "../../kube/client.ts";
import { CRAWLJOBS, CRAWLSCHEDULES, EVENTS } from "../../kube/resources.ts";
import type { Job, Schedule } from "../../operator/crawlschedule/jobs.ts";
import { type CrawlSchedules, setupCrawlSchedules } from "../../operator/crawlschedule/setup.ts";
import { EventRecorder } from "../../operator/runtime/events.ts";
import { Informer, InformerGroup } from "../../operator/runtime/informer.ts";
import { REPO_ROOT } from "../operator/kubelet.ts";
import { kubectl } from "../platform/fixtures.ts";

export const SCHEDULE_CRD = join(REPO_ROOT, "crds/feedcrawl.io_crawlschedules.yaml");

export async function installScheduleCrd(): Promise<void> {
  await kubectl(["apply", "--server-side", "--force-conflicts", "--field-manager=feedcrawl-tests", "-f", SCHEDULE_CRD]);
  await kubectl(["wait", "--for=condition=Established", "--timeout=60s", "-f", SCHEDULE_CRD]);
}

export interface ScheduleOperator extends CrawlSchedules {
  crawlJobs: InformerGroup<Job>;
  stop(): Promise<void>;
}

/** The schedule controller for one namespace, as the manager wires it (setup.ts), its informers started. */
export async function startScheduleOperator(
  client: KubeClient,
  namespace: string,
  workDir: string,
  options: { now?: () => Date; workers?: boolean } = {},
): Promise<ScheduleOperator> {
  const { now, workers = true } = options;
  const logger = pino({ level: "debug" }, pino.destination(join(workDir, `schedules-${namespace}.log`)));
  const crawlJobs = new InformerGroup<Job>(
    [namespace],
    (ns) => new Informer<Job>({ client, resource: CRAWLJOBS, namespace: ns, logger }),
  );
  const events = new EventRecorder(client, { component: "feedcrawl-operator", host: "test", logger });
  const parts = setupCrawlSchedules({
    client,
    namespaces: [namespace],
    crawlJobs,
    events,
    logger,
    ...(now ? { now } : {}),
  });
  await Promise.all([crawlJobs.start(), parts.informer.start()]);
  // Without workers the test drives each reconcile itself (controller.processKey).
  if (workers) parts.controller.start();
  return {
    ...parts,
    crawlJobs,
    async stop() {
      await parts.controller.stop();
      await Promise.all([parts.informer.stop(), crawlJobs.stop()]);
    },
  };
}

export function scheduleObject(namespace: string, name: string, spec: CrawlScheduleSpec): Schedule {
  return { apiVersion: "feedcrawl.io/v1alpha1", kind: "CrawlSchedule", metadata: { name, namespace }, spec };
}

export function createSchedule(
  client: KubeClient,
  namespace: string,
  name: string,
  spec: Omit<CrawlScheduleSpec, "crawlJobTemplate"> & { crawlJobTemplate?: CrawlScheduleSpec["crawlJobTemplate"] },
  template: CrawlJobSpec,
): Promise<Schedule> {
  const full = { crawlJobTemplate: { spec: template }, ...spec } as CrawlScheduleSpec;
  return client.create(CRAWLSCHEDULES, scheduleObject(namespace, name, full), { fieldValidation: "Strict" });
}

export const readSchedule = (client: KubeClient, namespace: string, name: string) =>
  client.get<Schedule>(CRAWLSCHEDULES, namespace, name);

/** The schedule's CrawlJobs (by its label), oldest first. */
export async function jobsOf(client: KubeClient, namespace: string, schedule: string): Promise<Job[]> {
  const list = await client.list<Job>(CRAWLJOBS, { namespace, labelSelector: `${CRAWLSCHEDULE_LABEL}=${schedule}` });
  return list.items.sort((a, b) => a.metadata.name!.localeCompare(b.metadata.name!));
}

/** Plays the CrawlJob controller: the run ends Succeeded or Failed. */
export async function finish(client: KubeClient, job: Job, as: "Succeeded" | "Failed", at = new Date()): Promise<void> {
  const time = at.toISOString().replace(/\.\d+Z$/, "Z");
  const fresh = await client.get<Job>(CRAWLJOBS, job.metadata.namespace, job.metadata.name!);
  await client.updateStatus(CRAWLJOBS, {
    ...fresh,
    status: {
      phase: as,
      completionTime: time,
      feedSummary: {
        closed: 2,
        delivered: as === "Succeeded" ? 2 : 0,
        failed: as === "Succeeded" ? 0 : 2,
        items: 20,
        bytes: 2000,
      },
      conditions: [
        {
          type: "Succeeded",
          status: as === "Succeeded" ? "True" : "False",
          reason: as === "Succeeded" ? "FeedsDelivered" : "RunnerFailed",
          message: as,
          lastTransitionTime: time,
        },
      ],
    },
  });
}

interface CoreEvent extends KubeObject {
  involvedObject: { name: string; kind: string };
  reason: string;
  message: string;
  type: string;
}

/** The Events recorded on the schedule, oldest first. */
export async function eventsOf(client: KubeClient, namespace: string, schedule: string): Promise<CoreEvent[]> {
  const list = await client.list<CoreEvent>(EVENTS, { namespace });
  return list.items.filter((e) => e.involvedObject.kind === "CrawlSchedule" && e.involvedObject.name === schedule);
}

/** A clock the test moves; starts at `start`. */
export function testClock(start: Date) {
  let now = start.getTime();
  return {
    now: () => new Date(now),
    set(at: Date) {
      now = at.getTime();
    },
  };
}
