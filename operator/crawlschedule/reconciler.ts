// Reconciles one CrawlSchedule, level-triggered, as kube-controller-manager's
// CronJob controller (v2) does: read the schedule and its CrawlJobs from the
// caches, note the runs that finished, prune history, start the run that is
// due (or the one feedcrawl.io/run-now asks for), write the status, and come
// back at the next scheduled time. What is due is cron.ts's; the CrawlJobs
// themselves are jobs.ts's.
import { isDeepStrictEqual } from "node:util";
import type { Logger } from "pino";
import type { CrawlScheduleStatus } from "../../crds/schema/crawlschedule.ts";
import { REPLACED_BY_ANNOTATION, RUN_NOW_ANNOTATION } from "../../crds/schema/names.ts";
import type { KubeClient } from "../../kube/client.ts";
import { isAlreadyExists, isConflict, isNotFound } from "../../kube/errors.ts";
import { CRAWLJOBS, CRAWLSCHEDULES } from "../../kube/resources.ts";
import { getCondition, setCondition } from "../runtime/conditions.ts";
import type { ReconcileRequest, ReconcileResult } from "../runtime/controller.ts";
import type { EventRecorder } from "../runtime/events.ts";
import type { InformerGroup } from "../runtime/informer.ts";
import { type Schedule as Cron, dueRun, parseSchedule, ScheduleError, TOO_MANY_MISSED } from "./cron.ts";
import {
  buildCrawlJob,
  type Children,
  classify,
  completionMessage,
  finishedAs,
  type Job,
  jobRef,
  lastSuccessful,
  rfc3339,
  runNowJobName,
  type Schedule,
  scheduledJobName,
  toPrune,
} from "./jobs.ts";

export interface CrawlScheduleReconcilerDeps {
  client: KubeClient;
  schedules: InformerGroup<Schedule>;
  crawlJobs: InformerGroup<Job>;
  events: EventRecorder;
  /** The clock (tests inject one to play missed runs and outages). */
  now?: () => Date;
}

/** One reconcile's view, shared by its steps. */
interface Pass {
  schedule: Schedule;
  status: CrawlScheduleStatus;
  children: Children;
  now: Date;
  logger: Logger;
  /** The reconcile's signal: every API call of the pass gets it. */
  signal: AbortSignal;
}

/** Slack after a scheduled time before looking again (CronJob adds 100 ms too). */
const REQUEUE_SLACK_MS = 100;
/** Look again at least hourly: a timer longer than 2^31 ms (24.8 days, e.g. @yearly) would fire at once. */
export const MAX_REQUEUE_MS = 60 * 60_000;

export function createCrawlScheduleReconciler(deps: CrawlScheduleReconcilerDeps) {
  const reconciler = new CrawlScheduleReconciler(deps);
  return (req: ReconcileRequest) => reconciler.reconcile(req);
}

export class CrawlScheduleReconciler {
  readonly #d: CrawlScheduleReconcilerDeps;
  readonly #now: () => Date;

  constructor(deps: CrawlScheduleReconcilerDeps) {
    this.#d = deps;
    this.#now = deps.now ?? (() => new Date());
  }

  async reconcile(req: ReconcileRequest): Promise<ReconcileResult | undefined> {
    const cached = this.#d.schedules.get(req.namespace, req.name);
    if (!cached || cached.metadata.deletionTimestamp) return undefined; // its CrawlJobs go with it (ownerReferences)
    const schedule = structuredClone(cached);
    const now = this.#now();
    const jobs = await this.#children(schedule, req.signal);
    const pass: Pass = {
      schedule,
      status: structuredClone(schedule.status ?? {}),
      children: classify(jobs),
      now,
      logger: req.logger,
      signal: req.signal,
    };
    await this.#noteCompleted(pass);
    await this.#prune(pass);
    this.#recordActive(pass);

    let cron: Cron;
    try {
      cron = parseSchedule(schedule.spec.schedule, schedule.spec.timeZone);
    } catch (err) {
      if (!(err instanceof ScheduleError)) throw err;
      await this.#setValid(pass, err.message);
      await this.#writeStatus(pass);
      return undefined; // a spec change brings it back
    }
    await this.#setValid(pass, undefined);
    await this.#runNow(pass);
    const result = schedule.spec.suspend === true ? undefined : await this.#runDue(pass, cron);
    await this.#writeStatus(pass);
    return result;
  }

