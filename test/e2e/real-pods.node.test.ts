// End to end with real pods, nothing played: on the local cluster's node
// (kubelet, containerd, runc) `helm install` runs the operator as the chart's
// Deployment pod, from the image built here (localhost/feedcrawl:dev, pull
// policy Never), in a namespace that enforces the restricted Pod Security
// Standard; it takes its Lease. `kubectl apply` of examples/crawljob-e2e.yaml
// (in another restricted namespace) makes it start an Indexed Job of 3 runner
// pods; each crawls the fixture site on its own host address of the node's
// bridge (shards split by hostname), uploads gzip feeds to the S3 server on
// the bridge, creates its CrawlFeeds with its own projected ServiceAccount
// token (an admission policy refuses any other creator) and exits 0. The
// operator pod calls the reference backend (on the bridge address, loading
// PostgreSQL) once per feed; `kubectl wait --for=condition=Succeeded`; SQL
// holds exactly the sites' items, each once.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import type pg from "pg";
import type { IngestBackend } from "../../examples/ingest-backend/server.ts";
import { shardForHost } from "../../runner/shard.ts";
import { hostsCoveringShards, type Sites } from "../fixtures/sites.ts";
import { tempDir } from "../operator/harness.ts";
import { node, platform } from "../platform/env.ts";
import { type Disposable, eventually } from "../platform/fixtures.ts";
import { bedCleanup, type E2eBed, releaseCleanup, startBed } from "./bed.ts";
import {
  type Any,
  crawlManifest,
  crawlSecrets,
  describePods,
  getJson,
  IMAGE_REPOSITORY,
  IMAGE_TAG,
  type InstalledOperator,
  installOperator,
  JOB,
  kubectlFor,
  networkOf,
  RUNNER_JOB,
  restrictedNamespace,
  runCleanup,
  terminated,
  waitRunnerPods,
  waitSucceeded,
} from "./cluster.ts";

const PRODUCTS_PER_SITE = 200;
const SHARDS = 3;
const RELEASE = "feedcrawl";
const RELEASE_NS = "feedcrawl-system";
const NS = "crawl-e2e";
const IMAGE = `${IMAGE_REPOSITORY}:${IMAGE_TAG}`;
const WEBHOOK_SECRET = `whsec_${Buffer.from("feedcrawl-real-pods-webhook-secret-0123").toString("base64")}`;
/** Refuses a CrawlFeed created by anyone but a runner pod of this CrawlJob, with its pod-bound token. */
const POLICY = `${NS}-crawlfeeds-from-runner-pods`;
const PROBE = "admission-probe";
/** The number of step() tests below. */
const STEPS = 8;

