// End to end on the operator's side, with the real `feedcrawl run`: the
// operator (in-process) turns a CrawlJob against the fixture site into an
// Indexed Job; the test plays the kubelet and the Job controller
// (test/operator/kubelet.ts) by starting `node bin/feedcrawl.ts run` with
// exactly the env, args and mounted files of the Job's pod template read back
// from the API and the per-job ServiceAccount's token; the runner crawls,
// uploads batches to the S3 server, creates CrawlFeeds; the operator delivers
// each to a receiver that verifies every signature.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { KubeClient } from "../../kube/client.ts";
import { CRAWLFEEDS, JOBS } from "../../kube/resources.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { type Disposable, eventually, s3Client } from "../platform/fixtures.ts";
import {
  type CrawlBed,
  crawlBedSpec,
  createCrawlJob,
  readCrawlJob,
  startCrawlBed,
  tempDir,
  untilCondition,
} from "./harness.ts";
import { playJob } from "./kubelet.ts";
import type { Receiver } from "./receiver.ts";

const PRODUCTS = 45;

describe("a CrawlJob against the fixture site with the real feedcrawl run (kubelet played by the test)", () => {
  const kc = adminKubeConfig();
  const client = new KubeClient(kc);
  const workDir = tempDir("op-runner");
  let ns: Disposable;
  let bucket: Disposable;
  let receiver: Receiver;

  let bed: CrawlBed | undefined;
  before(async () => {
    bed = await startCrawlBed(kc, client, "op-runner", PRODUCTS, workDir);
    ({ ns, bucket, receiver } = bed);
  });

  after(async () => {
    await bed?.close();
    await client.close();
  });

  test("Pending → Running → Succeeded; one signed webhook per CrawlFeed; every item stored", async () => {
    await createCrawlJob(client, ns.name, "books", crawlBedSpec(bed!));
    await eventually("the runner Job", () => client.getOrUndefined(JOBS, ns.name, "books-runner"));
    await eventually(
      "phase Pending",
      async () => (await readCrawlJob(client, ns.name, "books")).status?.phase === "Pending",
    );

    const played = await playJob({ admin: kc, namespace: ns.name, jobName: "books-runner", workDir });
    assert.deepEqual(played.exitCodes, { 0: [0] }, `pod log: ${played.pods.map((p) => p.logPath).join(", ")}`);

    const done = await untilCondition(client, ns.name, "books", "Succeeded", "True", 60_000);
    const feeds = await client.list(CRAWLFEEDS, { namespace: ns.name, labelSelector: "feedcrawl.io/crawljob=books" });
    assert.ok(feeds.items.length >= Math.ceil(PRODUCTS / 10), `${feeds.items.length} feeds`);
    assert.equal(done.status?.feedSummary?.items, PRODUCTS);
    assert.equal(done.status?.feedSummary?.display, `${feeds.items.length}/${feeds.items.length}`);
    assert.equal(done.status?.stats?.items, PRODUCTS);
    assert.equal(receiver.badSignatures, 0);
    assert.equal(receiver.distinctIds().size, feeds.items.length);

    const objects = await s3Client().send(new ListObjectsV2Command({ Bucket: bucket.name }));
    const keys = (objects.Contents ?? []).map((o) => o.Key).filter((k) => k?.endsWith(".jsonl"));
    assert.equal(keys.length, feeds.items.length, "one CrawlFeed per stored object");
  });
});