  /** The schedule's CrawlJobs: the cache, plus any still listed as active that the cache has not seen yet. */
  async #children(schedule: Schedule, signal: AbortSignal): Promise<Job[]> {
    const { namespace, uid } = schedule.metadata;
    const owned = (j: Job) =>
      j.metadata.namespace === namespace &&
      (j.metadata.ownerReferences ?? []).some((r) => r.controller && r.uid === uid);
    const jobs = this.#d.crawlJobs.list(owned);
    const known = new Set(jobs.map((j) => j.metadata.name));
    for (const ref of schedule.status?.active ?? []) {
      if (known.has(ref.name)) continue;
      // Just created (the cache lags behind) or deleted: ask the API server.
      const job = await this.#d.client.getOrUndefined<Job>(CRAWLJOBS, namespace, ref.name, { signal });
      if (job && owned(job)) jobs.push(job);
    }
    return jobs;
  }

  /** An Event for each run that was active at the last write and has finished since. */
  async #noteCompleted({ schedule, children, signal }: Pass): Promise<void> {
    const wasActive = new Set((schedule.status?.active ?? []).map((r) => r.uid));
    for (const job of [...children.succeeded, ...children.failed]) {
      if (!wasActive.has(job.metadata.uid) || job.metadata.annotations?.[REPLACED_BY_ANNOTATION]) continue;
      const type = finishedAs(job) === "Succeeded" ? "Normal" : "Warning";
      await this.#d.events.record(schedule, type, "SawCompletedJob", completionMessage(job), signal);
    }
  }

  /** successfulJobsHistoryLimit / failedJobsHistoryLimit: delete the oldest finished runs. */
  async #prune(pass: Pass): Promise<void> {
    const { schedule, children, logger, signal } = pass;
    const pruned = toPrune(children, {
      succeeded: schedule.spec.successfulJobsHistoryLimit ?? 3,
      failed: schedule.spec.failedJobsHistoryLimit ?? 1,
    });
    for (const job of pruned) {
      const { namespace, name, uid } = job.metadata as { namespace: string; name: string; uid: string };
      try {
        await this.#d.client.delete(CRAWLJOBS, namespace, name, { uid, propagationPolicy: "Background", signal });
      } catch (err) {
        if (!isNotFound(err) && !isConflict(err)) throw err;
        continue;
      }
      logger.info(`Deleted CrawlJob ${namespace}/${name}: history limit of CrawlSchedule ${schedule.metadata.name}`);
      const message = `Deleted CrawlJob ${name} (history limit)`;
      await this.#d.events.record(schedule, "Normal", "SuccessfulDelete", message, signal);
    }
    const gone = new Set(pruned.map((j) => j.metadata.uid));
    children.succeeded = children.succeeded.filter((j) => !gone.has(j.metadata.uid));
    children.failed = children.failed.filter((j) => !gone.has(j.metadata.uid));
  }

  #recordActive({ status, children }: Pass): void {
    status.active = children.active.slice(0, 100).map(jobRef);
    status.activeCount = children.active.length;
    const last = lastSuccessful(children.succeeded, status.lastSuccessfulTime);
    if (last) status.lastSuccessfulTime = last;
  }

  /** The ScheduleValid condition, with a Warning Event when the schedule turns invalid. */
  async #setValid(pass: Pass, problem: string | undefined): Promise<void> {
    const { schedule, status, now, signal } = pass;
    const before = getCondition(status.conditions, "ScheduleValid");
    status.conditions = setCondition(
      status.conditions,
      problem
        ? { type: "ScheduleValid", status: "False", reason: "InvalidSchedule", message: problem }
        : { type: "ScheduleValid", status: "True", reason: "Valid", message: "The schedule and time zone parse" },
      now,
    );
    if (problem && (before?.status !== "False" || before.message !== problem)) {
      await this.#d.events.record(schedule, "Warning", "InvalidSchedule", problem, signal);
    }
  }

  /** feedcrawl.io/run-now: a value not acted on yet starts one run now (also while suspended). */
  async #runNow(pass: Pass): Promise<void> {
    const value = pass.schedule.metadata.annotations?.[RUN_NOW_ANNOTATION];
    if (value === undefined || value === pass.status.lastRunNow) return;
    const name = runNowJobName(pass.schedule.metadata.name!, value);
    if (await this.#start(pass, name, pass.now, "run-now")) pass.status.lastRunNow = value;
  }

  /** The scheduled run that is due, if any; the result says when to look again. */
  async #runDue(pass: Pass, cron: Cron): Promise<ReconcileResult | undefined> {
    const { schedule, status, now, logger, signal } = pass;
    const last = status.lastScheduleTime ? new Date(status.lastScheduleTime) : undefined;
    const due = dueRun(cron, {
      ...(last ? { lastScheduleTime: last } : {}),
      created: new Date(schedule.metadata.creationTimestamp ?? now),
      now,
      ...(schedule.spec.startingDeadlineSeconds !== undefined
        ? { startingDeadlineSeconds: schedule.spec.startingDeadlineSeconds }
        : {}),
    });
    const result = due.next
      ? { requeueAfterMs: Math.min(due.next.getTime() - now.getTime() + REQUEUE_SLACK_MS, MAX_REQUEUE_MS) }
      : undefined;
    if (!due.scheduled) return result;
    if (due.missed > TOO_MANY_MISSED) {
      logger.warn({ missed: due.missed }, `CrawlSchedule ${schedule.metadata.name} missed too many start times`);
      await this.#d.events.record(
        schedule,
        "Warning",
        "TooManyMissedTimes",
        "More than 100 missed start times: set or decrease spec.startingDeadlineSeconds, or check clock skew",
        signal,
      );
    }
    if (due.tooLate) {
      await this.#d.events.record(
        schedule,
        "Warning",
        "MissSchedule",
        `Missed the run scheduled at ${rfc3339(due.scheduled)}: more than startingDeadlineSeconds (${schedule.spec.startingDeadlineSeconds}) ago`,
        signal,
      );
      return result;
    }
    if (await this.#start(pass, scheduledJobName(schedule.metadata.name!, due.scheduled), due.scheduled, "schedule")) {
      status.lastScheduleTime = rfc3339(due.scheduled);
    }
    return result;
  }

  /** Starts one run under the concurrency policy; false when Forbid holds it back. */
  async #start(pass: Pass, name: string, scheduled: Date, trigger: "schedule" | "run-now"): Promise<boolean> {
    const { schedule, children, signal } = pass;
    if (children.active.some((j) => j.metadata.name === name)) return true; // started by an earlier pass
    const policy = schedule.spec.concurrencyPolicy ?? "Allow";
    if (policy === "Forbid" && children.active.length > 0) {
      const running = children.active.map((j) => j.metadata.name).join(", ");
      await this.#d.events.record(
        schedule,
        "Normal",
        "JobAlreadyActive",
        `Not starting the ${trigger} run for ${rfc3339(scheduled)}: CrawlJob ${running} is still active and concurrencyPolicy is Forbid`,
        signal,
      );
      return false;
    }
    if (policy === "Replace") await this.#replaceActive(pass, name);
    const job = await this.#create(pass, name, scheduled, trigger);
    if (!finishedAs(job)) children.active.push(job); // an earlier pass's run may have finished already
    this.#recordActive(pass);
    return true;
  }

  async #create(pass: Pass, name: string, scheduled: Date, trigger: string): Promise<Job> {
    const { schedule, logger, signal } = pass;
    const namespace = schedule.metadata.namespace!;
    try {
      const job = await this.#d.client.create<Job>(CRAWLJOBS, buildCrawlJob(schedule, name, scheduled), { signal });
      logger.info(
        { scheduledTime: rfc3339(scheduled), trigger },
        `Created CrawlJob ${namespace}/${name} for CrawlSchedule ${schedule.metadata.name}`,
      );
      const why = trigger === "run-now" ? "run-now" : `the run scheduled at ${rfc3339(scheduled)}`;
      await this.#d.events.record(
        schedule,
        "Normal",
        "SuccessfulCreate",
        `Created CrawlJob ${name} for ${why}`,
        signal,
      );
      return job;
    } catch (err) {
      // Created by an earlier pass whose status write was lost: the same run, not a new one.
      if (!isAlreadyExists(err)) throw err;
      return this.#d.client.get<Job>(CRAWLJOBS, namespace, name, { signal });
    }
  }

  /**
   * concurrencyPolicy Replace: stop the active runs (spec.stop: their runners
   * get SIGTERM, store and report their open batches, every stored feed is
   * still delivered, and each ends Succeeded/Stopped), mark them replaced, and
   * stop counting them as active. Not pruned in this pass: they are still stopping.
   */
  async #replaceActive(pass: Pass, replacement: string): Promise<void> {
    const { schedule, children, logger, signal } = pass;
    for (const job of children.active) {
      const { namespace, name } = job.metadata as { namespace: string; name: string };
      await this.#d.client.patch(
        CRAWLJOBS,
        namespace,
        name,
        { metadata: { annotations: { [REPLACED_BY_ANNOTATION]: replacement } }, spec: { stop: true } },
        { signal },
      );
      logger.info(`Stopping CrawlJob ${namespace}/${name}: replaced by ${replacement}`);
      await this.#d.events.record(
        schedule,
        "Normal",
        "SuccessfulReplace",
        `Stopping CrawlJob ${name}: replaced by ${replacement} (concurrencyPolicy Replace)`,
        signal,
      );
    }
    children.active = [];
  }

  /** Writes the status when it changed (an update with the resourceVersion read: 409 retries the reconcile). */
  async #writeStatus({ schedule, status, signal }: Pass): Promise<void> {
    if (isDeepStrictEqual(status, schedule.status ?? {})) return;
    await this.#d.client.updateStatus<Schedule>(CRAWLSCHEDULES, { ...schedule, status }, { signal });
  }
}
