// `feedcrawl run` (runShard) with a checkpointed crawl state, the way a runner
// pod without Redis resumes: pod 1 is stopped mid-crawl (SIGTERM: exit 143),
// pod 2 starts on an empty disk, restores the state from the checkpoint and
// finishes; pod 3 finds the shard finished and exits 0 at once. The real
// crawler and feed exporter crawl a loopback site; the CrawlFeeds go to an
// in-memory API (AlreadyExists on a second create, like the apiserver), the
// checkpoint to a folder (the S3 checkpoint store is tested in
// test/feeds/exactly-once-s3.int.test.ts). The reported files hold every item once.
import assert from "node:assert/strict";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pino } from "pino";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob, CrawlJobStatus } from "../../crds/schema/crawljob.ts";
import { FRONTIER_REDIS_URL_ENV } from "../../crds/schema/names.ts";
import { KubeApiError } from "../../kube/errors.ts";
import { main, runShard, type SpecSnapshot } from "../../runner/cli/run.ts";
import { Crawler } from "../../runner/crawler.ts";
import { createFeedExporter } from "../../runner/feeds/exporter.ts";
import type { RunnerApi } from "../../runner/report/api.ts";
import { CheckpointedState, type CheckpointStore } from "../../runner/state/checkpoint.ts";
import { RedisState } from "../../runner/state/redis-state.ts";
import { startRedis } from "../platform/redis.ts";
import { treeSite, treeSpider, treeTruth } from "./crawl-state-helpers.ts";
import type { TestSite } from "./helpers.ts";

const logger = pino({ level: "silent" });
const PAGES = 120;
let site: TestSite;
let tmp: string;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "run-shard-state-"));
  site = await treeSite(PAGES);
});
after(async () => {
  await site?.close();
  await rm(tmp, { recursive: true, force: true });
});

/** The CrawlJob API as the runner sees it: CrawlFeeds by name, the status merge-patched one level deep. */
class MemoryApi implements RunnerApi {
  readonly feeds = new Map<string, CrawlFeed>();
  status: CrawlJobStatus = {};
  readonly snapshot: SpecSnapshot;
  constructor(snapshot: SpecSnapshot) {
    this.snapshot = snapshot;
  }
  async createFeed(feed: CrawlFeed) {
    if (this.feeds.has(feed.metadata.name as string)) throw new KubeApiError(409, "AlreadyExists", "exists");
    this.feeds.set(feed.metadata.name as string, structuredClone(feed));
  }
  async getJob(): Promise<CrawlJob> {
    const { metadata, spec } = this.snapshot;
    return {
      apiVersion: "feedcrawl.io/v1alpha1",
      kind: "CrawlJob",
      metadata,
      spec,
      status: structuredClone(this.status),
    };
  }
  async patchJobStatus(_ns: string, _name: string, patch: Record<string, unknown>) {
    const progress = (patch as CrawlJobStatus).shardProgress;
    if (progress) {
      const merged = structuredClone(this.status.shardProgress ?? {}) as Record<string, { lastBatchIds: object }>;
      for (const [shard, p] of Object.entries(progress))
        merged[shard] = { lastBatchIds: { ...merged[shard]?.lastBatchIds, ...p.lastBatchIds } };
      this.status = { ...this.status, shardProgress: merged as CrawlJobStatus["shardProgress"] };
    }
  }
}

/** A checkpoint kept as a file in a folder (what a bucket is to a pod). */
function folderStore(file: string): CheckpointStore {
  return {
    uri: `file://${file}`,
    put: (from) => copyFile(from, file),
    get: (to) =>
      copyFile(file, to).then(
        () => true,
        () => false,
      ),
  };
}

function pod(api: MemoryApi, n: number, signal: AbortSignal) {
  const snapshot = api.snapshot;
  return runShard({
    env: { specPath: "/unused", shard: 0, shardCount: 1 },
    snapshot,
    api,
    logger,
    signal,
    reportIntervalMs: 60_000,
    createCrawler: (opts) => new Crawler(opts),
    createExporter: (opts) => createFeedExporter({ ...opts, spool: { dir: join(tmp, `spool-${n}`) } }),
    state: new CheckpointedState({
      dir: join(tmp, `pod-${n}`), // every pod starts on an empty disk
      identity: snapshot.spec.spider.name,
      store: folderStore(join(tmp, "checkpoint.sqlite")),
      logger,
    }),
  });
}

