// Several worker processes (redis-crawl-worker.ts) crawl one fixture site
// through one Redis crawl state, against a real redis-server on its own port:
// politeness measured at the server across 4 workers, SIGKILLs of one of 3
// workers at seeded random moments, and Redis stopped for 20 s mid-crawl.
// Each run's delivered batch files must hold the site's truth exactly: no
// item missing, none twice.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startRedis, type TestRedis } from "../platform/redis.ts";
import type { WorkerConfig } from "./redis-crawl-worker.ts";
import { type FixtureSite, startFixtureSite } from "./redis-fixture-site.ts";
import { killRepeatedly, seeded, spawnWorker } from "./redis-workers-lib.ts";

const workDir = mkdtempSync(join(tmpdir(), "redis-workers-test-"));
const WORKER = join(import.meta.dirname, "redis-crawl-worker.ts");
let jobSeq = 0;

interface Run {
  out: string;
  config(worker: string): WorkerConfig;
}

function newRun(redis: TestRedis, site: FixtureSite, over: Partial<WorkerConfig> = {}): Run {
  const job = `workers-${++jobSeq}`;
  const out = join(workDir, job);
  mkdirSync(out, { recursive: true });
  return {
    out,
    config: (worker) => ({
      redisUrl: redis.url,
      job,
      worker,
      startUrl: `${site.url}/p/0`,
      out,
      leaseMs: 1500,
      concurrency: 4,
      perHost: 4,
      sharedGate: true,
      batchItems: 7,
      uploadMs: 0,
      ...over,
    }),
  };
}

const startWorker = (cfg: WorkerConfig) => spawnWorker(WORKER, cfg);

/** The items of every delivered batch file (no temp files: an upload is a rename). */
function delivered(out: string): string[] {
  return readdirSync(out)
    .filter((f) => f.endsWith(".jsonl"))
    .flatMap((f) =>
      readFileSync(join(out, f), "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as string),
    );
}

function assertExact(items: string[], site: FixtureSite): void {
  const truth = site.pages.flatMap((p) => [`${p}#a`, `${p}#b`]).sort();
  const counts = new Map<string, number>();
  for (const i of items) counts.set(i, (counts.get(i) ?? 0) + 1);
  const twice = [...counts].filter(([, n]) => n > 1).map(([i]) => i);
  const missing = truth.filter((t) => !counts.has(t));
  assert.deepEqual({ twice, missing }, { twice: [], missing: [] });
  assert.deepEqual([...items].sort(), truth);
}

describe("workers sharing one Redis crawl state (real redis-server, worker processes)", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis({ workDir, persistent: true });
  });
  after(async () => {
    await redis.stop();
    rmSync(workDir, { recursive: true, force: true });
  });

  test("4 workers keep concurrentRequestsPerDomain 2 and the robots.txt Crawl-delay across processes", async () => {
    const site = await startFixtureSite({ pages: 30, latencyMs: 600, crawlDelaySeconds: 0.2 });
    try {
      const run = newRun(redis, site, { perHost: 2 });
      const workers = ["w0", "w1", "w2", "w3"].map((w) => startWorker(run.config(w)));
      assert.deepEqual(await Promise.all(workers.map((w) => w.exit)), [0, 0, 0, 0]);
      assertExact(delivered(run.out), site);
      // 600 ms per page and 200 ms between starts would put 3 in flight: the cap is what holds it at 2.
      assert.equal(site.maxInFlight, 2, `at most 2 in flight at the server (saw ${site.maxInFlight})`);
      const gaps = site.arrivals.slice(1).map((t, i) => t - (site.arrivals[i] as number));
      // Grants are 200 ms apart; a send from a busy process (a loaded machine) may leave later than
      // granted, so an arrival gap can be shorter. Without the shared delay, pairs arrive within a few ms.
      const sorted = gaps.map(Math.round).sort((a, b) => a - b);
      assert.ok((sorted[0] as number) >= 100, `Crawl-delay 0.2 s kept: gaps ${sorted.join(", ")} ms`);
      assert.equal(site.robotsFetches, 1, "robots.txt fetched once for the job");
      assert.ok(site.byWorker.size >= 2, `pages spread over workers: ${JSON.stringify([...site.byWorker])}`);
    } finally {
      await site.close();
    }
  });

  test("control: without the shared gate the same 4 workers exceed 2 in flight (the test above can fail)", async () => {
    const site = await startFixtureSite({ pages: 40, latencyMs: 250 });
    try {
      const run = newRun(redis, site, { perHost: 2, sharedGate: false });
      const workers = ["w0", "w1", "w2", "w3"].map((w) => startWorker(run.config(w)));
      assert.deepEqual(await Promise.all(workers.map((w) => w.exit)), [0, 0, 0, 0]);
      assert.ok(site.maxInFlight > 2, `saw ${site.maxInFlight}`);
    } finally {
      await site.close();
    }
  });

  test("SIGKILL 1 of 3 workers at seeded random moments, over and over: every item delivered once", async () => {
    const site = await startFixtureSite({ pages: 300, latencyMs: 20 });
    try {
      const run = newRun(redis, site, { uploadMs: 40 });
      const random = seeded(12);
      const stable = ["w1", "w2"].map((w) => startWorker(run.config(w)));
      const kills = await killRepeatedly({
        start: () => startWorker(run.config("w0")),
        random,
        minMs: 150,
        spanMs: 600,
        // Sometimes back at once (its id reclaims its pages), sometimes after its lease expired (others reclaim them).
        pauseMs: () => (random() < 0.3 ? 1800 : 0),
      });
      assert.deepEqual(await Promise.all(stable.map((w) => w.exit)), [0, 0]);
      assert.ok(kills >= 3, `only ${kills} kills happened`);
      assertExact(delivered(run.out), site);
    } finally {
      await site.close();
    }
  });

  test("Redis stopped for 20 s mid-crawl, then started: the workers wait and the crawl ends with the exact item set", async () => {
    const site = await startFixtureSite({ pages: 120, latencyMs: 40 });
    try {
      const run = newRun(redis, site, { leaseMs: 60_000 });
      const workers = ["w0", "w1", "w2"].map((w) => startWorker(run.config(w)));
      while (delivered(run.out).length < 40) await sleep(50);
      await redis.stop();
      await sleep(20_000);
      await redis.start();
      assert.deepEqual(await Promise.all(workers.map((w) => w.exit)), [0, 0, 0]);
      assertExact(delivered(run.out), site);
    } finally {
      await site.close();
    }
  });
});
