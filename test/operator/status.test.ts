import assert from "node:assert/strict";
import { test } from "node:test";
import type { RunnerPod } from "../../operator/crawljob/pods.ts";
import { type BatchJob, computeStatus, sumShardStats, transitionEvents } from "../../operator/crawljob/status.ts";
import { getCondition } from "../../operator/runtime/conditions.ts";
import { crawlFeed, crawlJob, crawlJobSpec } from "./fixtures.ts";

const now = new Date("2026-11-25T10:10:00Z");

function runnerJob(state: "running" | "complete" | "failed" | "suspended", succeeded = 0): BatchJob {
  const conditions =
    state === "complete"
      ? [{ type: "Complete", status: "True" }]
      : state === "failed"
        ? [
            {
              type: "Failed",
              status: "True",
              reason: "BackoffLimitExceeded",
              message: "Job has reached the specified backoff limit",
            },
          ]
        : [];
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: "books-runner", namespace: "crawl" },
    spec: { completions: 2, parallelism: 2, suspend: state === "suspended" },
    status: { active: state === "running" ? 2 : 0, succeeded, failed: state === "failed" ? 4 : 0, conditions },
  };
}

const cond = (s: ReturnType<typeof computeStatus>, type: string) => {
  const c = getCondition(s.conditions, type)!;
  return `${c.status}/${c.reason}`;
};

test("a valid job without a runner yet is Pending with Succeeded=Unknown, and every condition is set", () => {
  const s = computeStatus({ job: crawlJob(), now, validation: undefined, runnerJob: undefined, feeds: [] });
  assert.equal(s.phase, "Pending");
  assert.deepEqual(
    s.conditions?.map((c) => c.type),
    ["Validated", "RunnerReady", "RunnerHealthy", "CrawlComplete", "FeedsDelivered", "Succeeded"],
  );
  assert.equal(cond(s, "RunnerHealthy"), "Unknown/NotStarted");
  assert.equal(cond(s, "Succeeded"), "Unknown/Pending");
  assert.equal(s.observedGeneration, 1);
  assert.equal(s.completionTime, undefined);
});

test("an invalid job is Failed, Validated=False with the reason and the field in the message, no completionTime", () => {
  const validation = {
    reason: "SecretNotFound" as const,
    errors: [],
    message: "spec.storage.s3.credentialsSecretRef.name: Secret crawl/x not found",
  };
  const s = computeStatus({ job: crawlJob(), now, validation, runnerJob: undefined, feeds: [] });
  assert.equal(s.phase, "Failed");
  assert.equal(cond(s, "Validated"), "False/SecretNotFound");
  assert.match(getCondition(s.conditions, "Validated")!.message, /spec\.storage\.s3\.credentialsSecretRef\.name/);
  assert.equal(cond(s, "Succeeded"), "False/SecretNotFound");
  assert.equal(s.completionTime, undefined, "an invalid spec can still be fixed: not finished");
});

test("suspended before start: Pending, RunnerReady=False/Suspended", () => {
  const s = computeStatus({
    job: crawlJob(crawlJobSpec({ suspend: true })),
    now,
    validation: undefined,
    runnerJob: undefined,
    feeds: [],
  });
  assert.equal(s.phase, "Pending");
  assert.equal(cond(s, "RunnerReady"), "False/Suspended");
});

test("running: Running, counts feeds and sums shard stats", () => {
  const job = crawlJob();
  job.status = { shardStats: { "0": { pages: 3, items: 5 }, "1": { pages: 4, items: 1, errors: 2 } } };
  const feeds = [crawlFeed(job, 1, "Delivered"), crawlFeed(job, 2, "Pending")];
  const s = computeStatus({ job, now, validation: undefined, runnerJob: runnerJob("running"), feeds });
  assert.equal(s.phase, "Running");
  assert.equal(s.stats?.pages, 7);
  assert.equal(s.stats?.items, 6);
  assert.equal(s.stats?.errors, 2);
  assert.deepEqual(s.feedSummary, { closed: 2, delivered: 1, failed: 0, items: 20, bytes: 2000, display: "1/2" });
  assert.deepEqual(s.recentFeeds, [feeds[1]!.metadata.name, feeds[0]!.metadata.name]);
  assert.equal(cond(s, "RunnerReady"), "True/RunnerStarted");
  assert.equal(cond(s, "Succeeded"), "Unknown/Crawling");
  assert.ok(s.startTime);
  assert.deepEqual(s.shardStats, job.status.shardStats, "the runners' field is kept");
});

