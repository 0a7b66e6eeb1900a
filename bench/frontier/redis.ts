// The Redis frontier bench: pages/s of a one-host crawl (a loopback site
// answering each page after 50 ms) with 1, 2 and 4 worker processes sharing
// one Redis crawl state, next to today's in-memory frontier (the Crawler in
// one process); and Redis memory per queued URL (INFO memory) at 1M URLs.
//
//   node bench/frontier/redis.ts [--quick]      prints the Markdown table and the JSON
//
// The workers are test/state/redis-crawl-worker.ts: lease, shared politeness
// gate, fetch, links, items in batch files with the commit protocol. They
// parse with a regex, not cheerio, so they show what the frontier costs, not
// the whole crawler. Each worker fetches 8 pages at once; the host allows 8
// per worker (the gate is measured, not the limit).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import { Crawler } from "../../runner/crawler.ts";
import { fingerprintKey } from "../../runner/fingerprint.ts";
import type { Item, ItemSink } from "../../runner/item.ts";
import { newRequest } from "../../runner/request.ts";
import { RedisState } from "../../runner/state/redis-state.ts";
import { startRedis, type TestRedis } from "../../test/platform/redis.ts";
import type { WorkerConfig } from "../../test/state/redis-crawl-worker.ts";
import { startFixtureSite } from "../../test/state/redis-fixture-site.ts";
import type { BenchContext } from "../lib/context.ts";

const WORKER = join(import.meta.dirname, "..", "..", "test", "state", "redis-crawl-worker.ts");
const LATENCY_MS = 50;
const PER_WORKER = 8;

export interface RedisFrontierResult {
  pages: number;
  latencyMs: number;
  /** In-memory frontier, one process, 8 at once. */
  inMemoryPagesPerSecond: number;
  /** Redis frontier, per worker count. */
  redis: { workers: number; seconds: number; pagesPerSecond: number }[];
  memory: { urls: number; bytes: number; bytesPerUrl: number; perMillionMiB: number };
}

class CountingSink implements ItemSink {
  items = 0;
  async write(_item: Item): Promise<void> {
    this.items++;
  }
  async close(): Promise<void> {}
}

async function inMemory(siteUrl: string, pages: number): Promise<number> {
  const spider: SpiderSpec = {
    name: "bench",
    startUrls: [`${siteUrl}/p/0`],
    follow: [{}],
    extract: [{ name: "page", fields: { title: { selector: "h1", text: true, required: true } } }],
    settings: {
      allowPrivateNetworks: ["127.0.0.0/8"],
      concurrentRequests: PER_WORKER,
      concurrentRequestsPerDomain: PER_WORKER,
    },
  };
  const sink = new CountingSink();
  const t0 = performance.now();
  await new Crawler({ spider, sink, logger: pino({ level: "silent" }) }).run();
  const seconds = (performance.now() - t0) / 1000;
  if (sink.items !== pages) throw new Error(`The in-memory crawl got ${sink.items} of ${pages} pages`);
  return pages / seconds;
}

function runWorkers(redis: TestRedis, siteUrl: string, workers: number, out: string): Promise<number> {
  const job = `bench-${workers}-${Date.now()}`;
  mkdirSync(out, { recursive: true });
  const t0 = performance.now();
  const children: ChildProcess[] = [];
  const exits = Array.from({ length: workers }, (_, i) => {
    const cfg: WorkerConfig = {
      redisUrl: redis.url,
      job,
      worker: `w${i}`,
      startUrl: `${siteUrl}/p/0`,
      out,
      leaseMs: 60_000,
      concurrency: PER_WORKER,
      perHost: PER_WORKER * workers,
      sharedGate: true,
      batchItems: 500,
      uploadMs: 0,
    };
    const child = spawn(process.execPath, [WORKER, JSON.stringify(cfg)], { stdio: ["ignore", "ignore", "inherit"] });
    children.push(child);
    return new Promise<number | null>((resolve) => child.once("exit", resolve));
  });
  return Promise.all(exits).then((codes) => {
    if (codes.some((c) => c !== 0)) throw new Error(`A Redis frontier worker failed: exit codes ${codes.join(", ")}`);
    return (performance.now() - t0) / 1000;
  });
}

