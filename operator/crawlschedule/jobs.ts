// The CrawlJobs of a CrawlSchedule, as pure functions: the run's CrawlJob built
// from the template, the schedule's children sorted into active / succeeded /
// failed, and which finished ones the history limits prune.
import { createHash } from "node:crypto";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import type { CrawlSchedule, JobReference } from "../../crds/schema/crawlschedule.ts";
import { CRAWLSCHEDULE_LABEL, REPLACED_BY_ANNOTATION, SCHEDULED_TIME_ANNOTATION } from "../../crds/schema/names.ts";
import type { KubeObject } from "../../kube/client.ts";
import { controllerReference } from "../crawljob/children.ts";
import { getCondition } from "../runtime/conditions.ts";

export type Job = CrawlJob & KubeObject;
export type Schedule = CrawlSchedule & KubeObject;

export const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d+Z$/, "Z");

/** A scheduled run's name: deterministic, so a create repeated after a lost status write is a 409, not a second run. */
export const scheduledJobName = (schedule: string, at: Date) => `${schedule}-${Math.floor(at.getTime() / 60_000)}`;

/** A run-now run's name, from the annotation value (one run per value). */
export const runNowJobName = (schedule: string, value: string) =>
  `${schedule}-now-${createHash("sha256").update(value).digest("hex").slice(0, 8)}`;

/** The CrawlJob of one run: the template, the schedule's label and scheduled time, owned by the schedule. */
export function buildCrawlJob(schedule: Schedule, name: string, scheduled: Date): Job {
  const template = schedule.spec.crawlJobTemplate;
  return {
    apiVersion: "feedcrawl.io/v1alpha1",
    kind: "CrawlJob",
    metadata: {
      name,
      namespace: schedule.metadata.namespace,
      labels: { ...template.metadata?.labels, [CRAWLSCHEDULE_LABEL]: schedule.metadata.name! },
      annotations: { ...template.metadata?.annotations, [SCHEDULED_TIME_ANNOTATION]: rfc3339(scheduled) },
      ownerReferences: [controllerReference(schedule)],
    },
    spec: structuredClone(template.spec),
  };
}

export const jobRef = (job: Job): JobReference => ({
  apiVersion: job.apiVersion,
  kind: job.kind,
  namespace: job.metadata.namespace!,
  name: job.metadata.name!,
  uid: job.metadata.uid!,
});

/** Succeeded=True or False: the CrawlJob is done (delivery included). */
export function finishedAs(job: Job): "Succeeded" | "Failed" | undefined {
  const status = getCondition(job.status?.conditions, "Succeeded")?.status;
  return status === "True" ? "Succeeded" : status === "False" ? "Failed" : undefined;
}

/** Replaced by a suspend (before spec.stop existed) and every stored feed settled. A stopped one ends Succeeded/Stopped by itself and is pruned as that. */
const replacedAndSettled = (job: Job) => {
  if (job.spec.stop === true) return false;
  const s = job.status?.feedSummary;
  return s === undefined || s.closed === s.delivered + s.failed;
};

export interface Children {
  active: Job[];
  succeeded: Job[];
  /** Failed, and replaced ones (they never finish on their own). */
  failed: Job[];
}

export function classify(jobs: readonly Job[]): Children {
  const children: Children = { active: [], succeeded: [], failed: [] };
  for (const job of jobs) {
    const finished = finishedAs(job);
    if (finished === "Succeeded") children.succeeded.push(job);
    else if (finished === "Failed" || job.metadata.annotations?.[REPLACED_BY_ANNOTATION]) children.failed.push(job);
    else children.active.push(job);
  }
  return children;
}

/** When a finished job ended (completionTime, else its scheduled time, else its creation). */
function endedAt(job: Job): number {
  const at =
    job.status?.completionTime ??
    job.metadata.annotations?.[SCHEDULED_TIME_ANNOTATION] ??
    job.metadata.creationTimestamp ??
    "";
  return Date.parse(String(at)) || 0;
}

/** The oldest finished CrawlJobs beyond the history limits (replaced ones only once their feeds settled). */
export function toPrune(children: Children, limits: { succeeded: number; failed: number }): Job[] {
  const over = (jobs: Job[], keep: number) => [...jobs].sort((a, b) => endedAt(b) - endedAt(a)).slice(keep);
  const failed = over(children.failed, limits.failed).filter((j) => finishedAs(j) || replacedAndSettled(j));
  return [...over(children.succeeded, limits.succeeded), ...failed];
}

/** The newest completion among the succeeded ones, if later than `previous`. */
export function lastSuccessful(succeeded: readonly Job[], previous: string | undefined): string | undefined {
  let best = previous;
  for (const job of succeeded) {
    const at = job.status?.completionTime;
    if (at && (!best || Date.parse(at) > Date.parse(best))) best = at;
  }
  return best;
}

/** What `kubectl describe crawlschedule` says about a run that finished. */
export function completionMessage(job: Job): string {
  const summary = job.status?.feedSummary;
  const feeds = summary ? `, ${summary.delivered}/${summary.closed} feed files delivered` : "";
  const items = job.status?.stats?.items !== undefined ? `, ${job.status.stats.items} items` : "";
  const reason = getCondition(job.status?.conditions, "Succeeded")?.reason;
  return `Saw completed CrawlJob ${job.metadata.name}: ${finishedAs(job)}${reason ? ` (${reason})` : ""}${items}${feeds}`;
}
