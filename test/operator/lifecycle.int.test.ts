// A CrawlJob's life on the real API server with the operator in-process and
// real webhook delivery to a signature-verifying receiver. There is no
// kubelet and no Job controller: the test plays them (test/operator/kubelet.ts)
// from the Job read back from the API, with a token minted for the per-job
// ServiceAccount. Here the "pod" runs only the runner's reporting part
// (CrawlFeeds + status patches with that token); the end-to-end test with the
// real `feedcrawl run` is test/operator/runner.int.test.ts.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import type { CrawlJobSpec } from "../../crds/schema/crawljob.ts";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { KubeApiError } from "../../kube/errors.ts";
import {
  CONFIGMAPS,
  CRAWLFEEDS,
  CRAWLJOBS,
  EVENTS,
  JOBS,
  ROLEBINDINGS,
  ROLES,
  SERVICEACCOUNTS,
} from "../../kube/resources.ts";
import { specConfigMap, specConfigMapName } from "../../operator/crawljob/children.ts";
import { SPEC_KEY } from "../../operator/crawljob/runner-pod.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually, kubectl } from "../platform/fixtures.ts";
import {
  condition,
  createCrawlJob,
  createSecret,
  installCrds,
  type RunningOperator,
  readCrawlJob,
  startOperator,
  tempDir,
  untilCondition,
} from "./harness.ts";
import { type PodExecutor, type PreparedPod, playJob, reportingExecutor, tokenKubeConfig } from "./kubelet.ts";
import { type Receiver, startReceiver } from "./receiver.ts";

// biome-ignore lint/suspicious/noExplicitAny: manifests read back from the API
type Any = Record<string, any>;

