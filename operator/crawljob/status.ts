// The CrawlJob's status as a pure function of what the reconcile observed:
// the spec's validity, the runner Job, the CrawlFeeds, and the previous status
// (for lastTransitionTime, startTime, and the fields other writers own:
// shardStats from the runners, completionDelivery from the delivery). What
// each condition says is in status-rules.ts.
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob, CrawlJobStatus, CrawlStats, FeedSummary } from "../../crds/schema/crawljob.ts";
import type { KubeObject } from "../../kube/client.ts";
import { getCondition, setCondition } from "../runtime/conditions.ts";
import { podProblems, type RunnerPod } from "./pods.ts";
import { type Facts, judge } from "./status-rules.ts";
import type { ValidationFailure } from "./validate.ts";

export interface BatchJob extends KubeObject {
  spec?: { suspend?: boolean; completions?: number; parallelism?: number; backoffLimit?: number };
  status?: {
    active?: number;
    ready?: number;
    /** Pods being deleted that have not exited yet (Kubernetes 1.29+). */
    terminating?: number;
    succeeded?: number;
    failed?: number;
    startTime?: string;
    completionTime?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

/**
 * What the runner Job cache keeps (issue 13): metadata, the spec fields read
 * here and by the reconcile (suspend), and status. The pod template, most of
 * a Job's size, is never read from the cache.
 */
export function jobCacheTransform(job: BatchJob): BatchJob {
  const spec = job.spec;
  return {
    apiVersion: job.apiVersion,
    kind: job.kind,
    metadata: job.metadata,
    ...(spec && {
      spec: {
        suspend: spec.suspend,
        completions: spec.completions,
        parallelism: spec.parallelism,
        backoffLimit: spec.backoffLimit,
      },
    }),
    ...(job.status && { status: job.status }),
  };
}

interface Observed {
  job: CrawlJob;
  now: Date;
  validation: ValidationFailure | undefined;
  runnerJob: BatchJob | undefined;
  feeds: CrawlFeed[];
  /** The runner Job's pods (owned by it). */
  pods?: readonly RunnerPod[];
}

const STAT_KEYS = ["requests", "responses", "pages", "items", "itemsDropped", "errors", "bytes"] as const;

/** Sums the runners' per-shard counters; undefined when no shard reported. */
export function sumShardStats(shardStats: CrawlJobStatus["shardStats"]): Partial<CrawlStats> | undefined {
  const shards = Object.values(shardStats ?? {});
  if (shards.length === 0) return undefined;
  const total: Partial<CrawlStats> = {};
  for (const key of STAT_KEYS) total[key] = shards.reduce((sum, s) => sum + (s[key] ?? 0), 0);
  return total;
}

function summarizeFeeds(feeds: readonly CrawlFeed[]): FeedSummary {
  let delivered = 0;
  let failed = 0;
  let items = 0;
  let bytes = 0;
  for (const feed of feeds) {
    const state = feed.status?.delivery?.state;
    if (state === "Delivered") delivered += 1;
    else if (state === "Failed") failed += 1;
    items += feed.spec.items;
    bytes += feed.spec.bytes;
  }
  return { closed: feeds.length, delivered, failed, items, bytes, display: `${delivered}/${feeds.length}` };
}

function jobCondition(job: BatchJob | undefined, type: string) {
  return job?.status?.conditions?.find((c) => c.type === type && c.status === "True");
}

const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d+Z$/, "Z");

/** The full next status (the caller writes it only when it differs). */
export function computeStatus(o: Observed): CrawlJobStatus {
  const { job, now, runnerJob } = o;
  const previous = job.status ?? {};
  const generation = job.metadata.generation ?? 0;
  const status: CrawlJobStatus = structuredClone(previous);
  status.observedGeneration = generation;
  count(status, o.feeds);
  if (runnerJob) recordRunner(status, o);

  const { conditions, phase } = judge(facts(o, status));
  status.conditions = conditions.reduce(
    (list, [type, verdict]) => setCondition(list, { type, ...verdict, observedGeneration: generation }, now),
    previous.conditions ?? [],
  );
  status.phase = phase;
  const terminal = getCondition(status.conditions, "Succeeded")?.status !== "Unknown";
  // An invalid job without a runner may still be fixed; a stopped one never runs.
  if (terminal && (runnerJob || stopRequested(job))) status.completionTime ??= rfc3339(now);
  else if (!terminal) delete status.completionTime;
  return status;
}

/** Counters: the runners' shards summed; the feeds summarised, the newest five named. */
function count(status: CrawlJobStatus, feeds: readonly CrawlFeed[]): void {
  const summed = sumShardStats(status.shardStats);
  if (summed) status.stats = summed;
  status.feedSummary = summarizeFeeds(feeds);
  const recent = [...feeds]
    .sort((a, b) => (a.spec.closedAt < b.spec.closedAt ? 1 : a.spec.closedAt > b.spec.closedAt ? -1 : 0))
    .slice(0, 5)
    .map((f) => f.metadata.name!);
  if (recent.length > 0) status.recentFeeds = recent;
  else delete status.recentFeeds;
}

/** The runner Job's counts in status.runner, and the crawl's startTime. */
function recordRunner(status: CrawlJobStatus, { job, now, runnerJob }: Observed): void {
  const js = runnerJob!.status ?? {};
  status.runner = {
    ...status.runner,
    jobName: runnerJob!.metadata.name,
    shards: runnerJob!.spec?.completions ?? job.spec.runner?.parallelism ?? 1,
    active: js.active ?? 0,
    succeeded: js.succeeded ?? 0,
    failed: js.failed ?? 0,
  };
  status.startTime ??= js.startTime ?? rfc3339(now);
}

/**
 * spec.stop, or a stop the status already recorded: a stopped job stays
 * stopped even if an older CRD without the transition rule let spec.stop be unset.
 */
export function stopRequested(job: CrawlJob): boolean {
  const succeeded = getCondition(job.status?.conditions, "Succeeded");
  return job.spec.stop === true || (succeeded?.status === "True" && succeeded.reason === "Stopped");
}

/**
 * The suspended runner Job has no pod left that could still store or report
 * something: the Job controller acted on the suspension (its Suspended
 * condition), counts none active or terminating, and every pod seen has exited.
 */
function runnerExited(runnerJob: BatchJob | undefined, pods: readonly RunnerPod[]): boolean {
  const js = runnerJob?.status ?? {};
  return (
    runnerJob?.spec?.suspend === true &&
    jobCondition(runnerJob, "Suspended") !== undefined &&
    !js.active &&
    !js.terminating &&
    pods.every((p) => p.status?.phase === "Succeeded" || p.status?.phase === "Failed")
  );
}

function facts({ job, validation, runnerJob, feeds, pods }: Observed, status: CrawlJobStatus): Facts {
  const js = runnerJob?.status ?? {};
  const shards = runnerJob?.spec?.completions ?? job.spec.runner?.parallelism ?? 1;
  const webhook = job.spec.ingest?.webhook;
  return {
    validation,
    suspended: job.spec.suspend === true,
    stop: stopRequested(job),
    runnerExited: runnerExited(runnerJob, pods ?? []),
    jobName: runnerJob?.metadata.name,
    jobFailure: jobCondition(runnerJob, "Failed"),
    complete: jobCondition(runnerJob, "Complete") !== undefined,
    jobSuspended: runnerJob?.spec?.suspend === true,
    // `active` counts pods still pulling their image or unschedulable: `ready` is a running pod.
    noPods: !(js.ready ?? js.active) && !js.succeeded && !js.failed,
    podProblems: runnerJob ? podProblems(pods ?? []) : [],
    shards,
    progress: `${js.succeeded ?? 0} of ${shards} shards finished, ${js.active ?? 0} active, ${js.failed ?? 0} failed`,
    webhook: webhook !== undefined,
    onCompletion: (webhook?.mode ?? "perFeed") === "onCompletion",
    completionDelivery: status.completionDelivery,
    summary: status.feedSummary!,
    feeds,
  };
}

/** The CamelCase Events a status change deserves (condition transitions). */
export function transitionEvents(
  before: CrawlJobStatus | undefined,
  after: CrawlJobStatus,
): { type: "Normal" | "Warning"; reason: string; message: string }[] {
  const events: { type: "Normal" | "Warning"; reason: string; message: string }[] = [];
  const changed = (type: string) => {
    const a = getCondition(before?.conditions, type);
    const b = getCondition(after.conditions, type);
    return b && (a?.status !== b.status || a?.reason !== b.reason) ? b : undefined;
  };
  const validated = changed("Validated");
  if (validated?.status === "False")
    events.push({ type: "Warning", reason: validated.reason, message: validated.message });
  const healthy = changed("RunnerHealthy");
  if (healthy?.status === "False") events.push({ type: "Warning", reason: healthy.reason, message: healthy.message });
  const complete = changed("CrawlComplete");
  if (complete?.status === "True") events.push({ type: "Normal", reason: "CrawlCompleted", message: complete.message });
  if (complete?.status === "False") events.push({ type: "Warning", reason: "RunnerFailed", message: complete.message });
  const delivered = changed("FeedsDelivered");
  if (delivered?.status === "True" && delivered.reason !== "NoWebhook") {
    events.push({ type: "Normal", reason: "FeedsDelivered", message: delivered.message });
  }
  const succeeded = changed("Succeeded");
  if (succeeded?.status === "True")
    events.push({ type: "Normal", reason: "CrawlSucceeded", message: succeeded.message });
  if (succeeded?.status === "False" && succeeded.reason !== validated?.reason) {
    events.push({ type: "Warning", reason: "CrawlFailed", message: succeeded.message });
  }
  return events;
}
