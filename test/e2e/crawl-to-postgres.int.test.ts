// End to end, every part real except the kubelet and the Job controller, which
// the test plays: the chart installed with helm on a private control plane
// (CRDs + RBAC; no --wait, there is no kubelet); `feedcrawl operator` as a
// local process holding only a token of the chart's ServiceAccount; the
// fixture catalogue site; the reference bulk-ingest backend on a fresh
// PostgreSQL database, reading a fresh bucket of the real S3 server;
// examples/crawljob-e2e.yaml applied with kubectl; the runner Job's pods run as
// local `feedcrawl run` processes (test/operator/kubelet.ts); then
// `kubectl wait --for=condition=Succeeded` and SQL: the table holds exactly the
// site's products, loaded by exactly one webhook per CrawlFeed.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { KubeConfig } from "@kubernetes/client-node";
import pg from "pg";
import { pino } from "pino";
import { configFromEnv } from "../../examples/ingest-backend/config.ts";
import { createIngestBackend, type IngestBackend } from "../../examples/ingest-backend/server.ts";
import { shardForHost } from "../../runner/shard.ts";
import { chartDir, helm } from "../chart/helm.ts";
import { type CatalogueServer, createCatalogue } from "../fixtures/catalogue.ts";
import { tempDir } from "../operator/harness.ts";
import { type PlayedJob, playJob, REPO_ROOT } from "../operator/kubelet.ts";
import { platform } from "../platform/env.ts";
import {
  createBucket,
  type Disposable,
  eventually,
  kubectl,
  type OwnControlPlane,
  pgDatabase,
  s3Client,
  startOwnControlPlane,
  type TestDatabase,
} from "../platform/fixtures.ts";
import { fillPlaceholders } from "./manifest.ts";
import { type OperatorProcess, runnerPods, startChartOperator } from "./processes.ts";

const PRODUCTS = 500;
const RELEASE = "fc";
const RELEASE_NS = "feedcrawl-system";
const NS = "crawl-e2e";
const JOB = "books-e2e";
const MANIFEST = join(REPO_ROOT, "examples/crawljob-e2e.yaml");
/** The number of step() tests below. */
const STEPS = 8;
const WEBHOOK_SECRET = `whsec_${Buffer.from("feedcrawl-e2e-webhook-secret-0123456789").toString("base64")}`;

// biome-ignore lint/suspicious/noExplicitAny: objects read back with kubectl are untyped JSON
type Any = Record<string, any>;