test("runner finished, feeds still delivering: Ingesting; all delivered: Succeeded with completionTime", () => {
  const job = crawlJob();
  const ingesting = computeStatus({
    job,
    now,
    validation: undefined,
    runnerJob: runnerJob("complete", 2),
    feeds: [crawlFeed(job, 1, "Delivered"), crawlFeed(job, 2, "Sending")],
  });
  assert.equal(ingesting.phase, "Ingesting");
  assert.equal(cond(ingesting, "CrawlComplete"), "True/RunnerSucceeded");
  assert.equal(cond(ingesting, "FeedsDelivered"), "Unknown/Delivering");
  assert.equal(cond(ingesting, "Succeeded"), "Unknown/Ingesting");
  job.status = ingesting;
  const done = computeStatus({
    job,
    now: new Date("2026-11-25T10:11:00Z"),
    validation: undefined,
    runnerJob: runnerJob("complete", 2),
    feeds: [crawlFeed(job, 1, "Delivered"), crawlFeed(job, 2, "Delivered")],
  });
  assert.equal(done.phase, "Succeeded");
  assert.equal(cond(done, "Succeeded"), "True/CrawlSucceeded");
  assert.equal(done.completionTime, "2026-11-25T10:11:00Z");
  assert.equal(done.feedSummary?.display, "2/2");
  // lastTransitionTime of an unchanged condition stays
  assert.equal(
    getCondition(done.conditions, "CrawlComplete")!.lastTransitionTime,
    getCondition(ingesting.conditions, "CrawlComplete")!.lastTransitionTime,
  );
  const events = transitionEvents(ingesting, done).map((e) => e.reason);
  assert.deepEqual(events, ["FeedsDelivered", "CrawlSucceeded"]);
});

test("a failed runner Job: Failed with the Job's reason", () => {
  const s = computeStatus({ job: crawlJob(), now, validation: undefined, runnerJob: runnerJob("failed"), feeds: [] });
  assert.equal(s.phase, "Failed");
  assert.equal(cond(s, "CrawlComplete"), "False/BackoffLimitExceeded");
  assert.equal(cond(s, "Succeeded"), "False/RunnerFailed");
  assert.ok(s.completionTime);
  assert.ok(transitionEvents(undefined, s).some((e) => e.type === "Warning" && e.reason === "RunnerFailed"));
});

test("a feed that failed delivery: Failed once no feed is still pending", () => {
  const job = crawlJob();
  const failedFeed = crawlFeed(job, 2, "Failed");
  failedFeed.status!.delivery!.lastError = "HTTP 400 from backend.example";
  const s = computeStatus({
    job,
    now,
    validation: undefined,
    runnerJob: runnerJob("complete", 2),
    feeds: [crawlFeed(job, 1, "Delivered"), failedFeed],
  });
  assert.equal(s.phase, "Failed");
  assert.equal(cond(s, "FeedsDelivered"), "False/DeliveryFailed");
  assert.match(getCondition(s.conditions, "Succeeded")!.message, /HTTP 400/);
});

test("a feed that failed delivery while the runner still crawls: Running, the failure in the message, never Failed and back", () => {
  const job = crawlJob();
  const feeds = [crawlFeed(job, 1, "Delivered"), crawlFeed(job, 2, "Failed")];
  const running = computeStatus({ job, now, validation: undefined, runnerJob: runnerJob("running"), feeds });
  assert.equal(running.phase, "Running");
  assert.equal(cond(running, "FeedsDelivered"), "Unknown/Delivering");
  assert.match(getCondition(running.conditions, "FeedsDelivered")!.message, /1\/2 feeds delivered, 1 failed so far/);
  // The same feeds once the runner finished: now final.
  const done = computeStatus({ job, now, validation: undefined, runnerJob: runnerJob("complete", 2), feeds });
  assert.equal(done.phase, "Failed");
});

