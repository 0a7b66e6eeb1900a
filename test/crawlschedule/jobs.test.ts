// A schedule's CrawlJobs as pure functions: the run built from the template,
// the runs sorted into active/succeeded/failed, and what the history limits prune.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { REPLACED_BY_ANNOTATION, SCHEDULED_TIME_ANNOTATION } from "../../crds/schema/names.ts";
import {
  buildCrawlJob,
  classify,
  type Job,
  runNowJobName,
  type Schedule,
  scheduledJobName,
  toPrune,
} from "../../operator/crawlschedule/jobs.ts";
import { crawlJobSpec } from "../operator/fixtures.ts";

const schedule: Schedule = {
  apiVersion: "feedcrawl.io/v1alpha1",
  kind: "CrawlSchedule",
  metadata: { name: "nightly", namespace: "crawl", uid: "sched-uid" },
  spec: {
    schedule: "@daily",
    crawlJobTemplate: { metadata: { labels: { team: "books" }, annotations: { note: "x" } }, spec: crawlJobSpec() },
  },
};

function run(n: number, as?: "True" | "False", extra: Partial<Job["metadata"]> = {}, closed = 0, settled = 0): Job {
  const job = buildCrawlJob(schedule, `nightly-${n}`, new Date(Date.UTC(2026, 5, n)));
  job.metadata = { ...job.metadata, ...extra, annotations: { ...job.metadata.annotations, ...extra.annotations } };
  job.status = {
    feedSummary: { closed, delivered: settled, failed: 0, items: 0, bytes: 0 },
    ...(as
      ? {
          completionTime: new Date(Date.UTC(2026, 5, n, 1)).toISOString(),
          conditions: [
            { type: "Succeeded", status: as, reason: "R", message: "", lastTransitionTime: "2026-06-01T00:00:00Z" },
          ],
        }
      : {}),
  };
  return job;
}

describe("a CrawlSchedule's CrawlJobs", () => {
  it("a run is the template, labelled with its schedule, annotated with its time, controlled by the schedule", () => {
    const job = buildCrawlJob(
      schedule,
      scheduledJobName("nightly", new Date("2026-06-01T03:00:00Z")),
      new Date("2026-06-01T03:00:00Z"),
    );
    assert.equal(job.metadata.name, `nightly-${Date.parse("2026-06-01T03:00:00Z") / 60_000}`);
    assert.deepEqual(job.metadata.labels, { team: "books", "feedcrawl.io/crawlschedule": "nightly" });
    assert.equal(job.metadata.annotations?.[SCHEDULED_TIME_ANNOTATION], "2026-06-01T03:00:00Z");
    assert.equal(job.metadata.annotations?.note, "x");
    assert.deepEqual(job.metadata.ownerReferences, [
      {
        apiVersion: "feedcrawl.io/v1alpha1",
        kind: "CrawlSchedule",
        name: "nightly",
        uid: "sched-uid",
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    assert.deepEqual(job.spec, crawlJobSpec());
    assert.notEqual(job.spec, schedule.spec.crawlJobTemplate.spec, "a copy, not the template itself");
    assert.ok(job.metadata.name!.length <= 56);
    assert.match(runNowJobName("x".repeat(42), "2026-06-01"), /^x{42}-now-[0-9a-f]{8}$/);
    assert.ok(runNowJobName("x".repeat(42), "a").length <= 56);
  });

  it("replaced runs are not active, and are pruned only once their feeds are settled", () => {
    const replaced = (n: number, closed: number, settled: number) =>
      run(n, undefined, { annotations: { [REPLACED_BY_ANNOTATION]: "nightly-9" } }, closed, settled);
    const jobs = [run(1, "True"), run(2, "True"), run(3, "False"), replaced(4, 5, 3), replaced(5, 2, 2), run(6)];
    const children = classify(jobs);
    assert.deepEqual(
      children.active.map((j) => j.metadata.name),
      ["nightly-6"],
    );
    assert.deepEqual(
      children.succeeded.map((j) => j.metadata.name),
      ["nightly-1", "nightly-2"],
    );
    assert.deepEqual(
      children.failed.map((j) => j.metadata.name),
      ["nightly-3", "nightly-4", "nightly-5"],
    );
    // Keep 1 succeeded (the newest) and 0 failed; nightly-4 still has 2 feed files in delivery.
    const pruned = toPrune(children, { succeeded: 1, failed: 0 }).map((j) => j.metadata.name);
    assert.deepEqual(pruned.sort(), ["nightly-1", "nightly-3", "nightly-5"]);
  });
});
