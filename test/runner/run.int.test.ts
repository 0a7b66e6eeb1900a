// `feedcrawl run` on the real apiserver and S3 server, with the token of the
// per-job ServiceAccount minted by TokenRequest (the test plays the kubelet:
// it writes the kubeconfig for that token and the mounted spec file, and
// starts the process with the pod's environment). Proves the per-job Role is
// enough (create CrawlFeeds, read and patch its own CrawlJob's status) and no
// wider (forbidden on another CrawlJob; no get or list of CrawlFeeds).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { CoreV1Api, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob, CrawlJobSpec } from "../../crds/schema/crawljob.ts";
import { KubeApiError } from "../../kube/errors.ts";
import { runnerRole, runnerRoleBinding, runnerServiceAccount, specSnapshot } from "../../operator/crawljob/children.ts";
import { createRunnerApi } from "../../runner/report/api.ts";
import { crawlFeedObject } from "../../runner/report/crawlfeeds.ts";
import { feedEvent, getJob, installCrds } from "../delivery/kube-helpers.ts";
import { type CatalogueServer, createCatalogue } from "../fixtures/catalogue.ts";
import { catalogueSpider } from "../operator/harness.ts";
import { writeKubeconfig } from "../platform/apiserver.ts";
import { adminKubeConfig, platform } from "../platform/env.ts";
import { createBucket, createNamespace, type Disposable, eventually, kubectl, s3Client } from "../platform/fixtures.ts";

const root = resolve(import.meta.dirname, "..", "..");
const G = { group: "feedcrawl.io", version: "v1alpha1" };