test("onCompletion: Succeeded only when the completion event is delivered", () => {
  const spec = crawlJobSpec();
  spec.ingest!.webhook!.mode = "onCompletion";
  const job = crawlJob(spec);
  const feeds = [crawlFeed(job, 1)];
  const before = computeStatus({ job, now, validation: undefined, runnerJob: runnerJob("complete", 2), feeds });
  assert.equal(before.phase, "Ingesting");
  job.status = { ...before, completionDelivery: { state: "Delivered", attempts: 1 } };
  const after = computeStatus({ job, now, validation: undefined, runnerJob: runnerJob("complete", 2), feeds });
  assert.equal(after.phase, "Succeeded");
  assert.deepEqual(after.completionDelivery, { state: "Delivered", attempts: 1 }, "the delivery's field is kept");
});

test("a suspended running Job: RunnerReady=False/Suspended", () => {
  const s = computeStatus({
    job: crawlJob(),
    now,
    validation: undefined,
    runnerJob: runnerJob("suspended"),
    feeds: [],
  });
  assert.equal(cond(s, "RunnerReady"), "False/Suspended");
  assert.equal(s.phase, "Pending");
});

test("sumShardStats: undefined without shards", () => {
  assert.equal(sumShardStats(undefined), undefined);
  assert.equal(sumShardStats({}), undefined);
  assert.equal(sumShardStats({ "0": { bytes: 1 }, "3": { bytes: 2 } })?.bytes, 3);
});

/** A pod of the runner Job, as the pod cache holds it. */
function pod(name: string, shard: number, status: RunnerPod["status"], created = "2026-11-25T10:00:00Z"): RunnerPod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: "crawl",
      creationTimestamp: created,
      labels: { "batch.kubernetes.io/job-completion-index": String(shard) },
    },
    status,
  };
}

const pulling = (reason: string, message: string): RunnerPod["status"] => ({
  phase: "Pending",
  containerStatuses: [{ name: "runner", state: { waiting: { reason, message } } }],
});

test("a pod that cannot pull its image: Pending, RunnerHealthy=False with the kubelet's reason and message", () => {
  const job = runnerJob("running");
  job.status = { active: 2, ready: 0 }; // the Job controller counts pending pods as active
  const pods = [
    pod("books-runner-0-abcde", 0, pulling("ImagePullBackOff", 'Back-off pulling image "nope:1"')),
    pod("books-runner-1-fghij", 1, pulling("ErrImagePull", "not found")),
  ];
  const s = computeStatus({ job: crawlJob(), now, validation: undefined, runnerJob: job, feeds: [], pods });
  assert.equal(s.phase, "Pending");
  assert.equal(cond(s, "RunnerHealthy"), "False/ImagePullBackOff");
  const healthy = getCondition(s.conditions, "RunnerHealthy")!;
  assert.equal(
    healthy.message,
    'Pod books-runner-0-abcde (shard 0): Back-off pulling image "nope:1" (and 1 more shard with problems)',
  );
  assert.equal(cond(s, "RunnerReady"), "False/WaitingForPods");
  assert.match(getCondition(s.conditions, "Succeeded")!.message, /ImagePullBackOff/);
  const warning = transitionEvents(undefined, s).find((e) => e.reason === "ImagePullBackOff");
  assert.equal(warning?.type, "Warning");
});

