// `feedcrawl run`'s orchestration with fakes of the crawl engine, the feed
// exporter and the runner's API calls (the real ones are exercised by
// run.int.test.ts against the real apiserver): CrawlFeeds created once per
// stored file, retries, SIGTERM drains and reports, exit codes.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { pino } from "pino";
import type { CrawlFeed, FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob, CrawlJobStatus, CrawlStats } from "../../crds/schema/crawljob.ts";
import { KubeApiError } from "../../kube/errors.ts";
import {
  type CreateCrawler,
  type CreateExporter,
  type ExporterLike,
  loadSnapshot,
  readShardEnv,
  runShard,
  type SpecSnapshot,
} from "../../runner/cli/run.ts";
import type { Item, ItemSink } from "../../runner/item.ts";
import type { RunnerApi } from "../../runner/report/api.ts";
import { crawlFeedName } from "../../runner/report/crawlfeeds.ts";

const logger = pino({ level: "silent" });
const UID = "11111111-2222-3333-4444-555555555555";
const TEMPLATE = "s3://bucket/%(name)s/part-%(batch_id)05d.jsonl";
const snapshot: SpecSnapshot = {
  apiVersion: "feedcrawl.io/v1alpha1",
  kind: "CrawlJob",
  metadata: { name: "books", namespace: "crawl", uid: UID, generation: 1 },
  spec: {
    spider: { name: "books", startUrls: ["http://127.0.0.1:1/"] },
    feeds: { [TEMPLATE]: { format: "jsonlines", batchItemCount: 2 } },
  },
};

/** RFC 7386 JSON merge patch (what the apiserver applies to a merge-patched status). */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return structuredClone(patch);
  const out: Record<string, unknown> =
    typeof target === "object" && target !== null && !Array.isArray(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** An in-memory RunnerApi that can fail the first N calls of each kind. */
class FakeApi implements RunnerApi {
  feeds = new Map<string, CrawlFeed>();
  patches: Record<string, unknown>[] = [];
  /** The CrawlJob's status, merge-patched like the apiserver does. */
  status: CrawlJobStatus = {};
  uid = UID;
  createCalls = 0;
  failCreates: Error[] = [];
  failPatches: Error[] = [];
  async createFeed(feed: CrawlFeed) {
    this.createCalls++;
    const failure = this.failCreates.shift();
    if (failure) throw failure;
    if (this.feeds.has(feed.metadata.name!)) throw new KubeApiError(409, "AlreadyExists", "exists");
    this.feeds.set(feed.metadata.name!, structuredClone(feed));
  }
  async getJob(namespace: string, name: string): Promise<CrawlJob> {
    return {
      apiVersion: "feedcrawl.io/v1alpha1",
      kind: "CrawlJob",
      metadata: { name, namespace, uid: this.uid },
      spec: snapshot.spec,
      status: structuredClone(this.status),
    };
  }
  async patchJobStatus(_ns: string, _name: string, status: Record<string, unknown>) {
    const failure = this.failPatches.shift();
    if (failure) throw failure;
    this.patches.push(structuredClone(status));
    this.status = mergePatch(this.status, status) as CrawlJobStatus;
  }
  /** The stats patches (the shard's counters), in order. */
  get statsPatches(): Record<string, unknown>[] {
    return this.patches.filter((p) => "shardStats" in p);
  }
}

/** Batches of `batchItemCount` items; calls onFeedClosed (awaited) after "storing" each. */
function fakeExporter(
  opts: { failClose?: boolean; resumeSeen?: (r: Record<string, number>) => void } = {},
): CreateExporter {
  return async ({ onFeedClosed, resumeAfter, params }) => {
    opts.resumeSeen?.(resumeAfter);
    let batch = resumeAfter[TEMPLATE] ?? 0;
    let open: Item[] = [];
    const closedFeeds: FeedClosed[] = [];
    const flush = async () => {
      if (open.length === 0) return;
      batch++;
      const ev: FeedClosed = {
        uri: `s3://bucket/${params.name}/part-${String(batch).padStart(5, "0")}.jsonl`,
        feed: TEMPLATE,
        batchId: batch,
        shard: params.shard,
        format: "jsonlines",
        items: open.length,
        bytes: 100 * open.length,
        sha256: "b".repeat(64),
        closedAt: new Date().toISOString(),
      };
      open = [];
      await onFeedClosed(ev);
      closedFeeds.push(ev);
    };
    const exporter: ExporterLike = {
      closedFeeds,
      async write(item) {
        open.push(item);
        if (open.length >= 2) await flush();
      },
      async close() {
        if (opts.failClose) throw new Error("S3 said no");
        await flush();
      },
    };
    return exporter;
  };
}

/** Writes `items` items (one per tick) unless stopped; closes the sink like the real engine. */
function fakeCrawler(
  items: number,
  onStart?: () => void,
): { create: CreateCrawler; stopped: () => string | undefined } {
  let stoppedWith: string | undefined;
  const create: CreateCrawler = ({ sink }: { sink: ItemSink }) => {
    const counters: CrawlStats = {
      requests: 0,
      responses: 0,
      pages: 0,
      items: 0,
      itemsDropped: 0,
      errors: 0,
      bytes: 0,
    };
    return {
      stats: { toStatus: () => ({ ...counters }) },
      stop(reason: string) {
        stoppedWith = reason;
      },
      async run() {
        onStart?.();
        for (let i = 0; i < items && !stoppedWith; i++) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          counters.pages++;
          counters.items++;
          await sink.write({ type: "product", fields: { i } });
        }
        const reason = stoppedWith ?? "finished";
        await sink.close(reason);
        return { reason };
      },
    };
  };
  return { create, stopped: () => stoppedWith };
}

