// The real engine on the Redis crawl state: three worker processes, each a
// Crawler with the feed exporter on one RedisState (redis-crawler-worker.ts),
// crawl the fixture catalogue together while one of them is SIGKILLed at
// seeded random moments and started again. The union of every worker's feed
// files must equal the catalogue's truth exactly: no item missing, none twice.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type CatalogueServer, createCatalogue } from "../fixtures/catalogue.ts";
import { startRedis, type TestRedis } from "../platform/redis.ts";
import { canonical, catalogueTruth, feedLines } from "../runner/crawl-state-helpers.ts";
import type { CrawlerWorkerConfig } from "./redis-crawler-worker.ts";
import { killRepeatedly, seeded, spawnWorker } from "./redis-workers-lib.ts";

const WORKER = join(import.meta.dirname, "redis-crawler-worker.ts");
const tmp = mkdtempSync(join(tmpdir(), "redis-crawler-test-"));
const catalogue = createCatalogue({ products: 300, perPage: 20, seed: 7 });
let site: CatalogueServer;
let redis: TestRedis;
const children = new Set<ChildProcess>();

before(async () => {
  site = await catalogue.listen({ traps: false, altHost: null });
  redis = await startRedis({ workDir: tmp });
});
after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  await site?.close();
  await redis?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

test("3 Crawler processes on one Redis state, one SIGKILLed again and again: every item delivered exactly once", async () => {
  const out = join(tmp, "out");
  const config = (worker: string): CrawlerWorkerConfig => ({
    redisUrl: redis.url,
    job: "crawler-kill",
    worker,
    siteUrl: site.url,
    out,
  });
  const start = (worker: string) => {
    const w = spawnWorker(WORKER, config(worker));
    children.add(w.child);
    return w;
  };
  const stable = ["w1", "w2"].map(start);
  const kills = await killRepeatedly({ start: () => start("w0"), random: seeded(20261202), minMs: 300, spanMs: 1200 });
  assert.deepEqual(await Promise.all(stable.map((w) => w.exit)), [0, 0]);
  assert.ok(kills >= 3, `only ${kills} kills: the crawl ended too soon to test anything`);
  const items = canonical(feedLines(out));
  const want = catalogueTruth(catalogue, site.url).all;
  assert.equal(items.length, want.length, "each item once");
  assert.deepEqual(items, want);
  // Which worker delivered what is not asserted: on a site this small one worker may take nearly all.
});
