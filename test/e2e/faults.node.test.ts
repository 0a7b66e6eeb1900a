// Real-pod faults, nothing played: on the local cluster's node, with the
// operator installed once by `helm install` (the chart's Deployment pod,
// leader election on), each case applies a CrawlJob in a restricted namespace
// of its own and breaks something the way it breaks on a real cluster:
//
//   1. `kubectl delete pod` of a runner mid-crawl: SIGTERM, the open batch is
//      stored and reported, exit 143 (the podFailurePolicy ignores it), the
//      Job's replacement pod crawls the shard again, the CrawlJob Succeeds;
//   2. the operator pod deleted while the backend holds its first webhook
//      POST and the crawl goes on: the old pod finishes that delivery and
//      lets the Lease go, the Deployment's new pod takes it and delivers the
//      rest; every CrawlFeed is delivered exactly once;
//   3. a runner over its memory limit: OOM-killed, RunnerHealthy=False/OOMKilled,
//      retried within backoffLimit, then Failed;
//   4. a runner that exits 2 (its spec snapshot, edited by hand while the pod
//      waited for a node, has no feeds: admission refuses such a CrawlJob, so
//      this is the one way left): the podFailurePolicy fails the Job at once,
//      one pod, the CrawlJob says RunnerConfigError with the runner's message;
//   5. a runner image that does not exist: RunnerHealthy=False with the pull
//      error and the pod's message.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, before, describe, it, type TestContext } from "node:test";
import type pg from "pg";
import { parse } from "yaml";
import type { IngestBackend } from "../../examples/ingest-backend/server.ts";
import type { Sites } from "../fixtures/sites.ts";
import { tempDir } from "../operator/harness.ts";
import { node, platform } from "../platform/env.ts";
import { type Disposable, eventually } from "../platform/fixtures.ts";
import { bedCleanup, type E2eBed, releaseCleanup, startBed } from "./bed.ts";
import {
  type Any,
  conditionOf,
  crawlManifest,
  crawlSecrets,
  describePods,
  followLogs,
  getJson,
  type InstalledOperator,
  installOperator,
  kubectlFor,
  networkOf,
  type PodRecorder,
  podReport,
  recordPods,
  restrictedNamespace,
  runCleanup,
  runnerPods,
  terminated,
  waitSucceeded,
} from "./cluster.ts";

const RELEASE = "feedcrawl";
const RELEASE_NS = "feedcrawl-faults";
const PRODUCTS = 40;
const BATCH = 10;
const WEBHOOK_SECRET = `whsec_${Buffer.from("feedcrawl-real-pod-faults-secret-012345").toString("base64")}`;
/** How long the backend holds each of the first webhook POSTs in case 2. */
const HOLD_MS = 4_000;
/** The number of faultCase() tests below. */
const CASES = 5;

