// spec.stop in the CrawlJob's status rules: Stopping while the suspended
// runner's pods still run, Ingesting once they all exited, Succeeded/Stopped
// once every stored feed is delivered; stopped before a runner started:
// Succeeded/Stopped at once, with a completionTime.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import type { RunnerPod } from "../../operator/crawljob/pods.ts";
import { type BatchJob, computeStatus, stopRequested } from "../../operator/crawljob/status.ts";
import { getCondition } from "../../operator/runtime/conditions.ts";
import { crawlFeed, crawlJob, crawlJobSpec } from "./fixtures.ts";

const now = new Date("2026-11-25T10:10:00Z");

/** The runner Job after spec.suspend became true: `controllerActed` once the Job controller set Suspended. */
function suspendedJob(opts: { controllerActed: boolean; active?: number; terminating?: number }): BatchJob {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: "books-runner", namespace: "crawl", uid: "job-uid" },
    spec: { completions: 2, parallelism: 2, suspend: true },
    status: {
      active: opts.active ?? 0,
      terminating: opts.terminating ?? 0,
      succeeded: 0,
      failed: 0,
      conditions: opts.controllerActed ? [{ type: "Suspended", status: "True", reason: "JobSuspended" }] : [],
    },
  };
}

const pod = (name: string, phase: string): RunnerPod => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, creationTimestamp: "2026-11-25T10:00:00Z", labels: {} },
  status: { phase },
});

const cond = (s: ReturnType<typeof computeStatus>, type: string) => {
  const c = getCondition(s.conditions, type)!;
  return `${c.status}/${c.reason}`;
};

const stopped = (): CrawlJob => crawlJob(crawlJobSpec({ stop: true }));

/** The status of `job` once its suspended runner's pods all exited, with two feeds in these delivery states. */
const afterExit = (job: CrawlJob, states: ["Delivered" | "Sending" | "Failed", "Delivered" | "Sending" | "Failed"]) =>
  computeStatus({
    job,
    now,
    validation: undefined,
    runnerJob: suspendedJob({ controllerActed: true }),
    pods: [pod("p0", "Failed"), pod("p1", "Succeeded")],
    feeds: states.map((state, i) => crawlFeed(job, i + 1, state)),
  });

test("stop before a runner started: Succeeded/Stopped with a completionTime, nothing to deliver", () => {
  const s = computeStatus({ job: stopped(), now, validation: undefined, runnerJob: undefined, feeds: [] });
  assert.equal(s.phase, "Succeeded");
  assert.equal(cond(s, "Succeeded"), "True/Stopped");
  assert.equal(cond(s, "CrawlComplete"), "True/Stopped");
  assert.equal(cond(s, "RunnerReady"), "False/Stopped");
  assert.equal(cond(s, "FeedsDelivered"), "True/NoFeeds");
  assert.equal(s.completionTime, "2026-11-25T10:10:00Z");
});

test("an invalid spec wins over stop: Failed, as without it", () => {
  const validation = { reason: "SecretNotFound" as const, errors: [], message: "Secret crawl/x not found" };
  const s = computeStatus({ job: stopped(), now, validation, runnerJob: undefined, feeds: [] });
  assert.equal(s.phase, "Failed");
  assert.equal(cond(s, "Succeeded"), "False/SecretNotFound");
});

test("stopping: Running/Stopping until the Job controller suspended the Job and every pod exited", () => {
  const job = stopped();
  const cases: [string, BatchJob, RunnerPod[]][] = [
    ["the Job controller has not acted", suspendedJob({ controllerActed: false, active: 2 }), []],
    ["pods still active", suspendedJob({ controllerActed: true, active: 1 }), []],
    ["pods terminating", suspendedJob({ controllerActed: true, terminating: 2 }), []],
    ["a pod still running in the cache", suspendedJob({ controllerActed: true }), [pod("p0", "Running")]],
  ];
  for (const [what, runnerJob, pods] of cases) {
    const s = computeStatus({ job, now, validation: undefined, runnerJob, feeds: [], pods });
    assert.equal(s.phase, "Running", what);
    assert.equal(cond(s, "Succeeded"), "Unknown/Stopping", what);
    assert.equal(cond(s, "CrawlComplete"), "Unknown/Stopping", what);
    assert.equal(cond(s, "RunnerReady"), "False/Stopping", what);
    assert.equal(cond(s, "FeedsDelivered"), "Unknown/Delivering", what);
    assert.equal(s.completionTime, undefined, what);
  }
});

test("stopped: Ingesting while a stored feed is undelivered, then Succeeded/Stopped", () => {
  const ingesting = afterExit(stopped(), ["Delivered", "Sending"]);
  assert.equal(ingesting.phase, "Ingesting");
  assert.equal(cond(ingesting, "CrawlComplete"), "True/Stopped");
  assert.equal(cond(ingesting, "FeedsDelivered"), "Unknown/Delivering");
  assert.equal(ingesting.completionTime, undefined);

  const done = afterExit(stopped(), ["Delivered", "Delivered"]);
  assert.equal(done.phase, "Succeeded");
  assert.equal(cond(done, "Succeeded"), "True/Stopped");
  assert.equal(cond(done, "FeedsDelivered"), "True/AllDelivered");
  assert.match(getCondition(done.conditions, "Succeeded")!.message, /stopped \(spec\.stop\) and 2\/2 feeds/);
  assert.ok(done.completionTime);
});

test("stopped with a failed delivery: Failed/DeliveryFailed", () => {
  const s = afterExit(stopped(), ["Delivered", "Failed"]);
  assert.equal(s.phase, "Failed");
  assert.equal(cond(s, "Succeeded"), "False/DeliveryFailed");
});

test("a plain suspend (no stop) stays Pending/Suspended when its pods exited: resumable, not finished", () => {
  const s = afterExit(crawlJob(crawlJobSpec({ suspend: true })), ["Delivered", "Delivered"]);
  assert.equal(s.phase, "Pending");
  assert.equal(cond(s, "Succeeded"), "Unknown/Suspended");
});

test("a stop recorded in the status holds even when spec.stop reads false (an older CRD without the rule)", () => {
  const job = stopped();
  job.status = computeStatus({ job, now, validation: undefined, runnerJob: undefined, feeds: [] });
  job.spec.stop = false;
  assert.equal(stopRequested(job), true);
  const s = computeStatus({ job, now, validation: undefined, runnerJob: undefined, feeds: [] });
  assert.equal(cond(s, "Succeeded"), "True/Stopped");
  assert.equal(stopRequested(crawlJob()), false);
});
