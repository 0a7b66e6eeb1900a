// The runner Job cache's transform (issue 13): the pod template, most of a
// Job's size, is dropped; metadata, the spec fields the reconcile and status
// read, and the whole status stay as the API server sent them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runnerJob } from "../../operator/crawljob/children.ts";
import { type BatchJob, jobCacheTransform } from "../../operator/crawljob/status.ts";
import { crawlJob, crawlJobSpec } from "./fixtures.ts";

test("the runner Job cache keeps metadata, suspend/completions/parallelism/backoffLimit and status", () => {
  const job = crawlJob(crawlJobSpec({ runner: { parallelism: 3 } }));
  const status = {
    active: 2,
    ready: 1,
    succeeded: 1,
    startTime: "2026-12-01T18:00:00Z",
    conditions: [{ type: "Suspended", status: "False" }],
  };
  const desired = runnerJob(job, { defaultImage: "feedcrawl:test" }) as BatchJob;
  const listed: BatchJob = {
    ...desired,
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { ...desired.metadata, uid: "u1", resourceVersion: "42", annotations: { a: "b" } },
    spec: { ...desired.spec, suspend: true },
    status,
  };
  const cached = jobCacheTransform(listed);
  assert.deepEqual(cached.metadata, listed.metadata);
  assert.deepEqual(cached.status, status);
  assert.deepEqual(cached.spec, { suspend: true, completions: 3, parallelism: 3, backoffLimit: 3 });
  assert.equal(JSON.stringify(cached).includes("template"), false, "no pod template in the cache");
  assert.ok(JSON.stringify(cached).length * 2 < JSON.stringify(listed).length, "the cached Job is under half its size");
  assert.deepEqual(jobCacheTransform({ metadata: { name: "bare" } }), {
    apiVersion: undefined,
    kind: undefined,
    metadata: { name: "bare" },
  });
});
