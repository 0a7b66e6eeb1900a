// spec.stop on the real API server with the operator in-process and the real
// `feedcrawl run` against the fixture site. The test plays the kubelet and the
// Job controller (test/operator/kubelet.ts prepares and creates the pods), and
// here also what they do when a Job is suspended: the Job controller sets the
// Suspended condition, counts the pods as terminating and deletes them; the
// kubelet sends SIGTERM, writes the container's exit code, and the pod goes
// once it exited.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { CrawlJobSpec } from "../../crds/schema/crawljob.ts";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { KubeApiError } from "../../kube/errors.ts";
import { CRAWLFEEDS, CRAWLJOBS, EVENTS, JOBS, PODS } from "../../kube/resources.ts";
import { getObject, listKeys } from "../feeds/s3-helpers.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { type Disposable, eventually, s3Client } from "../platform/fixtures.ts";
import {
  type CrawlBed,
  condition,
  crawlBedSpec,
  createCrawlJob,
  readCrawlJob,
  startCrawlBed,
  tempDir,
  untilCondition,
} from "./harness.ts";
import { containerStatus, createJobPod, preparePod, REPO_ROOT, spawnRunner, writePodStatus } from "./kubelet.ts";
import type { Receiver } from "./receiver.ts";

// biome-ignore lint/suspicious/noExplicitAny: manifests read back from the API
type Any = Record<string, any>;

const PRODUCTS = 400;
const rfc3339 = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

/**
 * Runs every shard of the Job with the real runner until the Job is
 * suspended, then stops them as Kubernetes does. Resolves to each shard's exit
 * code once all exited and their pods are gone.
 */
async function playUntilSuspended(
  kc: ReturnType<typeof adminKubeConfig>,
  namespace: string,
  jobName: string,
  workDir: string,
) {
  const client = new KubeClient(kc);
  // Serialised, as the Job controller's writes are, and retried on conflicts.
  let writing: Promise<unknown> = Promise.resolve();
  const writeJobStatus = (mutate: (status: Any) => void) => {
    writing = writing.then(() => writeJobStatusNow(mutate));
    return writing;
  };
  const writeJobStatusNow = async (mutate: (status: Any) => void) => {
    for (let attempt = 0; ; attempt++) {
      const job = await client.get<Any & KubeObject>(JOBS, namespace, jobName);
      const status = structuredClone(job.status ?? {});
      mutate(status);
      try {
        return await client.updateStatus(JOBS, { ...job, status });
      } catch (err) {
        if (attempt > 5) throw err;
      }
    }
  };
  try {
    const job = await client.get<Any & KubeObject>(JOBS, namespace, jobName);
    const shards: number = job.spec.completions ?? 1;
    const image = job.spec.template.spec.containers[0].image as string;
    await writeJobStatus((s) => Object.assign(s, { startTime: rfc3339(), active: shards, ready: shards }));
    let suspended = false;
    const running = await Promise.all(
      Array.from({ length: shards }, async (_, index) => {
        const pod = await preparePod(kc, job, index, workDir);
        // The runner's pid, for the kubelet's SIGTERM: the shell writes it and becomes the runner.
        const pidFile = join(workDir, `${jobName}-${index}.pid`);
        const command = ["/bin/sh", "-c", `echo $$ > "${pidFile}"; exec "$0" "$@"`, process.execPath];
        const exited = spawnRunner({ ...pod, command: [...command, join(REPO_ROOT, "bin/feedcrawl.ts")] });
        let obj = await createJobPod(client, job, index);
        const startedAt = rfc3339();
        obj = await writePodStatus(client, obj, {
          phase: "Running",
          startTime: startedAt,
          containerStatuses: [containerStatus(image, { running: { startedAt } })],
        });
        const shard = { pidFile, log: pod.logPath, code: undefined as number | undefined, done: exited };
        // The kubelet's part once the container exited: its exit code; a pod being deleted then goes.
        shard.done = exited.then(async (code) => {
          shard.code = code;
          const deleting = suspended;
          const terminated = {
            exitCode: code,
            reason: code === 0 ? "Completed" : "Error",
            startedAt,
            finishedAt: rfc3339(),
          };
          await writePodStatus(client, obj, {
            ...obj.status,
            phase: code === 0 ? "Succeeded" : "Failed",
            containerStatuses: [containerStatus(image, { terminated })],
          });
          if (deleting) {
            await client.delete(PODS, namespace, obj.metadata.name!);
            await writeJobStatus((s) => {
              s.terminating -= 1;
            });
          } else if (code === 0) {
            await writeJobStatus((s) =>
              Object.assign(s, { succeeded: (s.succeeded ?? 0) + 1, active: s.active - 1, ready: s.ready - 1 }),
            );
          }
          return code;
        });
        return shard;
      }),
    );
    // The Job controller's part: suspend → Suspended, the running pods terminating; the kubelet sends SIGTERM.
    await eventually(
      "the runner Job suspended",
      async () => (await client.get<Any & KubeObject>(JOBS, namespace, jobName)).spec.suspend === true,
      120_000,
    );
    suspended = true;
    const live = running.filter((r) => r.code === undefined);
    await writeJobStatus((s) =>
      Object.assign(s, {
        active: 0,
        ready: 0,
        terminating: live.length,
        conditions: [
          {
            type: "Suspended",
            status: "True",
            reason: "JobSuspended",
            message: "Job suspended",
            lastTransitionTime: rfc3339(),
          },
        ],
      }),
    );
    for (const r of live) process.kill(Number(readFileSync(r.pidFile, "utf8").trim()), "SIGTERM");
    const codes = await Promise.all(running.map((r) => r.done));
    return { codes, logs: running.map((r) => r.log) };
  } finally {
    await client.close();
  }
}