describe("end to end: helm chart, operator with its ServiceAccount, a CrawlJob into PostgreSQL (test plays the kubelet and the Job controller)", () => {
  const workDir = tempDir("e2e");
  const pods = runnerPods();
  const catalogue = createCatalogue({ products: PRODUCTS });
  const s3Api = s3Client();
  let plane: OwnControlPlane;
  let admin: KubeConfig;
  let kubeconfig: string;
  let site: CatalogueServer;
  let bucket: Disposable;
  let db: TestDatabase;
  let backend: IngestBackend;
  let sql: pg.Client;
  let operator: OperatorProcess | undefined;
  let played: PlayedJob;
  let job: Any;
  let feeds: Any[];
  /** Steps that passed: the work dir is removed only when all did. */
  let passed = 0;

  /** A test whose success counts towards `passed`. */
  const step = (name: string, fn: (t: TestContext) => Promise<void>) =>
    it(name, async (t) => {
      await fn(t);
      passed += 1;
    });
  const k = (args: string[], input?: string) => kubectl(args, { kubeconfig, ...(input ? { input } : {}) });

  before(async () => {
    // Started side by side: the private apiserver takes the longest. Whatever started is cleaned up in after().
    const started = await Promise.allSettled([
      // A private apiserver: the chart owns the CRDs here, while other test files apply them with kubectl.
      startOwnControlPlane("e2e").then((p) => {
        plane = p;
      }),
      catalogue.listen().then((s) => {
        site = s;
      }),
      createBucket("e2e-feeds").then((b) => {
        bucket = b;
      }),
      (async () => {
        db = await pgDatabase("e2e");
        backend = await createIngestBackend(
          configFromEnv({ WEBHOOK_SECRET: WEBHOOK_SECRET, DATABASE_URL: db.connectionString, PORT: "0" }),
          {
            s3: s3Api,
            // Synchronous writes: the log is complete even when the test dies.
            logger: pino(
              { level: "debug", name: "ingest-backend" },
              pino.destination({ dest: join(workDir, "backend.log"), sync: true }),
            ),
          },
        );
        sql = new pg.Client({ connectionString: db.connectionString });
        await sql.connect();
      })(),
    ]);
    for (const result of started) if (result.status === "rejected") throw result.reason;
    admin = plane.kubeConfig();
    kubeconfig = plane.apiserver.kubeconfig;
  });

  after(async () => {
    // Every step runs even when an earlier one throws: no process, database, bucket or apiserver is left.
    const steps: [string, (() => Promise<unknown>) | undefined][] = [
      ["runner pods", () => pods.stopAll()],
      ["operator", operator?.stop],
      ["SQL client", sql ? () => sql.end() : undefined],
      ["backend", backend?.close],
      ["database", db?.cleanup],
      ["bucket", bucket?.cleanup],
      ["S3 client", async () => s3Api.destroy()],
      ["site", site?.close],
      // Stopping the private control plane removes its namespaces, CRDs and etcd data with it.
      ["control plane", plane?.stop],
    ];
    const errors: string[] = [];
    for (const [what, step] of steps) {
      try {
        await step?.();
      } catch (err) {
        errors.push(`${what}: ${(err as Error).message}`);
      }
    }
    if (errors.length > 0) throw new Error(`Cleanup failed: ${errors.join("; ")}`);
    // The folder holds the logs and the pods' token kubeconfigs: kept only when a step failed.
    if (passed === STEPS) rmSync(workDir, { recursive: true, force: true });
    else process.stderr.write(`End-to-end logs kept in ${workDir}\n`);
  });

  step("installs the chart's CRDs and RBAC with helm (no --wait: no kubelet runs the Deployment)", async () => {
    const result = await helm([
      "install",
      RELEASE,
      chartDir,
      "--namespace",
      RELEASE_NS,
      "--create-namespace",
      "--kubeconfig",
      kubeconfig,
    ]);
    assert.equal(result.code, 0, result.stderr);
    await k(["wait", "--for=condition=Established", "crd/crawljobs.feedcrawl.io", "crd/crawlfeeds.feedcrawl.io"]);
  });

  step("runs `feedcrawl operator` from the chart's Deployment spec, as the chart's ServiceAccount", async () => {
    operator = await startChartOperator({
      admin,
      kubeconfig,
      namespace: RELEASE_NS,
      deployment: `${RELEASE}-feedcrawl`,
      workDir,
    });
    assert.equal(operator.user, `system:serviceaccount:${RELEASE_NS}:${RELEASE}-feedcrawl`);
    const whoami = JSON.parse(
      await kubectl(["auth", "whoami", "-o", "json"], { kubeconfig: join(workDir, "operator", "kubeconfig") }),
    );
    assert.equal(whoami.status.userInfo.username, operator.user, "the operator's kubeconfig holds the SA token");
  });

  step("applies examples/crawljob-e2e.yaml with kubectl and runs its runner Job to completion", async () => {
    const { s3 } = platform();
    await k(["create", "namespace", NS]);
    await k([
      "-n",
      NS,
      "create",
      "secret",
      "generic",
      "s3-creds",
      `--from-literal=accessKeyId=${s3.accessKeyId}`,
      `--from-literal=secretAccessKey=${s3.secretAccessKey}`,
    ]);
    await k(["-n", NS, "create", "secret", "generic", "ingest-webhook", `--from-literal=secret=${WEBHOOK_SECRET}`]);
    const manifest = join(workDir, "crawljob-e2e.yaml");
    writeFileSync(
      manifest,
      fillPlaceholders(MANIFEST, {
        SITE_URL: site.url,
        S3_ENDPOINT: s3.endpoint,
        BUCKET: bucket.name,
        WEBHOOK_URL: backend.url,
      }),
    );
    assert.match(await k(["-n", NS, "apply", "-f", manifest]), /crawljob\.feedcrawl\.io\/books-e2e created/);

    const runnerJob = await eventually(
      "the operator to create the runner Job",
      async () => JSON.parse(await k(["-n", NS, "get", "job", `${JOB}-runner`, "-o", "json"])) as Any,
      30_000,
    );
    assert.equal(runnerJob.spec.completions, 2, "parallelism 2: an Indexed Job of two pods");
    mkdirSync(join(workDir, "pods"), { recursive: true });
    played = await playJob({
      admin,
      namespace: NS,
      jobName: `${JOB}-runner`,
      workDir: join(workDir, "pods"),
      execute: pods.execute,
    });
    assert.deepEqual(played.exitCodes, { 0: [0], 1: [0] }, `runner pod logs: ${pods.logs().join(", ")}`);
  });

  step("reaches Succeeded (kubectl wait) once every CrawlFeed is delivered", async (t) => {
    const waited = await k(["-n", NS, "wait", "--for=condition=Succeeded", `crawl/${JOB}`, "--timeout=90s"]).catch(
      (err: Error) => {
        throw new Error(
          `${err.message}\noperator log: ${operator?.logPath}\nbackend log: ${join(workDir, "backend.log")}`,
        );
      },
    );
    assert.match(waited, /condition met/);
    job = JSON.parse(await k(["-n", NS, "get", "crawl", JOB, "-o", "json"]));
    feeds = JSON.parse(await k(["-n", NS, "get", "cfeed", "-l", `feedcrawl.io/crawljob=${JOB}`, "-o", "json"])).items;
    assert.equal(job.status.phase, "Succeeded");
    t.diagnostic(`kubectl get crawl,cfeed:\n${await k(["-n", NS, "get", "crawl,cfeed"])}`);
    const seconds = (Date.parse(job.status.completionTime) - Date.parse(job.metadata.creationTimestamp)) / 1000;
    t.diagnostic(`apply → Succeeded: ${seconds} s`);
    assert.ok(feeds.length >= PRODUCTS / 100, `${feeds.length} CrawlFeeds for ${PRODUCTS} items in batches of 100`);
    for (const feed of feeds) {
      assert.equal(feed.status?.delivery?.state, "Delivered", `${feed.metadata.name}: ${JSON.stringify(feed.status)}`);
      assert.equal(feed.spec.compression, "gzip");
      assert.match(feed.spec.uri, new RegExp(`^s3://${bucket.name}/books/.+\\.jsonl\\.gz$`));
    }
    // Nothing stored without a report: the bucket's feed files are exactly the CrawlFeeds' URIs.
    const listed = await s3Api.send(new ListObjectsV2Command({ Bucket: bucket.name }));
    const stored = (listed.Contents ?? [])
      .map((o) => `s3://${bucket.name}/${o.Key}`)
      .filter((uri) => uri.endsWith(".gz"));
    assert.deepEqual(stored.sort(), feeds.map((f) => f.spec.uri).sort());
  });

  step("stores exactly the site's products in PostgreSQL: no loss, no duplicates", async () => {
    const expected = catalogue.expectedItems(site.url).map((item) => item.fields);
    const { rows } = await sql.query<{ item: Record<string, unknown> }>("SELECT item FROM items");
    assert.equal(rows.length, PRODUCTS);
    const counts = (
      await sql.query<{ upcs: number; urls: number }>(
        "SELECT count(DISTINCT item->>'upc')::int AS upcs, count(DISTINCT item->>'url')::int AS urls FROM items",
      )
    ).rows[0];
    assert.equal(counts?.upcs, PRODUCTS, "every UPC once");
    assert.equal(counts?.urls, PRODUCTS, "every product page once");
    const byUrl = (a: Record<string, unknown>, b: Record<string, unknown>) =>
      String(a.url).localeCompare(String(b.url));
    assert.deepEqual(
      rows.map((r) => r.item).sort(byUrl),
      [...expected].sort(byUrl),
      "the rows are the fixture's expectedItems(), field for field",
    );
    assert.deepEqual(
      rows.map((r) => `${r.item.upc} ${r.item.title}`).sort(),
      expected.map((item) => `${item.upc} ${item.title}`).sort(),
    );
  });

  step("got exactly one successful webhook per CrawlFeed, and status.feedSummary agrees", async () => {
    const uid: string = job.metadata.uid;
    const expectedIds = feeds.map((feed) => `${uid}:${createHash("sha256").update(feed.spec.uri).digest("hex")}`);
    const ingested = (await sql.query<{ webhook_id: string }>("SELECT webhook_id FROM ingested_webhooks")).rows;
    assert.deepEqual(ingested.map((r) => r.webhook_id).sort(), [...expectedIds].sort(), "one webhook-id per CrawlFeed");
    assert.equal(backend.stats.loaded, feeds.length, "one 200 per CrawlFeed");
    assert.equal(backend.stats.rejected + backend.stats.failed, 0, JSON.stringify(backend.stats));
    const perFeed = (
      await sql.query<{ feed_uri: string; n: number }>("SELECT feed_uri, count(*)::int AS n FROM items GROUP BY 1")
    ).rows;
    assert.deepEqual(
      Object.fromEntries(perFeed.map((r) => [r.feed_uri, r.n])),
      Object.fromEntries(feeds.map((f) => [f.spec.uri, f.spec.items])),
      "each file loaded with the item count its CrawlFeed reports",
    );

    const bytes = feeds.reduce((sum, f) => sum + f.spec.bytes, 0);
    const { feedSummary, stats } = job.status;
    assert.equal(feedSummary.closed, feeds.length);
    assert.equal(feedSummary.delivered, feeds.length);
    assert.equal(feedSummary.failed, 0);
    assert.equal(feedSummary.items, PRODUCTS);
    assert.equal(feedSummary.bytes, bytes);
    assert.equal(feedSummary.display, `${feeds.length}/${feeds.length}`);
    assert.equal(stats.items, PRODUCTS);
    assert.equal(stats.pages, PRODUCTS + catalogue.pages, "every product and listing page crawled once");

    // Shards split the work by host: this one-host site is all one shard's.
    const owner = shardForHost(new URL(site.url).hostname, 2);
    assert.deepEqual([...new Set(feeds.map((f) => f.spec.shard))], [owner], "every feed from the host's shard");
  });

  step("needed nothing beyond the chart's RBAC: no request was forbidden, every Event was recorded", async () => {
    const logs = [operator?.logPath ?? "", ...pods.logs()];
    for (const log of logs) {
      const denied = readFileSync(log, "utf8")
        .split("\n")
        .filter((line) => /forbidden/i.test(line));
      assert.deepEqual(denied, [], `${log} shows a request the RBAC refused`);
    }
    const events: Any[] = JSON.parse(await k(["-n", NS, "get", "events", "-o", "json"])).items;
    const reasons = new Set(events.filter((e) => e.involvedObject.name === JOB).map((e) => e.reason));
    for (const reason of ["RunnerCreated", "CrawlCompleted", "FeedsDelivered", "CrawlSucceeded"]) {
      assert.ok(reasons.has(reason), `Event ${reason} on the CrawlJob (got ${[...reasons].join(", ")})`);
    }
  });

  step("keeps the S3 and webhook secrets out of logs, status and events", async () => {
    const { s3 } = platform();
    const texts = {
      "operator log": readFileSync(operator?.logPath ?? "", "utf8"),
      "runner logs": pods
        .logs()
        .map((f) => readFileSync(f, "utf8"))
        .join("\n"),
      "CrawlJob and CrawlFeeds": JSON.stringify({ job, feeds }),
      events: await k(["-n", NS, "get", "events", "-o", "json"]),
    };
    for (const [where, text] of Object.entries(texts)) {
      assert.ok(text.length > 0, `${where} is not empty`);
      for (const secret of [s3.secretAccessKey, WEBHOOK_SECRET, WEBHOOK_SECRET.slice("whsec_".length)]) {
        assert.ok(!text.includes(secret), `a secret appears in the ${where}`);
      }
    }
  });
});
