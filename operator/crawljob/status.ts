// The CrawlJob's status as a pure function of what the reconcile observed:
// the spec's validity, the runner Job, the CrawlFeeds, and the previous status
// (for lastTransitionTime, startTime, and the fields other writers own:
// shardStats from the runners, completionDelivery from the delivery).
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob, CrawlJobStatus, CrawlStats, FeedSummary, Phase } from "../../crds/schema/crawljob.ts";
import type { KubeObject } from "../../kube/client.ts";
import { type ConditionInput, getCondition, setCondition } from "../runtime/conditions.ts";
import type { ValidationFailure } from "./validate.ts";

export interface BatchJob extends KubeObject {
  spec?: { suspend?: boolean; completions?: number; parallelism?: number };
  status?: {
    active?: number;
    ready?: number;
    succeeded?: number;
    failed?: number;
    startTime?: string;
    completionTime?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

export interface Observed {
  job: CrawlJob;
  now: Date;
  validation: ValidationFailure | undefined;
  runnerJob: BatchJob | undefined;
  feeds: CrawlFeed[];
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

export function summarizeFeeds(feeds: readonly CrawlFeed[]): FeedSummary {
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
  const { job, now, validation, runnerJob, feeds } = o;
  const previous = job.status ?? {};
  const generation = job.metadata.generation ?? 0;
  const status: CrawlJobStatus = structuredClone(previous);
  let conditions = previous.conditions ?? [];
  const set = (c: Omit<ConditionInput, "observedGeneration">) => {
    conditions = setCondition(conditions, { ...c, observedGeneration: generation }, now);
  };

  status.observedGeneration = generation;

  // Counters: the runners' shards summed; the feeds summarised.
  const summed = sumShardStats(previous.shardStats);
  if (summed) status.stats = summed;
  const summary = summarizeFeeds(feeds);
  status.feedSummary = summary;
  const recent = [...feeds]
    .sort((a, b) => (a.spec.closedAt < b.spec.closedAt ? 1 : a.spec.closedAt > b.spec.closedAt ? -1 : 0))
    .slice(0, 5)
    .map((f) => f.metadata.name!);
  if (recent.length > 0) status.recentFeeds = recent;
  else delete status.recentFeeds;

  // Validated: of the current generation (a running crawl keeps its snapshot).
  if (validation) set({ type: "Validated", status: "False", reason: validation.reason, message: validation.message });
  else set({ type: "Validated", status: "True", reason: "Valid", message: "The spec passed validation" });

  const suspended = job.spec.suspend === true;
  const mode = job.spec.ingest?.webhook?.mode ?? "perFeed";
  const hasWebhook = job.spec.ingest?.webhook !== undefined;
  let phase: Phase;

  if (runnerJob) {
    const shards = runnerJob.spec?.completions ?? job.spec.runner?.parallelism ?? 1;
    const js = runnerJob.status ?? {};
    status.runner = {
      ...status.runner,
      jobName: runnerJob.metadata.name,
      shards,
      active: js.active ?? 0,
      succeeded: js.succeeded ?? 0,
      failed: js.failed ?? 0,
    };
    status.startTime ??= js.startTime ?? rfc3339(now);
    const complete = jobCondition(runnerJob, "Complete");
    const failed = jobCondition(runnerJob, "Failed");
    const jobSuspended = runnerJob.spec?.suspend === true;
    const progress = `${js.succeeded ?? 0} of ${shards} shards finished, ${js.active ?? 0} active, ${js.failed ?? 0} failed`;

    if (failed) {
      set({
        type: "RunnerReady",
        status: "False",
        reason: "RunnerFailed",
        message: `Job ${runnerJob.metadata.name} failed`,
      });
      set({
        type: "CrawlComplete",
        status: "False",
        reason: failed.reason || "RunnerFailed",
        message: failed.message || `Job ${runnerJob.metadata.name} failed: ${progress}`,
      });
    } else if (complete) {
      set({
        type: "RunnerReady",
        status: "True",
        reason: "RunnerFinished",
        message: `Job ${runnerJob.metadata.name} completed`,
      });
      set({
        type: "CrawlComplete",
        status: "True",
        reason: "RunnerSucceeded",
        message: `All ${shards} shards finished`,
      });
    } else if (jobSuspended) {
      set({
        type: "RunnerReady",
        status: "False",
        reason: "Suspended",
        message: `Job ${runnerJob.metadata.name} is suspended`,
      });
      set({ type: "CrawlComplete", status: "Unknown", reason: "Suspended", message: progress });
    } else if (!js.active && !js.succeeded && !js.failed) {
      set({
        type: "RunnerReady",
        status: "False",
        reason: "WaitingForPods",
        message: `Job ${runnerJob.metadata.name} has no running pod yet`,
      });
      set({ type: "CrawlComplete", status: "Unknown", reason: "NotStarted", message: progress });
    } else {
      set({
        type: "RunnerReady",
        status: "True",
        reason: "RunnerStarted",
        message: `Job ${runnerJob.metadata.name}: ${progress}`,
      });
      set({ type: "CrawlComplete", status: "Unknown", reason: "Crawling", message: progress });
    }

    // FeedsDelivered
    let deliveredStatus: "True" | "False" | "Unknown" = "Unknown";
    if (!hasWebhook) {
      deliveredStatus = complete ? "True" : "Unknown";
      set({
        type: "FeedsDelivered",
        status: deliveredStatus,
        reason: "NoWebhook",
        message: "No ingest webhook is configured",
      });
    } else if (mode === "onCompletion") {
      const cd = previous.completionDelivery;
      if (cd?.state === "Delivered") {
        deliveredStatus = "True";
        set({
          type: "FeedsDelivered",
          status: "True",
          reason: "Delivered",
          message: `The crawl.completed event with ${summary.closed} feeds was delivered`,
        });
      } else if (cd?.state === "Failed") {
        deliveredStatus = "False";
        set({
          type: "FeedsDelivered",
          status: "False",
          reason: "DeliveryFailed",
          message: `The crawl.completed event failed: ${cd.lastError ?? "no detail"}`,
        });
      } else {
        set({
          type: "FeedsDelivered",
          status: "Unknown",
          reason: complete ? "Delivering" : "WaitingForRunner",
          message: complete
            ? `Sending the crawl.completed event (${cd?.attempts ?? 0} attempts)`
            : "The crawl.completed event is sent when the runner finishes",
        });
      }
    } else {
      const pending = summary.closed - summary.delivered - summary.failed;
      if (summary.failed > 0 && (pending === 0 || failed)) {
        deliveredStatus = "False";
        const first = feeds.find((f) => f.status?.delivery?.state === "Failed");
        set({
          type: "FeedsDelivered",
          status: "False",
          reason: "DeliveryFailed",
          message: `${summary.failed} of ${summary.closed} feeds failed; CrawlFeed ${first?.metadata.name}: ${first?.status?.delivery?.lastError ?? "no detail"}`,
        });
      } else if (complete && pending === 0) {
        deliveredStatus = "True";
        set({
          type: "FeedsDelivered",
          status: "True",
          reason: summary.closed === 0 ? "NoFeeds" : "AllDelivered",
          message:
            summary.closed === 0
              ? "The crawl closed no feed files"
              : `${summary.delivered}/${summary.closed} feeds delivered`,
        });
      } else {
        set({
          type: "FeedsDelivered",
          status: "Unknown",
          reason: "Delivering",
          message: `${summary.delivered}/${summary.closed} feeds delivered${complete ? "" : " so far"}`,
        });
      }
    }

    // Succeeded: the one `kubectl wait` uses.
    if (failed) {
      set({
        type: "Succeeded",
        status: "False",
        reason: "RunnerFailed",
        message: `The runner failed: ${failed.reason ?? ""} ${failed.message ?? ""}`.trim(),
      });
      phase = "Failed";
    } else if (complete && deliveredStatus === "True") {
      set({
        type: "Succeeded",
        status: "True",
        reason: "CrawlSucceeded",
        message: `The crawl finished and ${hasWebhook ? `${summary.delivered}/${summary.closed} feeds were delivered` : "no webhook was configured"}`,
      });
      phase = "Succeeded";
    } else if (deliveredStatus === "False") {
      set({
        type: "Succeeded",
        status: "False",
        reason: "DeliveryFailed",
        message: getCondition(conditions, "FeedsDelivered")!.message,
      });
      phase = "Failed";
    } else if (complete) {
      set({
        type: "Succeeded",
        status: "Unknown",
        reason: "Ingesting",
        message: "The runner finished; delivering feeds",
      });
      phase = "Ingesting";
    } else if (jobSuspended) {
      set({ type: "Succeeded", status: "Unknown", reason: "Suspended", message: "The runner is suspended" });
      phase = "Pending";
    } else if (getCondition(conditions, "RunnerReady")?.reason === "WaitingForPods") {
      set({ type: "Succeeded", status: "Unknown", reason: "Pending", message: "Waiting for the runner pods" });
      phase = "Pending";
    } else {
      set({ type: "Succeeded", status: "Unknown", reason: "Crawling", message: "The runner is crawling" });
      phase = "Running";
    }
  } else if (validation) {
    set({
      type: "RunnerReady",
      status: "False",
      reason: "InvalidSpec",
      message: "No runner is started for an invalid spec",
    });
    set({ type: "CrawlComplete", status: "Unknown", reason: "NotStarted", message: "The runner has not started" });
    set({ type: "FeedsDelivered", status: "Unknown", reason: "NotStarted", message: "The runner has not started" });
    set({ type: "Succeeded", status: "False", reason: validation.reason, message: validation.message });
    phase = "Failed";
  } else if (suspended) {
    set({
      type: "RunnerReady",
      status: "False",
      reason: "Suspended",
      message: "spec.suspend is true: no runner is started",
    });
    set({ type: "CrawlComplete", status: "Unknown", reason: "NotStarted", message: "The runner has not started" });
    set({ type: "FeedsDelivered", status: "Unknown", reason: "NotStarted", message: "The runner has not started" });
    set({ type: "Succeeded", status: "Unknown", reason: "Suspended", message: "spec.suspend is true" });
    phase = "Pending";
  } else {
    set({ type: "RunnerReady", status: "False", reason: "Creating", message: "Creating the runner Job" });
    set({ type: "CrawlComplete", status: "Unknown", reason: "NotStarted", message: "The runner has not started" });
    set({ type: "FeedsDelivered", status: "Unknown", reason: "NotStarted", message: "The runner has not started" });
    set({ type: "Succeeded", status: "Unknown", reason: "Pending", message: "Waiting for the runner" });
    phase = "Pending";
  }

  status.phase = phase;
  status.conditions = conditions;
  const terminal = getCondition(conditions, "Succeeded")?.status !== "Unknown";
  if (terminal && runnerJob) status.completionTime ??= rfc3339(now);
  else if (!terminal) delete status.completionTime;
  return status;
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
