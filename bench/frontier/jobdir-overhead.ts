#!/usr/bin/env node
// The cost of `--jobdir` (the SQLite crawl state) against the in-memory
// frontier: the same loopback catalogue crawled in-process both ways, items to
// a batched file feed, pages/s from the crawler's own stats. Alternates the
// two modes `--runs` times and reports the median of each.
//
//   node bench/frontier/jobdir-overhead.ts [--products 10000] [--runs 3] [--json]
//
// Exported as runJobdirOverhead() for bench/run.ts.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import { Crawler } from "../../runner/crawler.ts";
import { createFeedExporter } from "../../runner/feeds/exporter.ts";
import { SqliteState } from "../../runner/state/sqlite.ts";
import { createCatalogue } from "../../test/fixtures/catalogue.ts";

export interface JobdirOverheadResult {
  products: number;
  pages: number;
  runs: number;
  memoryPagesPerSecond: number;
  jobdirPagesPerSecond: number;
  /** (memory - jobdir) / memory, in %. */
  overheadPercent: number;
  /** state.sqlite (+ WAL) after one crawl, bytes. */
  stateBytes: number;
  /** Mean µs per state step, without a crawl around it (100k pages). */
  stepMicros: { enqueue20: number; dequeue64: number; pageProcessed: number; batchCommit: number };
  /** This process's RSS (MB) as 1M URLs are queued in the SQLite state: [queued, rssMB] every 250k. */
  queueRss?: Array<[number, number]>;
}