describe("spec.stop: a graceful, final stop (kubelet and Job controller played by the test)", () => {
  const kc = adminKubeConfig();
  const client = new KubeClient(kc);
  const workDir = tempDir("op-stop");
  let ns: Disposable;
  let bucket: Disposable;
  let receiver: Receiver;

  // Slow enough to be stopped mid-way on any machine.
  const spec = (overrides: Partial<CrawlJobSpec> = {}): CrawlJobSpec => ({
    ...crawlBedSpec(bed!, {
      concurrentRequests: 2,
      concurrentRequestsPerDomain: 2,
      downloadDelayMs: 100,
    }),
    ...overrides,
  });

  let bed: CrawlBed | undefined;
  before(async () => {
    bed = await startCrawlBed(kc, client, "op-stop", PRODUCTS, workDir);
    ({ ns, bucket, receiver } = bed);
  });

  after(async () => {
    await bed?.close();
    await client.close();
  });

  test("a long crawl stopped mid-way ends Succeeded/Stopped, every stored item's feed delivered once", async () => {
    await createCrawlJob(client, ns.name, "long", spec({ runner: { parallelism: 2 } }));
    await eventually("the runner Job", () => client.getOrUndefined(JOBS, ns.name, "long-runner"));
    const playing = playUntilSuspended(kc, ns.name, "long-runner", workDir);
    playing.catch(() => undefined); // awaited below
    // Stop once the crawl is under way: a few feeds stored and reported.
    await eventually(
      "three CrawlFeeds",
      async () =>
        (await client.list(CRAWLFEEDS, { namespace: ns.name, labelSelector: "feedcrawl.io/crawljob=long" })).items
          .length >= 3,
      120_000,
    );
    await client.patch(CRAWLJOBS, ns.name, "long", { spec: { stop: true } });
    const stopping = await eventually("Succeeded=Unknown/Stopping or later", async () => {
      const j = await readCrawlJob(client, ns.name, "long");
      const reason = condition(j, "Succeeded")?.reason;
      return reason === "Stopping" || reason === "Stopped" || reason === "Ingesting" ? j : undefined;
    });
    assert.notEqual(stopping.status?.phase, "Failed");

    const { codes, logs } = await playing;
    // One site: shard 0 crawls it all, shard 1 finds nothing of its own and finished before the stop.
    assert.deepEqual(codes, [143, 0], `shard 0 stopped by SIGTERM after storing everything; logs: ${logs.join(", ")}`);
    assert.match(readFileSync(logs[0]!, "utf8"), /stopped: all it collected is stored and reported/);

    const done = await untilCondition(client, ns.name, "long", "Succeeded", "True", 60_000);
    assert.equal(done.status?.phase, "Succeeded");
    assert.equal(condition(done, "Succeeded")?.reason, "Stopped");
    assert.equal(condition(done, "CrawlComplete")?.reason, "Stopped");
    assert.equal(condition(done, "FeedsDelivered")?.reason, "AllDelivered");
    assert.ok(done.status?.completionTime);

    // Every stored object has its CrawlFeed, delivered exactly once; the items add up; the crawl did not finish.
    const feeds = (await client.list(CRAWLFEEDS, { namespace: ns.name, labelSelector: "feedcrawl.io/crawljob=long" }))
      .items as Any[];
    const keys = (await listKeys(s3Client(), bucket.name, "long/")).filter((k) => k.endsWith(".jsonl"));
    assert.equal(keys.length, feeds.length, "one CrawlFeed per stored object");
    let items = 0;
    for (const key of keys) {
      const feed = feeds.find((f) => f.spec.uri === `s3://${bucket.name}/${key}`);
      assert.ok(feed, `a CrawlFeed for ${key}`);
      assert.equal(feed.status?.delivery?.state, "Delivered");
      const lines = (await getObject(s3Client(), bucket.name, key)).body.toString("utf8").trim().split("\n");
      assert.equal(feed.spec.items, lines.length);
      items += lines.length;
    }
    assert.equal(done.status?.feedSummary?.items, items);
    assert.equal(done.status?.feedSummary?.display, `${feeds.length}/${feeds.length}`);
    assert.ok(items > 0 && items < PRODUCTS, `stopped mid-way: ${items} of ${PRODUCTS} items`);
    const hooks = receiver.received.filter((h) => feeds.some((f) => JSON.stringify(h.body).includes(f.spec.uri)));
    assert.equal(hooks.length, feeds.length, "one webhook per CrawlFeed, none twice");
    assert.equal(new Set(hooks.map((h) => h.id)).size, feeds.length);
    assert.equal(receiver.badSignatures, 0);
    console.log(`# stopped mid-way: ${feeds.length} feeds, ${items} of ${PRODUCTS} items stored and delivered`);

    // Finished for good: the Job stays suspended, no runner pod comes back.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const runner = await client.get<Any & KubeObject>(JOBS, ns.name, "long-runner");
    assert.equal(runner.spec.suspend, true);
    const pods = await client.list(PODS, {
      namespace: ns.name,
      labelSelector: `batch.kubernetes.io/job-name=long-runner`,
    });
    // Only shard 1's pod, which finished before the stop, is left; the stopped one went.
    assert.deepEqual(
      pods.items.map((p) => [
        (p as Any).metadata.annotations?.["batch.kubernetes.io/job-completion-index"],
        (p as Any).status?.phase,
      ]),
      [["1", "Succeeded"]],
    );
    const events = await client.list(EVENTS, { namespace: ns.name, fieldSelector: "involvedObject.name=long" });
    assert.ok(events.items.some((e) => (e as Any).reason === "Stopping"));
  });

  test("stop before the runner started: Succeeded/Stopped, no runner Job ever", async () => {
    await createCrawlJob(client, ns.name, "early", spec({ stop: true }));
    const done = await eventually("CrawlJob early: Succeeded=True", async () => {
      const j = await readCrawlJob(client, ns.name, "early");
      const succeeded = condition(j, "Succeeded");
      if (succeeded?.status === "False") throw new Error(`${succeeded.reason}: ${succeeded.message}`);
      return succeeded?.status === "True" ? j : undefined;
    });
    assert.equal(done.status?.phase, "Succeeded");
    assert.equal(condition(done, "Succeeded")?.reason, "Stopped");
    assert.ok(done.status?.completionTime);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(await client.getOrUndefined(JOBS, ns.name, "early-runner"), undefined);
  });

  test("unsetting spec.stop is refused by the API server; suspend cannot bring a stopped job back", async () => {
    const refused = async (patch: Any) => {
      const err = await client.patch(CRAWLJOBS, ns.name, "early", { spec: patch }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof KubeApiError && err.code === 422, `${JSON.stringify(patch)}: ${err}`);
      assert.match(err.message, /spec\.stop cannot be unset/);
    };
    await refused({ stop: false });
    await refused({ stop: null });
    await client.patch(CRAWLJOBS, ns.name, "early", { spec: { suspend: true } });
    await client.patch(CRAWLJOBS, ns.name, "early", { spec: { suspend: false } });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(await client.getOrUndefined(JOBS, ns.name, "early-runner"), undefined);
    const job = await readCrawlJob(client, ns.name, "early");
    assert.equal(job.spec.stop, true);
    assert.equal(condition(job, "Succeeded")?.reason, "Stopped");
  });
});