test("a new pod restores the shard's state from its checkpoint and delivers every item exactly once", async () => {
  const out = join(tmp, "out");
  const snapshot: SpecSnapshot = {
    apiVersion: "feedcrawl.io/v1alpha1",
    kind: "CrawlJob",
    metadata: { name: "tree", namespace: "crawl", uid: "0000-1111", generation: 1 },
    spec: {
      spider: treeSpider("tree", site.url, { concurrentRequests: 4, downloadDelayMs: 10 }),
      feeds: { [`file://${out}/tree-%(batch_id)05d.jsonl`]: { format: "jsonlines", batchItemCount: 4 } },
    },
  } as SpecSnapshot;
  const api = new MemoryApi(snapshot);

  const stop = new AbortController();
  const first = pod(api, 1, stop.signal);
  await new Promise((r) => setTimeout(r, 400));
  stop.abort();
  assert.equal(await first, 143, "pod 1 stopped mid-crawl");
  const afterFirst = api.feeds.size;
  assert.ok(afterFirst > 0 && afterFirst < PAGES / 4, `pod 1 delivered part of the crawl (${afterFirst} files)`);

  assert.equal(await pod(api, 2, new AbortController().signal), 0, "pod 2 finished the crawl");
  const feedsAfter = api.feeds.size;
  assert.equal(await pod(api, 3, new AbortController().signal), 0, "pod 3: already finished");
  assert.equal(api.feeds.size, feedsAfter, "pod 3 reported nothing");

  const lines: string[] = [];
  for (const feed of api.feeds.values())
    lines.push(...(await readFile(feed.spec.uri.slice("file://".length), "utf8")).split("\n").filter(Boolean));
  assert.deepEqual(lines.sort(), treeTruth(PAGES), "the reported files hold every item once");
});

function treeSnapshot(name: string, out: string, frontier?: SpecSnapshot["spec"]["frontier"]): SpecSnapshot {
  return {
    apiVersion: "feedcrawl.io/v1alpha1",
    kind: "CrawlJob",
    metadata: { name, namespace: "crawl", uid: `uid-${name}`, generation: 1 },
    spec: {
      spider: treeSpider(name, site.url, { concurrentRequests: 4, downloadDelayMs: 10 }),
      feeds: { [`file://${out}/tree-%(worker)s-%(batch_id)05d.jsonl`]: { format: "jsonlines", batchItemCount: 4 } },
      ...(frontier ? { frontier } : {}),
    },
  } as SpecSnapshot;
}

test("spec.frontier.redis: Redis lost the crawl between two pods: the next pod exits 2 naming the CrawlJob, crawling nothing", async () => {
  const redis = await startRedis({ workDir: join(tmp, "redis") });
  try {
    const api = new MemoryApi(treeSnapshot("lost", join(tmp, "out-lost"), { redis: { urlSecretRef: { name: "r" } } }));
    const lines: string[] = [];
    const podLogger = pino({ level: "info" }, { write: (l: string) => void lines.push(l) });
    const redisPod = (signal: AbortSignal) =>
      runShard({
        env: { specPath: "/unused", shard: 0, shardCount: 1 },
        snapshot: api.snapshot,
        api,
        logger: podLogger,
        signal,
        reportIntervalMs: 60_000,
        createCrawler: (opts) => new Crawler(opts),
        createExporter: (opts) => createFeedExporter({ ...opts, spool: { dir: join(tmp, "spool-lost") } }),
        state: new RedisState({ url: redis.url, job: "crawl/lost/uid", worker: "0", logger: podLogger }),
      });
    const lastError = () => JSON.parse(lines.filter((l) => l.includes('"level":50')).at(-1) ?? "{}") as object;
    const first = redisPod(new AbortController().signal);
    while (api.feeds.size === 0) await new Promise((r) => setTimeout(r, 20));
    await redis.stop(); // no persistence: the crawl state is gone mid-crawl
    await redis.start();
    assert.equal(await first, 2, "exit 2: the Job fails instead of retrying into a new crawl");
    // The pod's termination message is the log's last 2048 bytes: the last line must fit and say it all.
    const lastLine = lines.at(-1) ?? "";
    assert.ok(Buffer.byteLength(lastLine) < 2048, `last line of ${Buffer.byteLength(lastLine)} bytes`);
    const failed = JSON.parse(lastLine) as { msg?: string; err?: string };
    assert.equal(failed.msg, "Runner of CrawlJob crawl/lost shard 0 failed");
    assert.match(failed.err ?? "", /^the crawl failed: Redis lost the crawl state/);
    const delivered = api.feeds.size;
    // A pod started after the loss: its shard reported batches, so an empty Redis is a lost crawl, not a new one.
    assert.equal(await redisPod(new AbortController().signal), 2);
    assert.equal(api.feeds.size, delivered, "nothing crawled again");
    assert.match(JSON.stringify(lastError()), /Redis lost the crawl state of CrawlJob crawl\/lost shard 0/);
  } finally {
    await redis.stop();
  }
});

test("spec.frontier.redis without the URL in the runner's env: a configuration error, exit 2", async () => {
  const file = join(tmp, "spec-no-url.json");
  await writeFile(
    file,
    JSON.stringify(treeSnapshot("nourl", join(tmp, "out-nourl"), { redis: { urlSecretRef: { name: "r" } } })),
  );
  const kubeconfig = join(tmp, "kubeconfig.yaml");
  await writeFile(
    kubeconfig,
    "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n" +
      "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
  );
  const saved = { ...process.env };
  process.env.FEEDCRAWL_SPEC = file;
  process.env.KUBECONFIG = kubeconfig;
  delete process.env[FRONTIER_REDIS_URL_ENV];
  const out: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string) => out.push(String(chunk)) > 0) as typeof process.stdout.write;
  try {
    assert.equal(await main([]), 2);
  } finally {
    process.stdout.write = write;
    process.env = saved;
  }
  assert.match(out.join(""), /FEEDCRAWL_FRONTIER_REDIS_URL is not set: spec.frontier.redis of CrawlJob nourl/);
});