/** Redis used_memory growth for `urls` queued URLs of a typical length, from INFO memory. */
async function memoryPerUrl(redis: TestRedis, urls: number) {
  const state = new RedisState({ url: redis.url, job: "bench-memory", worker: "m" });
  await state.open();
  const used = async () => Number(/used_memory:(\d+)/.exec(await state.client.info("memory"))?.[1]);
  const before = await used();
  const chunk = 2000;
  for (let i = 0; i < urls; i += chunk) {
    const entries = Array.from({ length: Math.min(chunk, urls - i) }, (_, j) => {
      const url = `https://shop.example.com/catalogue/category/books/item-${i + j}/index.html?ref=list`;
      return { key: fingerprintKey("GET", url), request: newRequest(url, 3) };
    });
    await state.enqueue(entries);
  }
  const bytes = (await used()) - before;
  await state.close();
  return { urls, bytes, bytesPerUrl: bytes / urls, perMillionMiB: ((bytes / urls) * 1e6) / 2 ** 20 };
}

export async function runRedisFrontier(
  ctx: Pick<BenchContext, "quick" | "workDir" | "logger">,
): Promise<RedisFrontierResult> {
  const pages = ctx.quick ? 600 : 2000;
  const redis = await startRedis({ workDir: ctx.workDir, name: "bench-redis" });
  const site = await startFixtureSite({ pages, latencyMs: LATENCY_MS });
  try {
    ctx.logger.info({ pages }, "Redis frontier bench: in-memory frontier");
    const inMemoryPagesPerSecond = await inMemory(site.url, pages);
    const rows: RedisFrontierResult["redis"] = [];
    for (const workers of [1, 2, 4]) {
      ctx.logger.info({ workers }, "Redis frontier bench: shared crawl");
      const seconds = await runWorkers(redis, site.url, workers, join(ctx.workDir, `feeds-${workers}`));
      rows.push({ workers, seconds, pagesPerSecond: pages / seconds });
    }
    ctx.logger.info("Redis frontier bench: memory per queued URL");
    const memory = await memoryPerUrl(redis, ctx.quick ? 100_000 : 1_000_000);
    return { pages, latencyMs: LATENCY_MS, inMemoryPagesPerSecond, redis: rows, memory };
  } finally {
    await site.close();
    await redis.stop();
  }
}

export function redisFrontierMarkdown(r: RedisFrontierResult): string {
  const lines = [
    `A one-host site of ${r.pages} pages, each answered after ${r.latencyMs} ms; ${PER_WORKER} pages at once per process.`,
    "",
    "| frontier | processes | pages/s |",
    "| --- | ---: | ---: |",
    `| in memory (Crawler) | 1 | ${r.inMemoryPagesPerSecond.toFixed(1)} |`,
    ...r.redis.map((row) => `| Redis (shared) | ${row.workers} | ${row.pagesPerSecond.toFixed(1)} |`),
    "",
    `Redis memory for ${r.memory.urls.toLocaleString("en")} queued URLs (seen-set + queue, INFO used_memory): ` +
      `${r.memory.bytesPerUrl.toFixed(0)} bytes per URL, ${r.memory.perMillionMiB.toFixed(0)} MiB per 1M.`,
  ];
  return `${lines.join("\n")}\n`;
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
  const workDir = mkdtempSync(join(tmpdir(), "bench-redis-frontier-"));
  const logger = pino({ level: "info" }, pino.destination(2));
  try {
    const r = await runRedisFrontier({ quick: values.quick ?? false, workDir, logger });
    process.stdout.write(redisFrontierMarkdown(r));
    process.stdout.write(`${JSON.stringify(r)}\n`);
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}