describe("feedcrawl run with the per-job ServiceAccount's token", () => {
  let admin: KubeConfig;
  let ns: Disposable;
  let bucket: Disposable;
  let site: CatalogueServer;
  let tmp: string;

  before(async () => {
    admin = adminKubeConfig();
    await installCrds();
    ns = await createNamespace("runner");
    bucket = await createBucket("runner");
    site = await createCatalogue({ products: 45, perPage: 10 }).listen({ traps: false, altHost: null });
    tmp = mkdtempSync(join(platform().workDir, "runner-"));
  });

  after(async () => {
    await site?.close();
    await bucket?.cleanup();
    await ns?.cleanup();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** Creates a CrawlJob plus its runner ServiceAccount/Role/RoleBinding (the operator's own builders). */
  async function createJob(name: string, spider: CrawlJobSpec["spider"]): Promise<CrawlJob> {
    const { s3 } = platform();
    const body: CrawlJob = {
      apiVersion: "feedcrawl.io/v1alpha1",
      kind: "CrawlJob",
      metadata: { name, namespace: ns.name },
      spec: {
        spider,
        feeds: {
          [`s3://${bucket.name}/${name}/part-%(batch_id)05d.jsonl`]: { format: "jsonlines", batchItemCount: 10 },
        },
        storage: { s3: { endpoint: s3.endpoint, region: s3.region, forcePathStyle: true } },
      },
    };
    const job = (await admin
      .makeApiClient(CustomObjectsApi)
      .createNamespacedCustomObject({ ...G, namespace: ns.name, plural: "crawljobs", body })) as CrawlJob;
    const rbac = {
      apiVersion: "v1",
      kind: "List",
      items: [runnerServiceAccount(job), runnerRole(job), runnerRoleBinding(job)],
    };
    await kubectl(["create", "-f", "-"], { input: JSON.stringify(rbac) });
    return job;
  }

  /** TokenRequest for `<job>-runner`, written as a kubeconfig file (what the kubelet mounts, in kubeconfig form). */
  async function runnerKubeconfig(job: CrawlJob): Promise<string> {
    const sa = `${job.metadata.name}-runner`;
    const token = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
      namespace: ns.name,
      name: sa,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    const file = join(tmp, `${job.metadata.name}.kubeconfig`);
    const { apiServerUrl, caFile } = platform();
    writeKubeconfig(file, apiServerUrl, caFile, `system:serviceaccount:${ns.name}:${sa}`, token.status?.token ?? "");
    return file;
  }

  /** Starts `feedcrawl run` as the pod would run it (shard 0 of 1); resolves to its exit code. */
  function startRunner(job: CrawlJob, kubeconfig: string, logName: string, env: Record<string, string> = {}) {
    const specFile = join(tmp, `${logName}-crawljob.json`);
    writeFileSync(specFile, specSnapshot(job));
    const log = openSync(join(tmp, `${logName}.log`), "a");
    const { s3 } = platform();
    const child = spawn(process.execPath, [join(root, "bin/feedcrawl.ts"), "run"], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        TMPDIR: tmp,
        KUBECONFIG: kubeconfig,
        FEEDCRAWL_SPEC: specFile,
        FEEDCRAWL_SHARD_COUNT: "1",
        JOB_COMPLETION_INDEX: "0",
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
        ...env,
      },
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
    return { child, exited, log: join(tmp, `${logName}.log`) };
  }

  async function feedsOf(job: CrawlJob): Promise<CrawlFeed[]> {
    const list = (await admin.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({
      ...G,
      namespace: ns.name,
      plural: "crawlfeeds",
      labelSelector: `feedcrawl.io/crawljob=${job.metadata.name}`,
    })) as { items: CrawlFeed[] };
    return list.items;
  }

  /** Every stored batch of `prefix` has its CrawlFeed with the object's sha256 and size; returns the item total. */
  async function assertStoredAndReported(job: CrawlJob): Promise<number> {
    const client = s3Client();
    try {
      const listed = await client.send(
        new ListObjectsV2Command({ Bucket: bucket.name, Prefix: `${job.metadata.name}/part-` }),
      );
      const feeds = await feedsOf(job);
      const objects = listed.Contents ?? [];
      assert.ok(objects.length > 0, "some batches were stored");
      assert.equal(feeds.length, objects.length, "one CrawlFeed per stored object");
      let items = 0;
      for (const object of objects) {
        const uri = `s3://${bucket.name}/${object.Key}`;
        const feed = feeds.find((f) => f.spec.uri === uri);
        assert.ok(feed, `a CrawlFeed for ${uri}`);
        const got = await client.send(new GetObjectCommand({ Bucket: bucket.name, Key: object.Key }));
        const bytes = Buffer.from(await got.Body!.transformToByteArray());
        assert.equal(feed.spec.sha256, createHash("sha256").update(bytes).digest("hex"));
        assert.equal(feed.spec.bytes, bytes.length);
        assert.equal(feed.spec.items, bytes.toString("utf8").trim().split("\n").length);
        assert.deepEqual(feed.metadata.labels, {
          "feedcrawl.io/crawljob": job.metadata.name,
          "feedcrawl.io/shard": "0",
        });
        assert.equal(feed.metadata.ownerReferences?.[0]?.uid, job.metadata.uid);
        items += feed.spec.items;
      }
      return items;
    } finally {
      client.destroy();
    }
  }

  it("the runner's token may create CrawlFeeds, read and patch its own CrawlJob; no CrawlFeed get or list, nothing on another CrawlJob", async () => {
    const job = await createJob("rbac", catalogueSpider(site.url));
    const other = await createJob("rbac-other", catalogueSpider(site.url));
    const kc = new KubeConfig();
    kc.loadFromFile(await runnerKubeconfig(job));
    const api = createRunnerApi(kc);
    const ref = { name: job.metadata.name!, namespace: ns.name, uid: job.metadata.uid! };

    const created = crawlFeedObject(ref, 0, feedEvent(`s3://${bucket.name}/rbac/part-00001.jsonl`));
    await api.createFeed(created);
    await api.patchJobStatus(ns.name, "rbac", { shardStats: { "0": { items: 7 } } });
    await api.patchJobStatus(ns.name, "rbac", { shardProgress: { "0": { lastBatchIds: { tpl: 3 } } } });
    const own = await api.getJob(ns.name, "rbac");
    assert.equal(own?.metadata.uid, job.metadata.uid, "the runner reads its own CrawlJob");
    assert.equal(own?.status?.shardStats?.["0"]?.items, 7);
    assert.deepEqual(own?.status?.shardProgress, { "0": { lastBatchIds: { tpl: 3 } } });

    // No get, no list of CrawlFeeds: not even its own, so never another job's.
    const objects = kc.makeApiClient(CustomObjectsApi);
    for (const labelSelector of ["feedcrawl.io/crawljob=rbac", undefined]) {
      await assert.rejects(
        objects.listNamespacedCustomObject({ ...G, namespace: ns.name, plural: "crawlfeeds", labelSelector }),
        (err: { code?: number }) => err.code === 403,
        `listing CrawlFeeds (${labelSelector ?? "all"}) is forbidden`,
      );
    }
    await assert.rejects(
      objects.getNamespacedCustomObject({
        ...G,
        namespace: ns.name,
        plural: "crawlfeeds",
        name: created.metadata.name!,
      }),
      (err: { code?: number }) => err.code === 403,
      "getting a CrawlFeed is forbidden",
    );

    await assert.rejects(
      api.patchJobStatus(ns.name, other.metadata.name!, { shardStats: { "0": { items: 1 } } }),
      (err) => {
        assert.ok(err instanceof KubeApiError);
        assert.equal(err.code, 403);
        return true;
      },
    );
    await assert.rejects(
      kc
        .makeApiClient(CustomObjectsApi)
        .getNamespacedCustomObject({ ...G, namespace: ns.name, plural: "crawljobs", name: "rbac-other" }),
      (err: { code?: number }) => err.code === 403,
    );
    await assert.rejects(
      kc.makeApiClient(CustomObjectsApi).patchNamespacedCustomObject({
        ...G,
        namespace: ns.name,
        plural: "crawljobs",
        name: "rbac",
        body: [{ op: "replace", path: "/spec/suspend", value: true }],
      }),
      (err: { code?: number }) => err.code === 403,
      "the runner cannot edit its CrawlJob's spec",
    );
  });

  it("crawls, stores every batch, reports one CrawlFeed each and the stats, exits 0; a rerun resumes the numbering", async () => {
    const job = await createJob("crawl", catalogueSpider(site.url));
    const kubeconfig = await runnerKubeconfig(job);
    const run = startRunner(job, kubeconfig, "crawl-1");
    assert.equal(await run.exited, 0, `feedcrawl run failed; see ${run.log}`);
    const items = await assertStoredAndReported(job);
    assert.equal(items, 45, "every product in a reported file");
    const status = (await getJob(admin, ns.name, "crawl")).status;
    assert.equal(status?.shardStats?.["0"]?.items, 45);
    assert.equal(status?.stats?.items, 45);
    const firstIds = (await feedsOf(job)).map((f) => f.spec.batchId);
    const template = Object.keys(job.spec.feeds!)[0]!;
    assert.deepEqual(status?.shardProgress, { "0": { lastBatchIds: { [template]: Math.max(...firstIds) } } });

    // The shard finished: a rerun (a Job retry) finds its state finished and reports nothing.
    const rerun = startRunner(job, kubeconfig, "crawl-rerun");
    assert.equal(await rerun.exited, 0, `rerun failed; see ${rerun.log}`);
    assert.equal((await feedsOf(job)).length, firstIds.length, "a finished shard reports nothing more");

    // The crash window: the last two CrawlFeeds were created but their status
    // patches never landed. The rerun resumes from the older id, finds those
    // objects taken and stores under the next ids: nothing lost, nothing twice.
    const older = Math.max(...firstIds) - 2;
    await kubectl([
      "patch",
      "crawljobs.feedcrawl.io",
      "crawl",
      "-n",
      ns.name,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { shardProgress: { "0": { lastBatchIds: { [template]: older } } } } }),
    ]);
    // Without a crawl state the shard starts again from its start URLs.
    const again = startRunner(job, kubeconfig, "crawl-2", { FEEDCRAWL_SHARD_STATE: "off" });
    assert.equal(await again.exited, 0, `second feedcrawl run failed; see ${again.log}`);
    assert.equal(await assertStoredAndReported(job), 90, "both runs' items, each in one reported file");
    const ids = (await feedsOf(job)).map((f) => f.spec.batchId).sort((a, b) => a - b);
    assert.equal(ids.length, firstIds.length * 2);
    assert.deepEqual(ids, [...new Set(ids)], "no batch id reused");
    assert.equal(Math.min(...ids.slice(firstIds.length)), Math.max(...firstIds) + 1);
    assert.deepEqual((await getJob(admin, ns.name, "crawl")).status?.shardProgress, {
      "0": { lastBatchIds: { [template]: Math.max(...ids) } },
    });
  });

  it("on SIGTERM stops the crawl, stores and reports the open batch, exits 143", async () => {
    const slowSite = await createCatalogue({ products: 400, perPage: 10 }).listen({ traps: false, altHost: null });
    try {
      const job = await createJob(
        "sigterm",
        catalogueSpider(slowSite.url, { concurrentRequests: 1, downloadDelayMs: 20, randomizeDownloadDelay: false }),
      );
      const run = startRunner(job, await runnerKubeconfig(job), "sigterm");
      await eventually("the first CrawlFeed of the slow crawl", async () => (await feedsOf(job)).length > 0, 150_000);
      run.child.kill("SIGTERM");
      assert.equal(await run.exited, 143, `feedcrawl run did not stop cleanly after SIGTERM; see ${run.log}`);
      const items = await assertStoredAndReported(job);
      assert.ok(items < 400, "the crawl stopped early");
      assert.equal(
        (await getJob(admin, ns.name, "sigterm")).status?.shardStats?.["0"]?.items,
        items,
        "every item counted is in a reported file",
      );
    } finally {
      await slowSite.close();
    }
  });
});