test("unschedulable, OOM-killed and config-error pods; a replaced pod's failure is history", () => {
  const check = (pods: RunnerPod[], expected: string, message?: RegExp) => {
    const s = computeStatus({
      job: crawlJob(),
      now,
      validation: undefined,
      runnerJob: runnerJob("running"),
      feeds: [],
      pods,
    });
    assert.equal(cond(s, "RunnerHealthy"), expected);
    if (message) assert.match(getCondition(s.conditions, "RunnerHealthy")!.message, message);
  };
  const unschedulable = {
    phase: "Pending",
    conditions: [
      {
        type: "PodScheduled",
        status: "False",
        reason: "Unschedulable",
        message: "0/1 nodes are available: 1 Insufficient memory.",
      },
    ],
  };
  check([pod("p0", 0, unschedulable)], "False/Unschedulable", /Insufficient memory/);
  const oom = {
    phase: "Failed",
    containerStatuses: [{ name: "runner", state: { terminated: { exitCode: 137, reason: "OOMKilled" } } }],
  };
  check([pod("p0", 0, oom)], "False/OOMKilled", /out of memory/);
  const log = [
    '{"level":30,"msg":"Starting"}',
    '{"level":50,"err":"FEEDCRAWL_SPEC /etc/feedcrawl/crawljob.json: ENOENT","msg":"Runner configuration is invalid"}',
  ].join("\n");
  const config = {
    phase: "Failed",
    containerStatuses: [{ name: "runner", state: { terminated: { exitCode: 2, reason: "Error", message: log } } }],
  };
  check(
    [pod("p0", 0, config)],
    "False/RunnerConfigError",
    /exit 2, a configuration error: Runner configuration is invalid: FEEDCRAWL_SPEC/,
  );
  const crashed = {
    phase: "Failed",
    containerStatuses: [{ name: "runner", state: { terminated: { exitCode: 1, reason: "Error", message: "boom" } } }],
  };
  check([pod("p0", 0, crashed)], "False/RunnerError", /exit 1: boom/);
  const running = { phase: "Running", containerStatuses: [{ name: "runner", state: { running: {} } }] };
  check([pod("p0", 0, oom, "2026-11-25T10:00:00Z"), pod("p1", 0, running, "2026-11-25T10:01:00Z")], "True/PodsHealthy");
  const stopped = {
    phase: "Failed",
    containerStatuses: [{ name: "runner", state: { terminated: { exitCode: 143 } } }],
  };
  check([pod("p0", 0, stopped)], "True/PodsHealthy", /No runner pod reports a problem/);
  const evicted = {
    phase: "Failed",
    reason: "Evicted",
    message: 'Usage of EmptyDir volume "tmp" exceeds the limit "2Gi".',
    conditions: [{ type: "DisruptionTarget", status: "True", reason: "TerminationByKubelet" }],
  };
  check([pod("p0", 0, evicted)], "False/Evicted", /\(shard 0\): Usage of EmptyDir volume "tmp" exceeds the limit/);
  check([pod("p0", 0, { phase: "Failed", reason: "not a reason!", message: "odd" })], "False/PodProblem", /: odd$/);
  const preempted = pod("p0", 0, { phase: "Running", conditions: [{ type: "DisruptionTarget", status: "True" }] });
  preempted.metadata.deletionTimestamp = "2026-11-25T10:05:00Z";
  check(
    [preempted, pod("p1", 1, pulling("ErrImageNeverPull", "never pull"))],
    "False/ErrImageNeverPull",
    /\(shard 1\)/,
  );
});

test("a Job failed by its podFailurePolicy (exit 2): CrawlComplete=False/RunnerConfigError with the pod's message", () => {
  const job = runnerJob("failed");
  job.status!.conditions = [
    {
      type: "Failed",
      status: "True",
      reason: "PodFailurePolicy",
      message:
        "Container runner for pod crawl/books-runner-0-x failed with exit code 2 matching FailJob rule at index 0",
    },
  ];
  const log = '{"level":50,"err":"spec.feeds is empty","msg":"Runner configuration is invalid"}';
  const pods = [
    pod("books-runner-0-x", 0, {
      phase: "Failed",
      containerStatuses: [{ name: "runner", state: { terminated: { exitCode: 2, reason: "Error", message: log } } }],
    }),
  ];
  const s = computeStatus({ job: crawlJob(), now, validation: undefined, runnerJob: job, feeds: [], pods });
  assert.equal(s.phase, "Failed");
  assert.equal(cond(s, "CrawlComplete"), "False/RunnerConfigError");
  assert.match(
    getCondition(s.conditions, "CrawlComplete")!.message,
    /books-runner-0-x \(shard 0\): exit 2, a configuration error: Runner configuration is invalid: spec\.feeds is empty/,
  );
  assert.equal(cond(s, "Succeeded"), "False/RunnerFailed");
  assert.match(getCondition(s.conditions, "Succeeded")!.message, /^The runner failed: RunnerConfigError: /);
  // Without the pod (deleted), the Job's own message still says why.
  const bare = computeStatus({ job: crawlJob(), now, validation: undefined, runnerJob: job, feeds: [] });
  assert.equal(cond(bare, "CrawlComplete"), "False/RunnerConfigError");
  assert.equal(cond(bare, "RunnerHealthy"), "False/RunnerConfigError");
  assert.match(getCondition(bare.conditions, "CrawlComplete")!.message, /exit code 2 matching FailJob/);
});