describe("end to end with real pods: helm chart, operator pod, 3 runner pods, S3, webhook, PostgreSQL", () => {
  const workDir = tempDir("real-pods");
  const timings: [string, number][] = [];
  let kubeconfig: string;
  let k: ReturnType<typeof kubectlFor>;
  let bed: E2eBed | undefined;
  let s3Api: E2eBed["s3"];
  let sites: Sites;
  let bucket: Disposable;
  let backend: IngestBackend;
  let sql: pg.Client;
  let operator: InstalledOperator | undefined;
  let job: Any;
  let feeds: Any[];
  let pods: Any[];
  let passed = 0;

  /** A test whose success counts towards `passed`, timed under `label`. */
  const step = (label: string, name: string, fn: (t: TestContext) => Promise<void>) =>
    it(name, async (t) => {
      const started = Date.now();
      try {
        await fn(t);
      } finally {
        timings.push([label, (Date.now() - started) / 1000]);
      }
      passed += 1;
    });
  const since = (a: string, b: string) => ((Date.parse(b) - Date.parse(a)) / 1000).toFixed(1);

  before(async () => {
    const started = Date.now();
    kubeconfig = platform().kubeconfig;
    k = kubectlFor(kubeconfig);
    // The site addresses first; the node host too when they leave a shard without a host.
    const hosts = hostsCoveringShards([...node().siteHosts, node().host], SHARDS);
    bed = await startBed({ name: "e2e", hosts, products: PRODUCTS_PER_SITE, webhookSecret: WEBHOOK_SECRET, workDir });
    ({ s3: s3Api, sites, bucket, backend, sql } = bed);
    timings.push(["sites, bucket, backend", (Date.now() - started) / 1000]);
  });

  after(async () => {
    const cleanup: [string, (() => Promise<unknown>) | undefined][] = [
      [
        "CrawlJob namespace",
        () => k(["delete", "namespace", NS, "--ignore-not-found", "--wait=true", "--timeout=60s"]),
      ],
      [
        "admission policy",
        () => k(["delete", "validatingadmissionpolicy,validatingadmissionpolicybinding", POLICY, "--ignore-not-found"]),
      ],
      ...releaseCleanup(k, kubeconfig, RELEASE, RELEASE_NS),
      ...bedCleanup(bed),
    ];
    const errors = await runCleanup(cleanup);
    console.log(`# timings: ${timings.map(([what, s]) => `${what} ${s.toFixed(1)} s`).join("; ")}`);
    if (errors.length > 0) throw new Error(`Cleanup failed: ${errors.join("; ")}`);
    if (passed === STEPS) rmSync(workDir, { recursive: true, force: true });
    else process.stderr.write(`End-to-end files kept in ${workDir}\n`);
  });

  step(
    "helm install + Lease",
    "helm install: the operator runs as the chart's Deployment pod in a restricted namespace and takes its Lease",
    async (t) => {
      operator = await installOperator({
        kubeconfig,
        release: RELEASE,
        namespace: RELEASE_NS,
        // The backend listens on the node host: the one private address the operator may call.
        webhookPrivateNetworks: [`${node().host}/32`],
        feedBuckets: [bucket.name],
      });
      const { pod, lease } = operator;
      const container = pod.spec.containers[0];
      assert.equal(container.image, IMAGE);
      assert.equal(container.imagePullPolicy, "Never");
      assert.equal(pod.spec.nodeName, node().name, "scheduled on the local node");
      assert.equal(container.securityContext.readOnlyRootFilesystem, true);
      assert.match(lease.spec.holderIdentity, new RegExp(`^${pod.metadata.name}_`), "the Lease holder is the pod");
      const ns = await getJson(k, ["get", "namespace", RELEASE_NS]);
      assert.equal(ns.metadata.labels["pod-security.kubernetes.io/enforce"], "restricted");
      t.diagnostic(
        `operator pod ${pod.metadata.name} Ready, Lease ${RELEASE_NS}/${operator.name} held by ${lease.spec.holderIdentity}`,
      );
    },
  );

  step(
    "apply → pods exited",
    "kubectl apply of examples/crawljob-e2e.yaml starts 3 runner pods that crawl, upload and exit 0",
    async (t) => {
      const { s3 } = platform();
      await restrictedNamespace(k, NS);
      await crawlSecrets(k, NS, s3, WEBHOOK_SECRET);
      await admitCrawlFeedsFromRunnerPodsOnly();
      const manifest = join(workDir, "crawljob-e2e.yaml");
      writeFileSync(
        manifest,
        crawlManifest({
          sites: sites.sites.map((s) => s.url),
          siteNetwork: networkOf(node().host),
          s3Endpoint: s3.endpoint,
          bucket: bucket.name,
          webhookUrl: backend.url,
        }),
      );
      assert.match(await k(["-n", NS, "apply", "-f", manifest]), /crawljob\.feedcrawl\.io\/books-e2e created/);

      pods = await waitRunnerPods(k, NS, SHARDS, 150_000);
      t.diagnostic(describePods(pods));
      assert.equal(pods.length, SHARDS, `one pod per shard, none retried: ${describePods(pods)}`);
      for (const pod of pods) {
        assert.equal(terminated(pod)?.exitCode, 0, `${pod.metadata.name}: ${JSON.stringify(terminated(pod))}`);
        assert.equal(pod.spec.containers[0].image, IMAGE);
        assert.notEqual(pod.spec.containers[0].imagePullPolicy, "Always");
        assert.equal(pod.spec.nodeName, node().name);
        assert.equal(pod.spec.serviceAccountName, RUNNER_JOB);
        // The token is the kubelet's projection, not a KUBECONFIG handed in.
        assert.ok(pod.spec.volumes.some((v: Any) => v.projected?.sources?.some((s: Any) => s.serviceAccountToken)));
        assert.ok(!pod.spec.containers[0].env?.some((e: Any) => e.name === "KUBECONFIG"));
      }
      assert.deepEqual(
        pods.map((p) => p.metadata.annotations["batch.kubernetes.io/job-completion-index"]),
        ["0", "1", "2"],
      );
      // Pulled nothing: the image was already in the node's containerd.
      const events = (await getJson(k, ["get", "events", "-A"])).items as Any[];
      const pulls = events.filter(
        (e) => [NS, RELEASE_NS].includes(e.involvedObject.namespace) && e.reason === "Pulling",
      );
      assert.deepEqual(
        pulls.map((e) => e.message),
        [],
        "no image was pulled",
      );
      const present = events.filter((e) => e.involvedObject.namespace === NS && e.reason === "Pulled");
      assert.ok(present.length >= SHARDS && present.every((e) => /already present on machine/.test(e.message)));
      const first = Math.min(...pods.map((p) => Date.parse(p.metadata.creationTimestamp)));
      const last = Math.max(...pods.map((p) => Date.parse(terminated(p)?.finishedAt)));
      t.diagnostic(`runner pods: first created → last exited ${((last - first) / 1000).toFixed(1)} s`);
    },
  );

  step(
    "wait Succeeded",
    "kubectl wait --for=condition=Succeeded: every CrawlFeed delivered, the bucket holds exactly their files",
    async (t) => {
      const waited = await waitSucceeded(k, NS, 120).catch(async (err: Error) => {
        const logs = await k(["-n", RELEASE_NS, "logs", `deployment/${operator?.name}`, "--tail=40"]).catch(() => "");
        throw new Error(`${err.message}\noperator log (tail):\n${logs}\nbackend log: ${join(workDir, "backend.log")}`);
      });
      assert.match(waited, /condition met/);
      job = await getJson(k, ["-n", NS, "get", "crawl", JOB]);
      feeds = (
        await getJson(k, ["-n", NS, "get", "cfeed", "-l", `feedcrawl.io/crawljob=${JOB}`, "--show-managed-fields"])
      ).items;
      assert.equal(job.status.phase, "Succeeded");
      t.diagnostic(`kubectl get crawl,cfeed,pods:\n${await k(["-n", NS, "get", "crawl,cfeed,pods"])}`);
      t.diagnostic(`kubectl apply → Succeeded: ${since(job.metadata.creationTimestamp, job.status.completionTime)} s`);
      const items = SHARDS * PRODUCTS_PER_SITE;
      assert.ok(feeds.length >= items / 100, `${feeds.length} CrawlFeeds for ${items} items in batches of 100`);
      for (const feed of feeds) {
        assert.equal(
          feed.status?.delivery?.state,
          "Delivered",
          `${feed.metadata.name}: ${JSON.stringify(feed.status)}`,
        );
        assert.match(
          feed.spec.uri,
          new RegExp(`^s3://${bucket.name}/books/.+/shard-${feed.spec.shard}/.+\\.jsonl\\.gz$`),
        );
        // The spec was written by the runner's client (its field manager), the status by the operator's.
        const specBy = (feed.metadata.managedFields as Any[])
          .filter((m) => m.fieldsV1?.["f:spec"])
          .map((m) => m.manager);
        assert.deepEqual(specBy, ["feedcrawl-runner"], `${feed.metadata.name}: spec written by ${specBy}`);
      }
      const listed = await s3Api.send(new ListObjectsV2Command({ Bucket: bucket.name }));
      const stored = (listed.Contents ?? [])
        .map((o) => `s3://${bucket.name}/${o.Key}`)
        .filter((u) => u.endsWith(".gz"));
      assert.deepEqual(stored.sort(), feeds.map((f) => f.spec.uri).sort());
    },
  );

  step("SQL", "SQL: exactly the three sites' items, each once", async () => {
    const expected = sites.expectedItems().map((item) => item.fields);
    const { rows } = await sql.query<{ item: Record<string, unknown> }>("SELECT item FROM items");
    assert.equal(rows.length, expected.length);
    const counts = (
      await sql.query<{ upcs: number; urls: number }>(
        "SELECT count(DISTINCT item->>'upc')::int AS upcs, count(DISTINCT item->>'url')::int AS urls FROM items",
      )
    ).rows[0];
    assert.equal(counts?.upcs, expected.length, "every UPC once");
    assert.equal(counts?.urls, expected.length, "every product page once");
    const byUrl = (a: Record<string, unknown>, b: Record<string, unknown>) =>
      String(a.url).localeCompare(String(b.url));
    assert.deepEqual(rows.map((r) => r.item).sort(byUrl), [...expected].sort(byUrl), "field for field");
  });

  step(
    "shard stats",
    "each shard crawled its own site (status.shardStats), one webhook per CrawlFeed, feedSummary agrees",
    async () => {
      for (const site of sites.sites) {
        const shard = String(shardForHost(site.host, SHARDS));
        const stats = job.status.shardStats?.[shard];
        assert.ok(stats, `shardStats[${shard}] (site ${site.url})`);
        assert.equal(stats.pages, site.catalogue.products + site.catalogue.pages, `shard ${shard} crawled ${site.url}`);
        assert.equal(stats.items, site.catalogue.products, `shard ${shard} scraped ${site.url}`);
      }
      assert.deepEqual(Object.keys(job.status.shardStats).sort(), ["0", "1", "2"]);
      assert.deepEqual([...new Set(feeds.map((f) => f.spec.shard))].sort(), [0, 1, 2], "every shard stored feeds");

      const uid: string = job.metadata.uid;
      const expectedIds = feeds.map((f) => `${uid}:${createHash("sha256").update(f.spec.uri).digest("hex")}`);
      const ingested = (await sql.query<{ webhook_id: string }>("SELECT webhook_id FROM ingested_webhooks")).rows;
      assert.deepEqual(
        ingested.map((r) => r.webhook_id).sort(),
        [...expectedIds].sort(),
        "one webhook-id per CrawlFeed",
      );
      assert.equal(backend.stats.loaded, feeds.length, "one 200 per CrawlFeed");
      assert.equal(backend.stats.rejected + backend.stats.failed, 0, JSON.stringify(backend.stats));
      const { feedSummary, stats } = job.status;
      assert.equal(feedSummary.delivered, feeds.length);
      assert.equal(feedSummary.failed, 0);
      assert.equal(feedSummary.items, SHARDS * PRODUCTS_PER_SITE);
      assert.equal(stats.items, SHARDS * PRODUCTS_PER_SITE);
      assert.equal(stats.pages, sites.pages());
    },
  );

  step(
    "kubectl logs",
    "kubectl logs of each runner pod ends with its stats line and its cgroup memory peak",
    async (t) => {
      for (const pod of pods) {
        const index = Number(pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]);
        const log = await k(["-n", NS, "logs", pod.metadata.name]);
        const line = log
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as Any)
          .find((l) => l.msg === `Runner of CrawlJob ${NS}/${JOB} shard ${index} finished`);
        assert.ok(line, `${pod.metadata.name}: no stats line in\n${log.slice(-2000)}`);
        assert.equal(line.stats.items, PRODUCTS_PER_SITE);
        assert.equal(line.reported, line.feeds);
        // The container's own cgroup peak (issue 17: size runners by it), below the pod's limit.
        const limit = String(pod.spec.containers[0].resources.limits.memory);
        const unit = { Mi: 2 ** 20, Gi: 2 ** 30 }[limit.slice(-2)];
        assert.ok(unit, `memory limit ${limit}`);
        assert.ok(line.cgroupMemoryPeakBytes > 0, `cgroupMemoryPeakBytes ${line.cgroupMemoryPeakBytes}`);
        assert.ok(line.cgroupMemoryPeakBytes < Number.parseInt(limit, 10) * unit, `peak over the ${limit} limit`);
        t.diagnostic(
          `${pod.metadata.name}: cgroup memory peak ${(line.cgroupMemoryPeakBytes / 2 ** 20).toFixed(0)} MiB of ${limit}`,
        );
        if (index === 0) t.diagnostic(`kubectl logs ${pod.metadata.name}: ${JSON.stringify(line)}`);
      }
    },
  );

  step(
    "RBAC, events",
    "needed nothing beyond the chart's and the per-job RBAC: no request forbidden, the Events recorded",
    async () => {
      const logs = [
        await k(["-n", RELEASE_NS, "logs", `deployment/${operator?.name}`]),
        ...(await Promise.all(pods.map((p) => k(["-n", NS, "logs", p.metadata.name])))),
      ];
      for (const log of logs)
        assert.deepEqual(
          log.split("\n").filter((l) => /forbidden/i.test(l)),
          [],
        );
      const events = (await getJson(k, ["-n", NS, "get", "events"])).items as Any[];
      const reasons = new Set(events.filter((e) => e.involvedObject.name === JOB).map((e) => e.reason));
      for (const reason of ["RunnerCreated", "CrawlCompleted", "FeedsDelivered", "CrawlSucceeded"]) {
        assert.ok(reasons.has(reason), `Event ${reason} on the CrawlJob (got ${[...reasons].join(", ")})`);
      }
    },
  );

  step("secrets", "keeps the S3 and webhook secrets out of pod logs, status and events", async () => {
    const { s3 } = platform();
    const texts = {
      "operator pod log": await k(["-n", RELEASE_NS, "logs", `deployment/${operator?.name}`]),
      "runner pod logs": (await Promise.all(pods.map((p) => k(["-n", NS, "logs", p.metadata.name])))).join("\n"),
      "CrawlJob and CrawlFeeds": JSON.stringify({ job, feeds }),
      events: await k(["get", "events", "-A", "-o", "json"]),
    };
    for (const [where, text] of Object.entries(texts)) {
      assert.ok(text.length > 0, `${where} is not empty`);
      for (const secret of [s3.secretAccessKey, WEBHOOK_SECRET, WEBHOOK_SECRET.slice("whsec_".length)]) {
        assert.ok(!text.includes(secret), `a secret appears in the ${where}`);
      }
    }
  });

  /**
   * A ValidatingAdmissionPolicy on CrawlFeed creation in NS: only the
   * runner's ServiceAccount, and only with a token bound to one of the runner
   * Job's pods (the kubelet's projected token carries the pod's name), may
   * create one. In force once it refuses the admin's dry run of a probe ConfigMap.
   */
  async function admitCrawlFeedsFromRunnerPodsOnly(): Promise<void> {
    const podName = "request.userInfo.extra['authentication.kubernetes.io/pod-name']";
    const policy = {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicy",
      metadata: { name: POLICY },
      spec: {
        failurePolicy: "Fail",
        matchConstraints: {
          resourceRules: [
            { apiGroups: ["feedcrawl.io"], apiVersions: ["*"], operations: ["CREATE"], resources: ["crawlfeeds"] },
            { apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["configmaps"] },
          ],
        },
        // The ConfigMap named PROBE shows the policy is in force (the chart's own CrawlFeed policy would answer
        // a CrawlFeed probe first: no CrawlJob exists yet).
        matchConditions: [
          {
            name: "crawlfeeds-and-the-probe",
            expression: `request.resource.group == 'feedcrawl.io' || request.name == '${PROBE}'`,
          },
        ],
        validations: [
          {
            expression: `request.userInfo.username == 'system:serviceaccount:${NS}:${RUNNER_JOB}'`,
            messageExpression: `'CrawlFeeds come from runner pods, not from ' + request.userInfo.username`,
          },
          {
            expression:
              "'authentication.kubernetes.io/pod-name' in request.userInfo.extra && " +
              `${podName}.size() == 1 && ${podName}[0].startsWith('${RUNNER_JOB}-')`,
            message: "CrawlFeeds come with the token the kubelet projected into a runner pod",
          },
        ],
      },
    };
    const binding = {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicyBinding",
      metadata: { name: POLICY },
      spec: {
        policyName: POLICY,
        validationActions: ["Deny"],
        matchResources: { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": NS } } },
      },
    };
    await k(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: [policy, binding] }));
    await eventually(
      "the admission policy to be in force",
      async () => {
        try {
          await k(["-n", NS, "create", "configmap", PROBE, "--dry-run=server"]);
          return false;
        } catch (err) {
          if (/CrawlFeeds come from runner pods/.test((err as Error).message)) return true;
          throw err;
        }
      },
      30_000,
    );
  }
});
