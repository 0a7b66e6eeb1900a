// Delta crawls in a runner pod (runShard) on the real S3 server: three runs a
// CrawlSchedule would make (CrawlJobs run-1..3, labelled with the schedule),
// their delta state one object in the feed bucket keyed by the schedule's name.
// The second run over the unchanged catalogue gets 304s for every product page,
// stores no feed file and reports no CrawlFeed (so the operator calls no
// webhook); after 5 pages change, the third run delivers exactly those 5 items.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { S3Client } from "@aws-sdk/client-s3";
import { pino } from "pino";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { CRAWLSCHEDULE_LABEL } from "../../crds/schema/names.ts";
import { deltaStore, runShard, type SpecSnapshot } from "../../runner/cli/run.ts";
import { Crawler } from "../../runner/crawler.ts";
import { DeltaRun } from "../../runner/delta/delta-run.ts";
import { createFeedExporter } from "../../runner/feeds/exporter.ts";
import type { RunnerApi } from "../../runner/report/api.ts";
import { createBucket, directClient, dropBucket, getObject, listKeys } from "../feeds/s3-helpers.ts";
import { type CatalogueServer, createCatalogue } from "../fixtures/catalogue.ts";
import { platform } from "../platform/env.ts";
import { booksSpider } from "./helpers.ts";

const logger = pino({ level: "silent" });
const catalogue = createCatalogue({ products: 40, perPage: 20, seed: 9 });
const tmp = mkdtempSync(join(tmpdir(), "delta-s3-"));
let site: CatalogueServer;
let s3: S3Client;
let bucket: string;

before(async () => {
  const p = platform().s3;
  // The exporter and the delta store build their S3 client the way a pod does: credentials from the env.
  process.env.AWS_ACCESS_KEY_ID = p.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = p.secretAccessKey;
  s3 = directClient();
  bucket = await createBucket(s3, "delta");
  site = await catalogue.listen({ traps: false, altHost: null, validators: true });
});
after(async () => {
  await site?.close();
  await dropBucket(s3, bucket);
  rmSync(tmp, { recursive: true, force: true });
});

/** The CrawlFeeds a run reports (each one a webhook the operator would call). */
class FeedsApi implements RunnerApi {
  readonly feeds: CrawlFeed[] = [];
  readonly snapshot: SpecSnapshot;
  constructor(snapshot: SpecSnapshot) {
    this.snapshot = snapshot;
  }
  async createFeed(feed: CrawlFeed) {
    this.feeds.push(feed);
  }
  async getJob(): Promise<CrawlJob> {
    const { metadata, spec } = this.snapshot;
    return { apiVersion: "feedcrawl.io/v1alpha1", kind: "CrawlJob", metadata, spec, status: {} };
  }
  async patchJobStatus() {}
}

/** One scheduled run: a CrawlJob of schedule "nightly", its own name, the same feed folder. */
async function scheduledRun(
  job: string,
): Promise<{ feeds: CrawlFeed[]; items: Array<{ url: string; stock: number }> }> {
  const spider = booksSpider(site.url, { settings: { delta: { enabled: true } } });
  const p = platform().s3;
  const snapshot: SpecSnapshot = {
    apiVersion: "feedcrawl.io/v1alpha1",
    kind: "CrawlJob",
    metadata: { name: job, namespace: "shop", uid: `uid-${job}`, labels: { [CRAWLSCHEDULE_LABEL]: "nightly" } },
    spec: {
      spider,
      feeds: { [`s3://${bucket}/books/%(job)s-%(batch_id)05d.jsonl`]: { format: "jsonlines" } },
      storage: { s3: { endpoint: p.endpoint, region: p.region, forcePathStyle: true } },
    },
  } as SpecSnapshot;
  const env = { specPath: "/unused", shard: 0, shardCount: 1 };
  const store = await deltaStore(snapshot, env, logger);
  assert.ok(store, "a scheduled CrawlJob with an S3 feed has a delta store");
  assert.equal(store.where, `s3://${bucket}/books/.feedcrawl-delta/shop/nightly/shard-0-of-1.json.gz`);
  const api = new FeedsApi(snapshot);
  const code = await runShard({
    env,
    snapshot,
    api,
    logger,
    signal: new AbortController().signal,
    reportIntervalMs: 60_000,
    createCrawler: (opts) => new Crawler(opts),
    createExporter: (opts) => createFeedExporter({ ...opts, spool: { dir: join(tmp, `spool-${job}`) } }),
    delta: await DeltaRun.open(store, spider, logger),
  });
  assert.equal(code, 0);
  const items = [];
  for (const key of await listKeys(s3, bucket, `books/${job}-`)) {
    const { body } = await getObject(s3, bucket, key);
    items.push(
      ...body
        .toString("utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
    );
  }
  return { feeds: api.feeds, items };
}

test("scheduled runs: the unchanged site stores no file and reports no CrawlFeed; 5 changed pages deliver exactly 5 items", async () => {
  const first = await scheduledRun("run-1");
  assert.equal(first.items.length, 40);
  assert.equal(first.feeds.length, 1);

  const second = await scheduledRun("run-2");
  assert.equal(site.notModified(), 40, "every product page answered 304");
  assert.deepEqual(second.items, []);
  assert.deepEqual(second.feeds, [], "no CrawlFeed, so no webhook");
  assert.deepEqual(await listKeys(s3, bucket, "books/run-2-"), [], "no feed file");

  const changed = [2, 11, 23, 30, 39];
  site.change(changed);
  const third = await scheduledRun("run-3");
  assert.equal(third.feeds.length, 1);
  const expected = changed.map((id) => {
    const f = catalogue.expectedItem(id, site.url).fields as { url: string; stock: number };
    return `${f.url} ${f.stock + 1}`;
  });
  assert.deepEqual(third.items.map((i) => `${i.url} ${i.stock}`).sort(), expected.sort());
});