describe("real-pod faults: runner and operator pods deleted, OOM kill, exit 2, missing image", () => {
  const workDir = tempDir("faults");
  const timings: [string, number][] = [];
  const namespaces: string[] = [];
  let kubeconfig: string;
  let k: ReturnType<typeof kubectlFor>;
  let bed: E2eBed | undefined;
  let sites: Sites;
  let bucket: Disposable;
  let backend: IngestBackend;
  let sql: pg.Client;
  let operator: InstalledOperator | undefined;
  /** The backend holds the next `count` webhook POSTs for HOLD_MS each; `held` counts those it held. */
  const hold = { count: 0, held: 0 };
  let passed = 0;

  before(async () => {
    const started = Date.now();
    kubeconfig = platform().kubeconfig;
    k = kubectlFor(kubeconfig);
    bed = await startBed({
      name: "faults",
      hosts: [node().siteHosts[0]!],
      products: PRODUCTS,
      webhookSecret: WEBHOOK_SECRET,
      workDir,
    });
    ({ sites, bucket, backend, sql } = bed);
    // A backend that takes its time: the next `hold.count` POSTs wait HOLD_MS before it reads them.
    const [handler] = backend.server.listeners("request") as ((req: IncomingMessage, res: ServerResponse) => void)[];
    backend.server.removeAllListeners("request");
    backend.server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      if (req.method === "POST" && hold.count > 0) {
        hold.count -= 1;
        hold.held += 1;
        setTimeout(() => handler!.call(backend.server, req, res), HOLD_MS);
      } else {
        handler!.call(backend.server, req, res);
      }
    });
    operator = await installOperator({
      kubeconfig,
      release: RELEASE,
      namespace: RELEASE_NS,
      webhookPrivateNetworks: [`${node().host}/32`],
      feedBuckets: [bucket.name],
    });
    timings.push(["sites, bucket, backend, helm install", (Date.now() - started) / 1000]);
  });

  after(async () => {
    const cleanup: [string, (() => Promise<unknown>) | undefined][] = [
      [
        "case namespaces",
        async () => {
          for (const ns of namespaces) {
            await k(["delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=60s"]);
          }
        },
      ],
      ...releaseCleanup(k, kubeconfig, RELEASE, RELEASE_NS),
      ...bedCleanup(bed),
    ];
    const errors = await runCleanup(cleanup);
    console.log(`# timings: ${timings.map(([what, s]) => `${what} ${s.toFixed(1)} s`).join("; ")}`);
    if (errors.length > 0 || passed < CASES) process.stderr.write(`Fault-test files (backend log) in ${workDir}\n`);
    else rmSync(workDir, { recursive: true, force: true });
    if (errors.length > 0) throw new Error(`Cleanup failed: ${errors.join("; ")}`);
  });

  interface CaseContext {
    t: TestContext;
    /** The case's restricted namespace, with the Secrets s3-creds and ingest-webhook. */
    ns: string;
    /** Every pod of the namespace, deleted ones too. */
    recorder: PodRecorder;
  }

  /**
   * One case: a restricted namespace with the Secrets, a pod recorder; then
   * the CrawlJob deleted and its pods waited for (on failure: the pods' report).
   */
  const faultCase = (label: string, name: string, job: string, fn: (c: CaseContext) => Promise<void>) =>
    it(name, async (t) => {
      const started = Date.now();
      const ns = `faults-${label}`;
      namespaces.push(ns);
      await restrictedNamespace(k, ns);
      await crawlSecrets(k, ns, platform().s3, WEBHOOK_SECRET);
      const recorder = await recordPods(kubeconfig, ns);
      try {
        await fn({ t, ns, recorder });
        passed += 1;
      } catch (err) {
        const report = await podReport(k, ns).catch((e: Error) => e.message);
        const crawl = await k(["-n", ns, "get", "crawl", job, "-o", "yaml"]).catch((e: Error) => e.message);
        (err as Error).message += `\n--- CrawlJob\n${crawl}\n--- pods\n${report.slice(-6000)}`;
        throw err;
      } finally {
        recorder.stop();
        const crawled = (Date.now() - started) / 1000;
        await k(["-n", ns, "delete", "crawl", job, "--ignore-not-found", "--wait=true", "--timeout=60s"]).catch(
          () => undefined,
        );
        await k([
          "-n",
          ns,
          "wait",
          "--for=delete",
          "pod",
          "-l",
          `batch.kubernetes.io/job-name=${job}-runner`,
          "--timeout=60s",
        ]).catch(() => undefined);
        timings.push([label, crawled], [`${label} cleanup`, (Date.now() - started) / 1000 - crawled]);
        t.diagnostic(
          `${label}: ${crawled.toFixed(1)} s, cleanup ${((Date.now() - started) / 1000 - crawled).toFixed(1)} s`,
        );
      }
    });

  /** A CrawlJob over the fixture site with `batchItemCount` BATCH and the given changes. */
  function crawlJob(name: string, options: { runner: Any; settings?: Any; webhook?: boolean; image?: string }): string {
    const site = sites.sites[0]!.url;
    const base = parse(
      crawlManifest({
        sites: [site, site, site],
        siteNetwork: networkOf(node().host),
        s3Endpoint: platform().s3.endpoint,
        bucket: bucket.name,
        webhookUrl: backend.url,
      }),
    ) as Any;
    base.metadata.name = name;
    base.spec.spider.startUrls = [`${site}/`];
    Object.assign(base.spec.spider.settings, options.settings ?? {});
    base.spec.feeds = {
      [`s3://${bucket.name}/${name}/%(time)s/part-%(batch_id)05d.jsonl.gz`]: {
        format: "jsonlines",
        batchItemCount: BATCH,
        postprocessing: ["gzip"],
      },
    };
    if (options.webhook === false) delete base.spec.ingest;
    base.spec.runner = options.runner;
    return JSON.stringify(base);
  }

  /** The node bridge's MAC address (a diagnostic: pods' ARP caches hold it). */
  const bridgeMac = () => {
    try {
      return execFileSync("ip", ["-br", "link", "show", "feedcrawl0"], { encoding: "utf8" }).trim().split(/\s+/)[2];
    } catch (err) {
      return (err as Error).message;
    }
  };
  const since = (a: string, b: string) => ((Date.parse(b) - Date.parse(a)) / 1000).toFixed(0);
  const readCrawl = (ns: string, name: string) => getJson(k, ["-n", ns, "get", "crawl", name]);
  const feedsOf = async (ns: string, name: string) =>
    (await getJson(k, ["-n", ns, "get", "cfeed", "-l", `feedcrawl.io/crawljob=${name}`])).items as Any[];
  const cond = (job: Any, type: string) => {
    const c = conditionOf(job, type);
    return c ? `${c.status}/${c.reason}` : "absent";
  };
  /** The runner's JSON log lines in a text (a pod log or a termination message). */
  const jsonLines = (text: string) =>
    text
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Any);

  /** What the backend loaded for the CrawlFeeds of one namespace: every file once, nothing else. */
  async function assertDeliveredOnce(ns: string, job: Any, feeds: Any[]): Promise<Any[]> {
    const uid: string = job.metadata.uid;
    const ids = (
      await sql.query<{ webhook_id: string }>(
        "SELECT webhook_id FROM ingested_webhooks WHERE crawljob_namespace = $1",
        [ns],
      )
    ).rows.map((r) => r.webhook_id);
    const expectedIds = feeds.map((f) => `${uid}:${createHash("sha256").update(f.spec.uri).digest("hex")}`);
    assert.deepEqual(ids.sort(), [...expectedIds].sort(), "one webhook-id per CrawlFeed");
    const perFile = (
      await sql.query<{ feed_uri: string; rows: number }>(
        "SELECT i.feed_uri, count(*)::int AS rows FROM items i JOIN ingested_webhooks w USING (webhook_id) " +
          "WHERE w.crawljob_namespace = $1 GROUP BY i.feed_uri",
        [ns],
      )
    ).rows;
    assert.deepEqual(
      Object.fromEntries(perFile.map((r) => [r.feed_uri, r.rows])),
      Object.fromEntries(feeds.map((f) => [f.spec.uri, f.spec.items])),
      "every file's items loaded once",
    );
    return (
      await sql.query<{ item: Any }>(
        "SELECT i.item FROM items i JOIN ingested_webhooks w USING (webhook_id) WHERE w.crawljob_namespace = $1",
        [ns],
      )
    ).rows.map((r) => r.item);
  }

  faultCase(
    "runner-deleted",
    "kubectl delete pod of a runner mid-crawl: SIGTERM, its open batch stored and reported, exit 143, the replacement pod finishes the shard",
    "slow",
    async ({ t, ns, recorder }) => {
      const GRACE = 15;
      // One shard crawling one page at a time, 150 ms apart: ~7 s for the site's 42 pages.
      const manifest = crawlJob("slow", {
        runner: { parallelism: 1, backoffLimit: 0, terminationGracePeriodSeconds: GRACE },
        settings: { downloadDelayMs: 150, randomizeDownloadDelay: false, concurrentRequestsPerDomain: 1 },
      });
      await k(["-n", ns, "apply", "-f", "-"], manifest);
      // Mid-crawl: its first batch is stored and reported, the crawl goes on.
      await eventually("the first CrawlFeed of crawl/slow", async () => (await feedsOf(ns, "slow")).length > 0, 60_000);
      const [victim] = await runnerPods(k, ns, "slow");
      assert.ok(victim && !terminated(victim), `a running runner pod: ${describePods(victim ? [victim] : [])}`);
      // Its whole log: the API forgets a deleted pod (and its log) once it has ended.
      const log = followLogs(kubeconfig, ns, victim.metadata.name);
      try {
        await eventually("kubectl logs -f to stream", () => log.text().includes('"msg"'), 10_000);
        await k(["-n", ns, "delete", "pod", victim.metadata.name, "--wait=false"]);
        await Promise.race([log.done, new Promise((resolve) => setTimeout(resolve, (GRACE + 10) * 1000))]);
      } finally {
        log.stop();
      }
      const ended = await eventually(
        `pod ${victim.metadata.name} to end`,
        () => {
          const pod = recorder.pods.get(victim.metadata.name);
          return pod && terminated(pod);
        },
        (GRACE + 15) * 1000,
      );
      assert.equal(ended.exitCode, 143, `SIGTERM after storing and reporting: ${JSON.stringify(ended)}`);
      const lines = jsonLines(log.text());
      const sigterm = lines.find((l) => l.msg?.startsWith("Received SIGTERM"));
      assert.ok(sigterm, `the runner logged the SIGTERM:\n${log.text().slice(-3000)}`);
      const stopped = lines.find((l) => /stopped: all it collected is stored and reported$/.test(l.msg ?? ""));
      assert.ok(stopped, `the runner's last line says it stored and reported everything:\n${log.text().slice(-3000)}`);
      assert.deepEqual(lines.at(-1), stopped, "its last log line");
      // FallbackToLogsOnError: the termination message is the pod's last log lines (2 KiB of them).
      assert.deepEqual(jsonLines(ended.message ?? "").at(-1), stopped, "the termination message ends with it");
      const stopSeconds = (Date.parse(stopped.time) - Date.parse(sigterm.time)) / 1000;
      t.diagnostic(
        `deleted pod ${victim.metadata.name}: SIGTERM → stored, reported and exited 143 in ${stopSeconds.toFixed(2)} s ` +
          `(grace ${GRACE} s); last lines:\n${lines
            .slice(-3)
            .map((l) => l.msg)
            .join("\n")}`,
      );
      assert.ok(stopSeconds < GRACE, `stopped within the grace period (${stopSeconds} s)`);
      assert.equal(stopped.reason, "shutdown");
      assert.equal(stopped.reported, stopped.feeds);
      assert.ok(stopped.stats.items < PRODUCTS, `stopped mid-crawl (${stopped.stats.items} items)`);

      await waitSucceeded(k, ns, 90, "slow");
      const job = await readCrawl(ns, "slow");
      const feeds = await feedsOf(ns, "slow");
      const pods = await runnerPods(k, ns, "slow");
      const replacement = pods[0]!;
      const crawled = terminated(replacement);
      t.diagnostic(
        `pods now: ${describePods(pods)}; replacement created ${since(ended.finishedAt, replacement.metadata.creationTimestamp)} s ` +
          `after the deleted pod ended, ran ${crawled ? since(crawled.startedAt, crawled.finishedAt) : "?"} s`,
      );
      assert.equal(pods.length, 1, "only the replacement pod is left");
      assert.notEqual(pods[0]!.metadata.name, victim.metadata.name);
      assert.equal(pods[0]!.metadata.annotations["batch.kubernetes.io/job-completion-index"], "0");
      assert.equal(terminated(pods[0]!)?.exitCode, 0);
      const runnerJob = await getJson(k, ["-n", ns, "get", "job", "slow-runner"]);
      assert.equal(runnerJob.status.failed ?? 0, 0, "exit 143 is not counted (podFailurePolicy: Ignore)");
      assert.equal(runnerJob.status.succeeded, 1);

      // The stopped pod's batches are 1..feeds (the replacement numbers on from there): its open batch included.
      const first = feeds.filter((f) => f.spec.batchId <= stopped.feeds);
      assert.equal(first.length, stopped.feeds);
      assert.equal(
        first.reduce((sum, f) => sum + f.spec.items, 0),
        stopped.stats.items,
        "the stopped pod's CrawlFeeds hold every item it had",
      );
      const partial = first.filter((f) => f.spec.items < BATCH).length;
      t.diagnostic(
        `stopped pod: ${stopped.stats.items} items in ${stopped.feeds} CrawlFeeds (${partial} partial: its open batch); ` +
          `replacement: ${feeds.length - first.length} CrawlFeeds`,
      );
      for (const f of feeds) assert.equal(f.status?.delivery?.state, "Delivered", f.metadata.name);
      const items = await assertDeliveredOnce(ns, job, feeds);
      // The replacement restores the shard's crawl state from the bucket (issue 12) and goes on where
      // the stopped pod's committed batches end: every item once over both pods.
      assert.equal(items.length, PRODUCTS, "each fixture item delivered exactly once over both pods");
      const delivered = new Set(items.map((i) => i.url as string));
      const expected = sites.expectedItems().map((i) => i.fields.url as string);
      assert.deepEqual(
        expected.filter((u) => !delivered.has(u)),
        [],
        "every fixture item was delivered",
      );
      assert.equal(delivered.size, expected.length, "and nothing else");
    },
  );

  faultCase(
    "operator-deleted",
    "the operator pod deleted mid-delivery: the Deployment's new pod takes the Lease, every CrawlFeed delivered exactly once",
    "held",
    async ({ t, ns }) => {
      assert.ok(operator);
      const selector = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=operator`;
      const old = ((await getJson(k, ["-n", RELEASE_NS, "get", "pods", "-l", selector])).items as Any[])[0]!;
      const lease = await getJson(k, ["-n", RELEASE_NS, "get", "lease", operator.name]);
      assert.match(lease.spec.holderIdentity, new RegExp(`^${old.metadata.name}_`));
      hold.count = 1;
      hold.held = 0;
      // A crawl that keeps closing batches (one every ~1.5 s) across the handover.
      const manifest = crawlJob("held", {
        runner: { parallelism: 1, backoffLimit: 0 },
        settings: { downloadDelayMs: 150, randomizeDownloadDelay: false, concurrentRequestsPerDomain: 1 },
      });
      await k(["-n", ns, "apply", "-f", "-"], manifest);
      const before = { ...backend.stats };
      // The old pod's whole log: it is gone with the pod.
      const oldLog = followLogs(kubeconfig, RELEASE_NS, old.metadata.name);
      await eventually("the backend to hold the first webhook POST", () => hold.held > 0, 60_000);
      const macBefore = bridgeMac();
      await k(["-n", RELEASE_NS, "delete", "pod", old.metadata.name, "--wait=false"]);
      const deleted = Date.now();
      const successor = await eventually(
        "another operator pod to hold the Lease",
        async () => {
          const l = await getJson(k, ["-n", RELEASE_NS, "get", "lease", operator!.name]);
          const holder = String(l.spec?.holderIdentity ?? "");
          return holder && !holder.startsWith(`${old.metadata.name}_`) ? holder : undefined;
        },
        90_000,
      );
      t.diagnostic(
        `Lease: ${old.metadata.name} → ${successor} in ${((Date.now() - deleted) / 1000).toFixed(1)} s; ` +
          `the bridge's MAC ${macBefore} → ${bridgeMac()}`,
      );
      const pods = (await getJson(k, ["-n", RELEASE_NS, "get", "pods", "-l", selector])).items as Any[];
      assert.ok(
        pods.some((p) => successor.startsWith(`${p.metadata.name}_`) && p.metadata.name !== old.metadata.name),
        "the holder is the Deployment's new pod",
      );
      const handedOver = Date.now();
      await Promise.race([oldLog.done, new Promise((resolve) => setTimeout(resolve, 30_000))]);
      oldLog.stop();
      const logEnded = Date.now();
      await waitSucceeded(k, ns, 90, "held");
      t.diagnostic(
        `old pod's log ended ${((logEnded - handedOver) / 1000).toFixed(1)} s after the handover; ` +
          `Succeeded ${((Date.now() - logEnded) / 1000).toFixed(1)} s later`,
      );
      const job = await readCrawl(ns, "held");
      const feeds = await feedsOf(ns, "held");
      assert.equal(feeds.length, PRODUCTS / BATCH);
      // Who delivered what: each CrawlFeed by one operator pod, some by the new one (the handover was mid-delivery).
      const deliveredIn = (log: string) =>
        [...log.matchAll(new RegExp(`Delivered the webhook of CrawlFeed ${ns}/([a-z0-9-]+)`, "g"))].map((m) => m[1]);
      const newPod = successor.split("_")[0]!;
      const byOld = deliveredIn(oldLog.text());
      const newLog = await k(["-n", RELEASE_NS, "logs", newPod]);
      const byNew = deliveredIn(newLog);
      const [runner] = await runnerPods(k, ns, "held");
      const ran = terminated(runner!)!;
      // ~7 s of crawl. A pod's veth going once changed the bridge's MAC and stalled the runner ~50 s (bridge.ts).
      assert.ok(
        Number(since(ran.startedAt, ran.finishedAt)) < 25,
        `the crawl went on across the handover: ${ran.startedAt} → ${ran.finishedAt}`,
      );
      t.diagnostic(
        `runner ended ${terminated(runner!)?.finishedAt}; feeds created → delivered: ${feeds
          .map((f) => `${f.spec.batchId}: ${f.metadata.creationTimestamp} → ${f.status.delivery.deliveredAt}`)
          .join("; ")}\nnew operator's log:\n${newLog
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as Any)
          .map((l) => `${l.time} ${l.msg}`)
          .join("\n")}`,
      );
      t.diagnostic(`delivered by the deleted pod: ${byOld.length}, by its successor: ${byNew.length}`);
      assert.deepEqual([...byOld, ...byNew].sort(), feeds.map((f) => f.metadata.name).sort(), "each CrawlFeed once");
      assert.ok(byOld.length > 0, "the deleted pod finished its delivery in flight");
      assert.ok(byNew.length > 0, "the new pod delivered the rest");
      for (const f of feeds) assert.equal(f.status?.delivery?.state, "Delivered", f.metadata.name);
      const items = await assertDeliveredOnce(ns, job, feeds);
      assert.equal(items.length, PRODUCTS);
      assert.equal(new Set(items.map((i) => i.upc)).size, PRODUCTS, "each item once");
      t.diagnostic(
        `held ${hold.held} POSTs ${HOLD_MS / 1000} s; attempts per CrawlFeed: ${feeds.map((f) => f.status.delivery.attempts).join(", ")}; ` +
          `backend: ${backend.stats.loaded - before.loaded} loaded, ${backend.stats.duplicates - before.duplicates} duplicates`,
      );
    },
  );

  faultCase(
    "oom",
    "a runner over its memory limit is OOM-killed: RunnerHealthy=False/OOMKilled, retried within backoffLimit, then Failed",
    "oom",
    async ({ t, ns, recorder }) => {
      const manifest = crawlJob("oom", {
        webhook: false,
        runner: {
          parallelism: 1,
          backoffLimit: 1,
          resources: { requests: { cpu: "50m", memory: "48Mi" }, limits: { memory: "48Mi" } },
        },
      });
      await k(["-n", ns, "apply", "-f", "-"], manifest);
      const unhealthy = await eventually(
        "RunnerHealthy=False/OOMKilled",
        async () => {
          const job = await readCrawl(ns, "oom");
          return conditionOf(job, "RunnerHealthy")?.reason === "OOMKilled" ? job : undefined;
        },
        60_000,
      );
      const healthy = conditionOf(unhealthy, "RunnerHealthy")!;
      t.diagnostic(`RunnerHealthy: ${JSON.stringify(healthy)}`);
      assert.equal(healthy.status, "False");
      assert.match(healthy.message, /^Pod oom-runner-0-\w+ \(shard 0\): the runner was killed: out of memory/);
      const job = await eventually(
        "the CrawlJob to fail",
        async () => {
          const j = await readCrawl(ns, "oom");
          return j.status?.phase === "Failed" ? j : undefined;
        },
        90_000,
      );
      const pods = [...recorder.pods.values()];
      t.diagnostic(`pods: ${describePods(pods)}`);
      assert.equal(pods.length, 2, "one try and one retry (backoffLimit 1)");
      for (const pod of pods) {
        const end = terminated(pod)!;
        assert.equal(end.reason, "OOMKilled");
        assert.equal(end.exitCode, 137);
        // Where it died: how long it ran and its last log line (FallbackToLogsOnError), if any.
        const last = jsonLines(end.message ?? "").at(-1);
        t.diagnostic(
          `${pod.metadata.name}: killed ${(Date.parse(end.finishedAt) - Date.parse(end.startedAt)) / 1000} s after its start; ` +
            `last log line: ${last ? last.msg : "none"}`,
        );
      }
      assert.equal(cond(job, "RunnerHealthy"), "False/OOMKilled");
      assert.equal(cond(job, "CrawlComplete"), "False/BackoffLimitExceeded");
      assert.match(conditionOf(job, "CrawlComplete")!.message, /OOMKilled/);
      assert.equal(cond(job, "Succeeded"), "False/RunnerFailed");
      const events = (await getJson(k, ["-n", ns, "get", "events"])).items as Any[];
      assert.ok(
        events.some((e) => e.involvedObject.name === "oom" && e.reason === "OOMKilled" && e.type === "Warning"),
        "a Warning Event OOMKilled on the CrawlJob",
      );
    },
  );

  faultCase(
    "exit-2",
    "a runner that exits 2 (a snapshot without feeds) fails the Job at once via podFailurePolicy: 1 pod, CrawlJob RunnerConfigError",
    "nofeeds",
    async ({ t, ns, recorder }) => {
      // The pod waits for a node label while the snapshot loses its feeds, then runs.
      const label = `feedcrawl.io/faults-${ns}`;
      const runner = { parallelism: 1, backoffLimit: 3, nodeSelector: { [label]: "go" } };
      await k(["-n", ns, "apply", "-f", "-"], crawlJob("nofeeds", { webhook: false, runner }));
      const cm = await eventually(
        "the spec snapshot ConfigMap",
        () => getJson(k, ["-n", ns, "get", "configmap", "nofeeds-spec"]).catch(() => undefined),
        60_000,
      );
      const key = Object.keys(cm.data)[0]!;
      const spec = JSON.parse(cm.data[key]) as Any;
      delete spec.spec.feeds;
      await k([
        "-n",
        ns,
        "patch",
        "configmap",
        "nofeeds-spec",
        "--type=merge",
        "-p",
        JSON.stringify({ data: { [key]: JSON.stringify(spec) } }),
      ]);
      await k(["label", "node", node().name, `${label}=go`]);
      t.after(() => k(["label", "node", node().name, `${label}-`]).catch(() => undefined));
      const job = await eventually(
        "the CrawlJob to fail",
        async () => {
          const j = await readCrawl(ns, "nofeeds");
          return j.status?.phase === "Failed" ? j : undefined;
        },
        60_000,
      );
      const runnerJob = await getJson(k, ["-n", ns, "get", "job", "nofeeds-runner"]);
      const failedCondition = conditionOf(runnerJob, "Failed");
      t.diagnostic(`Job Failed: ${failedCondition?.reason}: ${failedCondition?.message}`);
      assert.equal(failedCondition?.reason, "PodFailurePolicy");
      const pods = [...recorder.pods.values()];
      assert.equal(pods.length, 1, `no retry although backoffLimit is 3: ${describePods(pods)}`);
      assert.equal(terminated(pods[0]!)?.exitCode, 2);
      const complete = conditionOf(job, "CrawlComplete")!;
      t.diagnostic(`CrawlComplete: ${complete.reason}: ${complete.message}`);
      assert.equal(complete.status, "False");
      assert.equal(complete.reason, "RunnerConfigError");
      assert.match(
        complete.message,
        /^Pod nofeeds-runner-0-\w+ \(shard 0\): exit 2, a configuration error: Runner configuration is invalid: .*spec\.feeds is empty/,
      );
      assert.equal(cond(job, "RunnerHealthy"), "False/RunnerConfigError");
      assert.equal(cond(job, "Succeeded"), "False/RunnerFailed");
      assert.match(
        conditionOf(job, "Succeeded")!.message,
        /^The runner failed: RunnerConfigError: .*spec\.feeds is empty/,
      );
    },
  );

  faultCase(
    "no-image",
    "a runner image that does not exist: RunnerHealthy=False with the pull error and the pod's message",
    "noimage",
    async ({ t, ns }) => {
      const image = "localhost/nope:1";
      await k(
        ["-n", ns, "apply", "-f", "-"],
        crawlJob("noimage", { webhook: false, runner: { parallelism: 1, backoffLimit: 0, image } }),
      );
      const job = await eventually(
        "RunnerHealthy=False with an image pull reason",
        async () => {
          const j = await readCrawl(ns, "noimage");
          return ["ErrImagePull", "ImagePullBackOff"].includes(conditionOf(j, "RunnerHealthy")?.reason) ? j : undefined;
        },
        60_000,
      );
      const healthy = conditionOf(job, "RunnerHealthy")!;
      const [pod] = await runnerPods(k, ns, "noimage");
      const waiting = pod!.status.containerStatuses[0].state.waiting;
      t.diagnostic(
        `RunnerHealthy: ${healthy.reason}: ${healthy.message}; the pod: ${waiting?.reason}: ${waiting?.message}`,
      );
      assert.equal(healthy.status, "False");
      assert.ok(healthy.message.startsWith(`Pod ${pod!.metadata.name} (shard 0): `), healthy.message);
      assert.ok(healthy.message.includes(image), healthy.message);
      assert.equal(job.status.phase, "Pending");
      assert.match(
        conditionOf(job, "Succeeded")!.message,
        /^Waiting for the runner pods: (ErrImagePull|ImagePullBackOff)/,
      );
      const events = (await getJson(k, ["-n", ns, "get", "events"])).items as Any[];
      assert.ok(
        events.some((e) => e.involvedObject.name === "noimage" && e.reason === healthy.reason && e.type === "Warning"),
        `a Warning Event ${healthy.reason} on the CrawlJob`,
      );
    },
  );
});