const env = { specPath: "/unused", shard: 0, shardCount: 1 };
const fastRetry = { attempts: 4, baseMs: 1, capMs: 5 };

/** runShard with this file's fakes; each test overrides what it is about. */
const shard = (o: Partial<Parameters<typeof runShard>[0]> & { api: RunnerApi }) =>
  runShard({
    env,
    snapshot,
    logger,
    createCrawler: fakeCrawler(2).create,
    createExporter: fakeExporter(),
    signal: new AbortController().signal,
    reportRetry: fastRetry,
    ...o,
  });

describe("runShard", () => {
  it("creates one CrawlFeed per stored file, owned and labelled, and reports stats; exit 0", async () => {
    const api = new FakeApi();
    const crawler = fakeCrawler(5);
    const code = await shard({
      api,
      createCrawler: crawler.create,
    });
    assert.equal(code, 0);
    assert.equal(api.feeds.size, 3);
    const first = api.feeds.get(crawlFeedName("books", "s3://bucket/books/part-00001.jsonl"))!;
    assert.match(first.metadata.name!, /^books-[0-9a-f]{10}$/);
    assert.deepEqual(first.metadata.labels, { "feedcrawl.io/crawljob": "books", "feedcrawl.io/shard": "0" });
    assert.deepEqual(first.metadata.ownerReferences, [
      {
        apiVersion: "feedcrawl.io/v1alpha1",
        kind: "CrawlJob",
        name: "books",
        uid: UID,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    assert.equal(first.spec.items, 2);
    const last = api.statsPatches.at(-1) as { shardStats: Record<string, CrawlStats>; stats: CrawlStats };
    assert.equal(last.shardStats["0"]?.items, 5);
    assert.equal(last.stats.items, 5, "a single shard also writes status.stats");
  });

  it("retries transient API errors and takes AlreadyExists as success", async () => {
    const api = new FakeApi();
    api.failCreates = [
      new KubeApiError(503, "ServiceUnavailable", "busy"),
      // What undici's fetch throws when the connection drops.
      new TypeError("fetch failed", { cause: Object.assign(new Error("reset"), { code: "ECONNRESET" }) }),
    ];
    // A previous pod already reported batch 1 under the same name.
    const code = await shard({ api });
    assert.equal(code, 0);
    assert.equal(api.createCalls, 3);
    assert.equal(api.feeds.size, 1);

    const again = await shard({
      api,
      createExporter: async (o) => fakeExporter()({ ...o, resumeAfter: {} }),
    });
    assert.equal(again, 0, "the same file reported twice is AlreadyExists = success");
    assert.equal(api.feeds.size, 1);
  });

  it("records its last batch id in status.shardProgress and resumes after it, from its own shard's entry only", async () => {
    const api = new FakeApi();
    await shard({
      api,
      createCrawler: fakeCrawler(4).create,
    });
    assert.deepEqual(api.status.shardProgress, { "0": { lastBatchIds: { [TEMPLATE]: 2 } } });
    // Another shard's progress must not count.
    api.status.shardProgress = { ...api.status.shardProgress, "1": { lastBatchIds: { [TEMPLATE]: 9 } } };
    let seen: Record<string, number> | undefined;
    const code = await shard({
      api,
      createExporter: fakeExporter({ resumeSeen: (r) => (seen = r) }),
    });
    assert.equal(code, 0);
    assert.deepEqual(seen, { [TEMPLATE]: 2 });
    assert.ok(api.feeds.has(crawlFeedName("books", "s3://bucket/books/part-00003.jsonl")));
    assert.deepEqual(api.status.shardProgress, {
      "0": { lastBatchIds: { [TEMPLATE]: 3 } },
      "1": { lastBatchIds: { [TEMPLATE]: 9 } },
    });
  });

  it("does not start when its CrawlJob is gone or was replaced by another of the same name", async () => {
    for (const broken of [
      (api: FakeApi) => (api.uid = "another-uid"),
      (api: FakeApi) => (api.getJob = async () => undefined as unknown as CrawlJob),
      (api: FakeApi) => (api.getJob = async () => Promise.reject(new KubeApiError(403, "Forbidden", "no"))),
    ]) {
      const api = new FakeApi();
      broken(api);
      const code = await shard({ api });
      assert.equal(code, 1);
      assert.equal(api.createCalls, 0);
    }
  });

  it("a progress patch that fails for good is not fatal: the CrawlFeed is reported, the next one records", async () => {
    const api = new FakeApi();
    api.failPatches = [new KubeApiError(403, "Forbidden", "no")];
    const code = await shard({
      api,
      createCrawler: fakeCrawler(4).create,
    });
    assert.equal(code, 0);
    assert.equal(api.feeds.size, 2);
    assert.deepEqual(api.status.shardProgress, { "0": { lastBatchIds: { [TEMPLATE]: 2 } } });
  });

  it("on SIGTERM stops the crawl, closes and reports the open batch, exit 143 (the shard must run again)", async () => {
    const api = new FakeApi();
    const controller = new AbortController();
    const crawler = fakeCrawler(1000, () => setTimeout(() => controller.abort(), 40));
    const code = await shard({
      api,
      createCrawler: crawler.create,
      signal: controller.signal,
    });
    assert.equal(code, 143);
    assert.equal(crawler.stopped(), "shutdown");
    const items = [...api.feeds.values()].reduce((n, f) => n + f.spec.items, 0);
    const final = api.statsPatches.at(-1) as { shardStats: Record<string, CrawlStats> };
    assert.ok(items > 0 && items < 1000);
    assert.equal(items, final.shardStats["0"]?.items, "every written item is in a reported file");
  });

  it("exits non-zero when a CrawlFeed cannot be created (forbidden)", async () => {
    const api = new FakeApi();
    api.failCreates = [new KubeApiError(403, "Forbidden", "no")];
    const code = await shard({ api });
    assert.equal(code, 1);
    assert.equal(api.createCalls, 1, "a 403 is not retried");
  });

  it("retries while the admission policy is not set up yet (its paramKind CRD just installed), not when it denies", async () => {
    const denied = (why: string) =>
      new KubeApiError(
        422,
        "Invalid",
        `crawlfeeds.feedcrawl.io "books-x" is forbidden: ValidatingAdmissionPolicy 'feedcrawl-crawlfeeds' with binding 'feedcrawl-crawlfeeds' denied request: ${why}`,
      );
    const api = new FakeApi();
    api.failCreates = [
      denied(
        "failed to configure policy: failed to find resource referenced by paramKind: 'feedcrawl.io/v1alpha1, Kind=CrawlJob'",
      ),
      new KubeApiError(
        403,
        "Forbidden",
        "ValidatingAdmissionPolicy 'feedcrawl-crawlfeeds' not yet synced to use for admission",
      ),
    ];
    assert.equal(await shard({ api }), 0);
    assert.equal(api.createCalls, 3);

    const refused = new FakeApi();
    refused.failCreates = [denied("a runner may only create CrawlFeeds of its own CrawlJob")];
    assert.equal(await shard({ api: refused }), 1);
    assert.equal(refused.createCalls, 1, "a policy's denial is not retried");
  });

  it("exits non-zero when the exporter cannot store a batch", async () => {
    const code = await shard({
      api: new FakeApi(),
      createCrawler: fakeCrawler(3).create,
      createExporter: fakeExporter({ failClose: true }),
    });
    assert.equal(code, 1);
  });

  it("with several shards patches only its own shardStats and shardProgress keys", async () => {
    const api = new FakeApi();
    const code = await shard({
      env: { ...env, shard: 2, shardCount: 3 },
      api,
      createCrawler: fakeCrawler(1).create,
    });
    assert.equal(code, 0);
    for (const patch of api.patches) {
      assert.equal(Object.keys(patch).length, 1);
      assert.ok(["shardStats", "shardProgress"].includes(Object.keys(patch)[0]!));
      assert.deepEqual(Object.keys(Object.values(patch)[0] as object), ["2"], "only its own shard's key");
    }
    assert.deepEqual(api.status.shardProgress, { "2": { lastBatchIds: { [TEMPLATE]: 1 } } });
    assert.equal([...api.feeds.values()][0]?.metadata.labels?.["feedcrawl.io/shard"], "2");
  });
});

describe("runner configuration", () => {
  const dir = mkdtempSync(join(tmpdir(), "feedcrawl-run-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads the shard from the Indexed Job's environment", () => {
    assert.deepEqual(
      readShardEnv({ JOB_COMPLETION_INDEX: "2", FEEDCRAWL_SHARD_COUNT: "4", FEEDCRAWL_SPEC: "/x.json" }),
      {
        specPath: "/x.json",
        shard: 2,
        shardCount: 4,
      },
    );
    assert.deepEqual(readShardEnv({}), { specPath: "/etc/feedcrawl/crawljob.json", shard: 0, shardCount: 1 });
    assert.throws(
      () => readShardEnv({ JOB_COMPLETION_INDEX: "4", FEEDCRAWL_SHARD_COUNT: "4" }),
      /JOB_COMPLETION_INDEX 4/,
    );
    assert.throws(() => readShardEnv({ FEEDCRAWL_SHARD_COUNT: "0" }), /FEEDCRAWL_SHARD_COUNT must be an integer >= 1/);
    assert.throws(() => readShardEnv({ JOB_COMPLETION_INDEX: "x" }), /JOB_COMPLETION_INDEX/);
  });

  it("loads the snapshot and names what is wrong with it", () => {
    const good = join(dir, "good.json");
    writeFileSync(good, JSON.stringify(snapshot));
    assert.equal(loadSnapshot(good).metadata.uid, UID);
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ ...snapshot, metadata: { name: "x", namespace: "y" } }));
    assert.throws(() => loadSnapshot(bad), /metadata\.uid is missing/);
    writeFileSync(bad, JSON.stringify({ ...snapshot, spec: { spider: snapshot.spec.spider } }));
    assert.throws(() => loadSnapshot(bad), /spec\.feeds is empty/);
    assert.throws(() => loadSnapshot(join(dir, "missing.json")), /FEEDCRAWL_SPEC .*missing\.json/);
  });

  it("a CrawlSchedule's run hands its scheduled time (feedcrawl.io/scheduled-time) to the exporter as %(time)s", async () => {
    const seen: (Date | undefined)[] = [];
    const capture: CreateExporter = async (o) => {
      seen.push(o.params.time);
      return fakeExporter()(o);
    };
    const scheduled = {
      ...snapshot,
      metadata: { ...snapshot.metadata, annotations: { "feedcrawl.io/scheduled-time": "2026-06-01T03:00:00Z" } },
    };
    assert.equal(await shard({ api: new FakeApi(), snapshot: scheduled, createExporter: capture }), 0);
    assert.equal(await shard({ api: new FakeApi(), createExporter: capture }), 0);
    assert.deepEqual(seen, [new Date("2026-06-01T03:00:00Z"), undefined]);
  });
});

describe("runShard with the real crawl engine and feed exporter", () => {
  it("crawls the fixture site into file feeds and reports each file once", async () => {
    const { Crawler } = await import("../../runner/crawler.ts");
    const { createFeedExporter } = await import("../../runner/feeds/exporter.ts");
    const { createCatalogue } = await import("../fixtures/catalogue.ts");
    const site = await createCatalogue({ products: 25, perPage: 10 }).listen({ traps: false, altHost: null });
    const dir = mkdtempSync(join(tmpdir(), "feedcrawl-run-real-"));
    try {
      const template = `file://${dir}/%(name)s-%(batch_id)03d.jsonl`;
      const real: SpecSnapshot = {
        ...snapshot,
        spec: {
          spider: {
            name: "books",
            startUrls: [`${site.url}/`],
            follow: [
              { selector: "ul.pager li.next a" },
              { selector: "article.product_pod h3 a", allow: ["/catalogue/"] },
            ],
            extract: [
              {
                name: "product",
                itemSelector: "article.product_page",
                urlPattern: "/catalogue/[^/]+_[0-9]+/index\\.html$",
                fields: { title: { selector: "h1", text: true, required: true } },
              },
            ],
            settings: { robotsTxtObey: false, allowPrivateNetworks: ["127.0.0.0/8"] },
          },
          feeds: { [template]: { format: "jsonlines", batchItemCount: 10 } },
        },
      };
      const api = new FakeApi();
      const code = await shard({
        snapshot: real,
        api,
        createCrawler: (o) => new Crawler(o),
        createExporter: (o) => createFeedExporter({ ...o, spool: { dir: join(dir, ".spool") } }),
      });
      assert.equal(code, 0);
      const feeds = [...api.feeds.values()];
      assert.deepEqual(feeds.map((f) => f.spec.batchId).sort(), [1, 2, 3]);
      assert.equal(
        feeds.reduce((n, f) => n + f.spec.items, 0),
        25,
      );
      assert.ok(feeds.every((f) => f.spec.feed === template && /^[0-9a-f]{64}$/.test(f.spec.sha256)));
      const last = api.statsPatches.at(-1) as { shardStats: Record<string, CrawlStats> };
      assert.equal(last.shardStats["0"]?.items, 25);

      // The crash window: batches 2 and 3 were reported but their progress
      // patches never landed. The rerun numbers from 2, finds those files
      // taken, stores under 4, 5, 6: every file reported once, none twice.
      api.status.shardProgress = { "0": { lastBatchIds: { [template]: 1 } } };
      const again = await shard({
        snapshot: real,
        api,
        createCrawler: (o) => new Crawler(o),
        createExporter: (o) => createFeedExporter({ ...o, spool: { dir: join(dir, ".spool") } }),
      });
      assert.equal(again, 0);
      const all = [...api.feeds.values()];
      assert.deepEqual(
        all.map((f) => f.spec.batchId).sort((a, b) => a - b),
        [1, 2, 3, 4, 5, 6],
      );
      assert.equal(
        all.reduce((n, f) => n + f.spec.items, 0),
        50,
      );
      const files = readdirSync(dir).filter((f) => f.endsWith(".jsonl"));
      assert.deepEqual(files.sort(), all.map((f) => f.spec.uri.slice(`file://${dir}/`.length)).sort());
      assert.deepEqual(api.status.shardProgress, { "0": { lastBatchIds: { [template]: 6 } } });
    } finally {
      await site.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