describe("CrawlJob lifecycle (kubelet and Job controller played by the test)", () => {
  const kc = adminKubeConfig();
  const client = new KubeClient(kc);
  const workDir = tempDir("op-life");
  let ns: Disposable;
  let operator: RunningOperator;
  let receiver: Receiver;
  let pods: PreparedPod[] = [];

  const spec = (overrides: Partial<CrawlJobSpec> = {}): CrawlJobSpec => ({
    spider: {
      name: "books",
      startUrls: ["https://books.example/"],
      extract: [{ name: "product", itemSelector: "article", fields: { title: { selector: "h1", text: true } } }],
    },
    feeds: {
      "s3://crawl-data/%(name)s/%(shard)d/part-%(batch_id)05d.jsonl": { format: "jsonlines", batchItemCount: 10 },
    },
    ingest: {
      webhook: {
        url: receiver.url,
        signingSecretRef: { name: "ingest-webhook" },
        allowPrivateNetworks: true,
        maxAttempts: 3,
      },
    },
    ...overrides,
  });

  /** Waits for the CrawlJob's runner Job, then plays it with `execute`. */
  async function playRunner(job: string, execute: PodExecutor) {
    await eventually("the runner Job", () => client.getOrUndefined(JOBS, ns.name, `${job}-runner`));
    return playJob({ admin: kc, namespace: ns.name, jobName: `${job}-runner`, workDir, execute });
  }

  before(async () => {
    await installCrds();
    ns = await createNamespace("op-life");
    receiver = await startReceiver();
    await createSecret(client, ns.name, "ingest-webhook", { secret: receiver.secret });
    operator = await startOperator(kc, {
      namespaces: [ns.name],
      workDir,
      metricsAddr: "127.0.0.1:0",
      healthAddr: "127.0.0.1:0",
    });
  });

  after(async () => {
    await operator?.stop();
    await receiver?.close();
    await ns?.cleanup();
    await client.close();
  });

  test("Pending → Running → Succeeded, every feed delivered and signed, status summed", async () => {
    const phases: string[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const job = await client.getOrUndefined<Any & KubeObject>(CRAWLJOBS, ns.name, "books");
        const phase = job?.status?.phase;
        if (phase && phases.at(-1) !== phase) phases.push(phase);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    await createCrawlJob(client, ns.name, "books", spec({ runner: { parallelism: 2 } }));
    const job = await eventually("the runner Job", () =>
      client.getOrUndefined<Any & KubeObject>(JOBS, ns.name, "books-runner"),
    );
    await eventually("phase Pending", () => phases.includes("Pending"));

    // The children, as the contract says.
    const cm = await client.get<Any & KubeObject>(CONFIGMAPS, ns.name, "books-spec");
    const snapshot = JSON.parse(cm.data["crawljob.json"]);
    const crawlJob = await readCrawlJob(client, ns.name, "books");
    assert.deepEqual(snapshot.metadata, {
      name: "books",
      namespace: ns.name,
      uid: crawlJob.metadata.uid,
      generation: 1,
    });
    assert.equal(snapshot.spec.runner.parallelism, 2);
    for (const rt of [SERVICEACCOUNTS, ROLES, ROLEBINDINGS]) {
      const obj = await client.get(rt, ns.name, "books-runner");
      assert.equal(obj.metadata.ownerReferences?.[0]?.uid, crawlJob.metadata.uid, rt.kind);
      assert.equal(obj.metadata.ownerReferences?.[0]?.controller, true);
    }
    assert.equal(job.spec.completionMode, "Indexed");
    assert.equal(job.spec.completions, 2);

    const played = await playJob({
      admin: kc,
      namespace: ns.name,
      jobName: "books-runner",
      workDir,
      execute: async (pod) => {
        // The pod sees exactly the template's env and the mounted snapshot.
        assert.equal(pod.env.FEEDCRAWL_SHARD_COUNT, "2");
        assert.equal(readFileSync(pod.env.FEEDCRAWL_SPEC!, "utf8"), cm.data["crawljob.json"]);
        assert.deepEqual(pod.command, ["feedcrawl"]);
        assert.deepEqual(pod.args, ["run"]);
        assert.equal(pod.serviceAccountName, "books-runner");
        await eventually("phase Running", () => phases.includes("Running"));
        return reportingExecutor({ feedsPerShard: 2 })(pod);
      },
    });
    pods = played.pods;
    assert.equal(played.succeeded, 2);

    const done = await untilCondition(client, ns.name, "books", "Succeeded", "True", 60_000);
    await eventually("the phase poller to see Succeeded", () => phases.includes("Succeeded"));
    polling = false;
    await poller;

    assert.deepEqual(
      phases.filter((p) => p !== "Ingesting"),
      ["Pending", "Running", "Succeeded"],
    );
    assert.equal(done.status?.feedSummary?.display, "4/4");
    assert.deepEqual(
      {
        closed: done.status?.feedSummary?.closed,
        delivered: done.status?.feedSummary?.delivered,
        items: done.status?.feedSummary?.items,
      },
      { closed: 4, delivered: 4, items: 40 },
    );
    assert.equal(done.status?.stats?.pages, 22, "shard stats summed");
    assert.equal(done.status?.stats?.items, 40);
    assert.equal(done.status?.observedGeneration, 1);
    assert.ok(done.status?.startTime && done.status?.completionTime);
    for (const type of ["Validated", "RunnerReady", "CrawlComplete", "FeedsDelivered", "Succeeded"]) {
      assert.equal(condition(done, type)?.status, "True", type);
    }

    // Webhooks: every signature verified, one distinct webhook-id per CrawlFeed.
    const feeds = await client.list(CRAWLFEEDS, { namespace: ns.name, labelSelector: "feedcrawl.io/crawljob=books" });
    assert.equal(feeds.items.length, 4);
    assert.equal(receiver.badSignatures, 0);
    assert.equal(receiver.distinctIds().size, feeds.items.length);
    for (const feed of feeds.items as Any[]) assert.equal(feed.status.delivery.state, "Delivered");

    // The signing secret was used for every POST and is nowhere in logs, status or Events.
    const secretBytes = receiver.secret.slice("whsec_".length);
    for (const text of [readFileSync(operator.logPath, "utf8"), JSON.stringify(done), JSON.stringify(feeds)]) {
      assert.ok(!text.includes(secretBytes));
    }

    const events = await client.list(EVENTS, { namespace: ns.name, fieldSelector: "involvedObject.name=books" });
    const reasons = events.items.map((e) => (e as Any).reason);
    for (const reason of ["RunnerCreated", "CrawlCompleted", "FeedsDelivered", "CrawlSucceeded"]) {
      assert.ok(reasons.includes(reason), `${reason} in ${reasons}`);
    }
  });

  test("kubectl tells the story: get crawl, get cfeed -l, describe crawl, wait --for=condition=Succeeded", async () => {
    const waited = await kubectl(["wait", "-n", ns.name, "--for=condition=Succeeded", "crawl/books", "--timeout=5s"]);
    assert.match(waited, /crawljob\.feedcrawl\.io\/books condition met/);
    const get = await kubectl(["get", "crawl", "-n", ns.name]);
    assert.match(get, /NAME\s+PHASE\s+PAGES\s+ITEMS\s+FEEDS\s+AGE/);
    assert.match(get, /books\s+Succeeded\s+22\s+40\s+4\/4\s+/);
    const feeds = await kubectl(["get", "cfeed", "-n", ns.name, "-l", "feedcrawl.io/crawljob=books"]);
    assert.match(feeds, /NAME\s+JOB\s+ITEMS\s+STATE\s+AGE/);
    assert.equal(feeds.match(/books\s+10\s+Delivered/g)?.length, 4);
    const describe = await kubectl(["describe", "crawl", "-n", ns.name, "books"]);
    assert.match(describe, /Phase:\s+Succeeded/);
    assert.match(describe, /CrawlSucceeded/);
    const category = await kubectl(["get", "feedcrawl", "-n", ns.name]);
    assert.match(category, /crawljob\.feedcrawl\.io\/books/);
    if (process.env.FEEDCRAWL_DOC_OUTPUT) {
      const { writeFileSync } = await import("node:fs");
      writeFileSync(process.env.FEEDCRAWL_DOC_OUTPUT, [waited, get, feeds, describe].join("\n---\n"));
    }
  });

  test("/healthz, /readyz and /metrics: reconciles per controller, queue depth, webhook deliveries", async () => {
    const health = `http://127.0.0.1:${operator.manager.healthPort}`;
    assert.equal((await fetch(`${health}/healthz`)).status, 200);
    assert.equal((await fetch(`${health}/readyz`)).status, 200);
    const metrics = await (await fetch(`http://127.0.0.1:${operator.manager.metricsPort}/metrics`)).text();
    assert.match(metrics, /feedcrawl_reconcile_total\{controller="crawljob",result="success"\} [1-9]/);
    assert.match(metrics, /feedcrawl_reconcile_time_seconds_count\{controller="crawlfeed"\} [1-9]/);
    assert.match(metrics, /feedcrawl_workqueue_depth\{name="crawljob"\} \d/);
    assert.match(metrics, /feedcrawl_webhook_deliveries_total\{outcome="delivered"\} [4-9]/);
    assert.match(metrics, /feedcrawl_delivery_latency_seconds_count [4-9]/);
    assert.match(metrics, /feedcrawl_leader_election_master_status\{name="feedcrawl-operator"\} 1/);

    // Per-CrawlJob series: the values of the status the operator aggregated for crawl "books" (the first test's).
    const status = (await readCrawlJob(client, ns.name, "books")).status!;
    const series = (name: string) => {
      const line = metrics
        .split("\n")
        .find(
          (l) => l.startsWith(`${name}{`) && l.includes(`namespace="${ns.name}"`) && l.includes('crawljob="books"'),
        );
      assert.ok(line, `${name} for crawl books in:\n${metrics}`);
      return Number(line.slice(line.lastIndexOf(" ") + 1));
    };
    assert.ok(status.stats!.items! > 0 && status.feedSummary!.delivered! > 0);
    assert.equal(series("feedcrawl_crawljob_items_total"), status.stats!.items);
    assert.equal(series("feedcrawl_crawljob_pages_total"), status.stats!.pages);
    assert.equal(series("feedcrawl_crawljob_feeds_stored_total"), status.feedSummary!.closed);
    assert.equal(series("feedcrawl_crawljob_feeds_delivered_total"), status.feedSummary!.delivered);
    assert.equal(series("feedcrawl_crawljob_feeds_failed_total"), status.feedSummary!.failed ?? 0);
    assert.equal(series("feedcrawl_crawljob_succeeded"), 1);
  });

  test("the runner's token may read its own CrawlJob and is forbidden on another one", async () => {
    assert.ok(pods.length > 0);
    await createCrawlJob(client, ns.name, "other", spec({ suspend: true }));
    const podClient = new KubeClient(tokenKubeConfig(kc, pods[0]!.token));
    try {
      const own = await podClient.get(CRAWLJOBS, ns.name, "books");
      assert.equal(own.metadata.name, "books");
      const forbidden = async (what: string, call: () => Promise<unknown>) => {
        const err = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof KubeApiError && err.code === 403, `${what}: ${err}`);
      };
      await forbidden("get other", () => podClient.get(CRAWLJOBS, ns.name, "other"));
      await forbidden("patch other status", () =>
        podClient.patch(
          CRAWLJOBS,
          ns.name,
          "other",
          { status: { shardStats: { "0": { pages: 1 } } } },
          { subresource: "status" },
        ),
      );
      await forbidden("update own spec", () =>
        podClient.patch(CRAWLJOBS, ns.name, "books", { spec: { suspend: true } }),
      );
      await forbidden("list CrawlJobs", () => podClient.list(CRAWLJOBS, { namespace: ns.name }));
      await forbidden("delete a CrawlFeed", async () => {
        const feeds = await podClient.list(CRAWLFEEDS, { namespace: ns.name });
        await podClient.delete(CRAWLFEEDS, ns.name, feeds.items[0]!.metadata.name!);
      });
      await forbidden("read Secrets", () =>
        podClient.list(
          { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true },
          { namespace: ns.name },
        ),
      );
    } finally {
      await podClient.close();
    }
  });

  test("editing a running job's spec does not change the running crawl; the generation is observed", async () => {
    await createCrawlJob(client, ns.name, "edit", spec());
    await eventually("the runner Job", () => client.getOrUndefined(JOBS, ns.name, "edit-runner"));
    await client.patch(CRAWLJOBS, ns.name, "edit", { spec: { spider: { startUrls: ["https://elsewhere.example/"] } } });
    const observed = await eventually("observedGeneration 2", async () => {
      const j = await readCrawlJob(client, ns.name, "edit");
      return j.status?.observedGeneration === 2 ? j : undefined;
    });
    assert.equal(observed.status?.runner?.generation, 1);
    const cm = await client.get<Any & KubeObject>(CONFIGMAPS, ns.name, "edit-spec");
    const snapshot = JSON.parse(cm.data["crawljob.json"]);
    assert.equal(snapshot.metadata.generation, 1);
    assert.deepEqual(snapshot.spec.spider.startUrls, ["https://books.example/"]);
  });

  test("suspend: no runner while suspended; resuming starts it; suspending again suspends the Job", async () => {
    await createCrawlJob(client, ns.name, "pause", spec({ suspend: true }));
    const pending = await eventually("RunnerReady=False/Suspended", async () => {
      const j = await readCrawlJob(client, ns.name, "pause");
      return condition(j, "RunnerReady")?.reason === "Suspended" ? j : undefined;
    });
    assert.equal(pending.status?.phase, "Pending");
    assert.equal(await client.getOrUndefined(JOBS, ns.name, "pause-runner"), undefined);
    await client.patch(CRAWLJOBS, ns.name, "pause", { spec: { suspend: false } });
    const runner = await eventually("the runner Job", () =>
      client.getOrUndefined<Any & KubeObject>(JOBS, ns.name, "pause-runner"),
    );
    assert.equal(runner.spec.suspend, false);
    await client.patch(CRAWLJOBS, ns.name, "pause", { spec: { suspend: true } });
    await eventually(
      "Job suspended",
      async () => (await client.get<Any & KubeObject>(JOBS, ns.name, "pause-runner")).spec.suspend === true,
    );
  });

  test("a stale spec snapshot of a job with no runner yet is rewritten before the runner starts", async () => {
    const job = await createCrawlJob(client, ns.name, "stale", spec({ suspend: true }));
    await eventually("RunnerReady=False/Suspended", async () => {
      const j = await readCrawlJob(client, ns.name, "stale");
      return condition(j, "RunnerReady")?.reason === "Suspended";
    });
    // Left by an earlier pass whose Job create failed: the operator's, owned by this job, another generation's spec.
    await client.create(CONFIGMAPS, {
      ...specConfigMap(job),
      data: { [SPEC_KEY]: '{"spec":"of another generation"}' },
    });
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // in the operator's (digest-only) cache
    await client.patch(CRAWLJOBS, ns.name, "stale", { spec: { suspend: false } });
    await eventually("the runner Job", () => client.getOrUndefined(JOBS, ns.name, "stale-runner"));
    const cm = await client.get<Any & KubeObject>(CONFIGMAPS, ns.name, specConfigMapName("stale"));
    const running = await readCrawlJob(client, ns.name, "stale");
    assert.deepEqual(cm.data, specConfigMap(running).data);
  });

  test("mode onCompletion: one crawl.completed event once the runner finished, then Succeeded", async () => {
    const onCompletion = spec();
    onCompletion.ingest!.webhook!.mode = "onCompletion";
    const before = receiver.received.length;
    await createCrawlJob(client, ns.name, "whole", onCompletion);
    await playRunner("whole", reportingExecutor({ feedsPerShard: 3 }));
    const done = await untilCondition(client, ns.name, "whole", "Succeeded", "True", 30_000);
    assert.equal(done.status?.completionDelivery?.state, "Delivered");
    assert.equal(condition(done, "FeedsDelivered")?.reason, "Delivered");
    const hooks = receiver.received.slice(before);
    assert.equal(new Set(hooks.map((h) => h.id)).size, 1, "one event for the whole crawl");
    assert.equal(hooks[0]?.body.type, "crawl.completed");
  });

  test("a runner that exhausts its backoffLimit fails the CrawlJob with the Job's reason", async () => {
    await createCrawlJob(client, ns.name, "failing", spec({ runner: { backoffLimit: 1 } }));
    const played = await playRunner("failing", async () => 1);
    assert.equal(played.failed, 2);
    const failed = await untilCondition(client, ns.name, "failing", "Succeeded", "False");
    assert.equal(failed.status?.phase, "Failed");
    assert.equal(condition(failed, "CrawlComplete")?.reason, "BackoffLimitExceeded");
    assert.equal(condition(failed, "Succeeded")?.reason, "RunnerFailed");
  });

  test("ttlSecondsAfterFinished deletes the finished CrawlJob", async () => {
    const noWebhook = spec({ ttlSecondsAfterFinished: 1 });
    delete noWebhook.ingest;
    await createCrawlJob(client, ns.name, "short", noWebhook);
    await playRunner("short", reportingExecutor({ feedsPerShard: 1 }));
    await eventually(
      "the CrawlJob deleted",
      async () => (await client.getOrUndefined(CRAWLJOBS, ns.name, "short")) === undefined,
      30_000,
    );
  });

  test("a runner Job of that name owned by someone else: one Warning Event NotOwned, not retried", async () => {
    await client.create(JOBS, {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "taken-runner", namespace: ns.name },
      spec: {
        suspend: true,
        template: { spec: { restartPolicy: "Never", containers: [{ name: "c", image: "localhost/nope:1" }] } },
      },
    });
    const noWebhook = spec();
    delete noWebhook.ingest;
    await createCrawlJob(client, ns.name, "taken", noWebhook);
    const notOwned = async () =>
      (await client.list(EVENTS, { namespace: ns.name, fieldSelector: "involvedObject.name=taken" })).items.filter(
        (e) => (e as Any).reason === "NotOwned",
      ) as Any[];
    const event = await eventually("a NotOwned Event", async () => (await notOwned())[0], 30_000);
    assert.match(event.message, /Job .*\/taken-runner exists and is not owned by CrawlJob taken/);
    // Each watch event of the job reconciles it again (its add, the operator's own writes): a few. A
    // retried error would also come back on the queue's backoff (5 ms, doubling): ~10 in 3 s.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const count = (await notOwned()).reduce((sum, e) => sum + (e.count ?? 1), 0);
    assert.ok(count <= 3, `${count} NotOwned events in 3 s`);
  });
});