/** RSS while a frontier grows to `urls` queued requests in the state (nothing of it kept in JS). */
async function measureQueueRss(urls = 1_000_000): Promise<Array<[number, number]>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "jobdir-rss-"));
  const state = new SqliteState({ dir, identity: "rss" });
  await state.open();
  const rssMB = () => Math.round(process.memoryUsage().rss / 1e6);
  const samples: Array<[number, number]> = [[0, rssMB()]];
  try {
    for (let i = 0; i < urls; i += 100) {
      await state.enqueue(
        Array.from({ length: 100 }, (_, j) => {
          const n = i + j;
          const url = `https://shop.example/catalogue/category-${n % 97}/product-${n}/index.html`;
          return {
            key: n.toString(16).padStart(16, "0"),
            request: { url, method: "GET", depth: 2, retries: 0, redirects: 0 },
          };
        }),
      );
      if ((i + 100) % 250_000 === 0) samples.push([i + 100, rssMB()]);
    }
    return samples;
  } finally {
    await state.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The state's own steps, timed alone: what each page costs the event loop. */
async function measureSteps(pages = 100_000): Promise<JobdirOverheadResult["stepMicros"]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "jobdir-steps-"));
  const state = new SqliteState({ dir, identity: "steps" });
  await state.open();
  const request = { url: "http://x.test/", method: "GET", depth: 1, retries: 0, redirects: 0 };
  const time = async (n: number, step: (i: number) => Promise<unknown>) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await step(i);
    return Number(process.hrtime.bigint() - t0) / 1000 / n;
  };
  try {
    const enqueue20 = await time(pages / 20, (i) =>
      state.enqueue(Array.from({ length: 20 }, (_, j) => ({ key: `k${i * 20 + j}`, request }))),
    );
    const dequeue64 = await time(pages / 64, () => state.dequeue(64));
    const pageProcessed = await time(pages, (i) => state.pageProcessed(`k${i}`, { f: 1 }));
    const batchCommit = await time(100, async (i) => {
      const keys = Array.from({ length: 100 }, (_, j): [string, number] => [`k${i * 100 + j}`, 1]);
      await state.beginBatch({ feed: "f", batchId: i + 1, uri: `u${i}`, pages: keys });
      await state.batchStored("f", i + 1, { uri: `u${i}`, batchId: i + 1 } as never);
      await state.commitBatch("f", i + 1);
    });
    const round = (x: number) => Math.round(x * 10) / 10;
    return {
      enqueue20: round(enqueue20),
      dequeue64: round(dequeue64),
      pageProcessed: round(pageProcessed),
      batchCommit: round(batchCommit),
    };
  } finally {
    await state.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function spider(url: string): SpiderSpec {
  return {
    name: "jobdir-bench",
    startUrls: [`${url}/`],
    allowedDomains: ["127.0.0.1"],
    follow: [{ selector: "ul.pager li.next a" }, { selector: "article.product_pod h3 a", allow: ["/catalogue/"] }],
    extract: [
      {
        name: "product",
        itemSelector: "article.product_page",
        urlPattern: "/catalogue/[^/]+_[0-9]+/index\\.html$",
        fields: { url: { meta: "url" }, title: { selector: "h1", text: true, required: true } },
      },
    ],
    settings: { concurrentRequests: 16, concurrentRequestsPerDomain: 16, allowPrivateNetworks: ["127.0.0.0/8"] },
  } as SpiderSpec;
}

async function crawlOnce(
  url: string,
  dir: string,
  jobdir: boolean,
): Promise<{ pps: number; pages: number; stateBytes: number }> {
  const logger = pino({ level: "silent" });
  const state = jobdir ? new SqliteState({ dir: path.join(dir, "state"), identity: "jobdir-bench" }) : undefined;
  const opening = await state?.open();
  const exporter = await createFeedExporter({
    feeds: { [`file://${dir}/out/items-%(batch_id)05d.jsonl`]: { format: "jsonlines", batchItemCount: 1000 } },
    params: { name: "jobdir-bench", job: "jobdir-bench", shard: 0 },
    logger,
    ...(state ? { state } : {}),
  });
  await exporter.recover(opening?.pending ?? []);
  const crawler = new Crawler({
    spider: spider(url),
    sink: exporter,
    logger,
    ...(state ? { state: { state, queued: await state.queuedCount() } } : {}),
  });
  const result = await crawler.run();
  if (result.error) throw result.error;
  let stateBytes = 0;
  if (state) {
    await state.markFinished(result.reason);
    await state.close();
    const { statSync, existsSync } = await import("node:fs");
    for (const f of [state.file, `${state.file}-wal`]) if (existsSync(f)) stateBytes += statSync(f).size;
  }
  const pages = result.stats.status.pages;
  return { pps: pages / result.stats.elapsedSeconds, pages, stateBytes };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

export async function runJobdirOverhead(
  opts: { products?: number; runs?: number } = {},
): Promise<JobdirOverheadResult> {
  const products = opts.products ?? 10_000;
  const runs = opts.runs ?? 3;
  const site = await createCatalogue({ products, perPage: 20, seed: 7 }).listen({
    traps: false,
    altHost: null,
    port: 0,
  });
  const memory: number[] = [];
  const jobdir: number[] = [];
  let pages = 0;
  let stateBytes = 0;
  try {
    for (let i = 0; i < runs; i++) {
      for (const mode of [false, true]) {
        const dir = await mkdtemp(path.join(os.tmpdir(), "jobdir-bench-"));
        try {
          const r = await crawlOnce(site.url, dir, mode);
          (mode ? jobdir : memory).push(r.pps);
          pages = r.pages;
          if (mode) stateBytes = r.stateBytes;
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    await site.close();
  }
  const m = median(memory);
  const j = median(jobdir);
  const stepMicros = await measureSteps();
  const queueRss = await measureQueueRss();
  return {
    stepMicros,
    queueRss,
    products,
    pages,
    runs,
    memoryPagesPerSecond: Math.round(m),
    jobdirPagesPerSecond: Math.round(j),
    overheadPercent: Math.round(((m - j) / m) * 1000) / 10,
    stateBytes,
  };
}

export function jobdirOverheadMarkdown(r: JobdirOverheadResult): string {
  return [
    `### --jobdir overhead (${r.pages} pages, median of ${r.runs})`,
    "",
    "| frontier | pages/s |",
    "|---|---|",
    `| in-memory | ${r.memoryPagesPerSecond} |`,
    `| --jobdir (SQLite) | ${r.jobdirPagesPerSecond} |`,
    "",
    `Overhead ${r.overheadPercent} %; state.sqlite after the crawl: ${(r.stateBytes / 1024 / 1024).toFixed(1)} MiB.`,
    "",
    `State steps alone (µs each): enqueue 20 links ${r.stepMicros.enqueue20}, lease 64 pages ${r.stepMicros.dequeue64},` +
      ` page processed ${r.stepMicros.pageProcessed}, one 100-page batch begin+stored+commit ${r.stepMicros.batchCommit} (two fsyncs).`,
    "",
    // Results written before this figure existed have none.
    r.queueRss
      ? `RSS while 1M URLs are queued in the state: ${r.queueRss.map(([n, mb]) => `${n / 1000}k → ${mb} MB`).join(", ")}.\n`
      : "",
  ].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { products: { type: "string" }, runs: { type: "string" }, json: { type: "boolean", default: false } },
  });
  const r = await runJobdirOverhead({
    ...(values.products ? { products: Number(values.products) } : {}),
    ...(values.runs ? { runs: Number(values.runs) } : {}),
  });
  process.stdout.write(values.json ? `${JSON.stringify(r)}\n` : jobdirOverheadMarkdown(r));
}
