// Part 2: the backend load the design removes. The same N items reach
// PostgreSQL (a) Scrapy-style, one HTTP POST per item to a backend that
// inserts one row per request, and (b) feedcrawl-style, as batched gzip feed
// files in S3 plus one signed webhook per file to the reference backend (COPY).
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { Agent, Pool } from "undici";
import { createFeedExporter } from "../../runner/feeds/exporter.ts";
import type { Item } from "../../runner/item.ts";
import { createCatalogue } from "../../test/fixtures/catalogue.ts";
import { BENCH_DIR, type BenchContext } from "../lib/context.ts";
import { meterPostgresCpu } from "../lib/pg-cpu.ts";
import { createDatabase } from "../lib/postgres.ts";
import { type BenchS3, startS3 } from "../lib/s3.ts";
import { fmt, percentile } from "../lib/stats.ts";
import type { BackendStats } from "./child.ts";
import { deliverFeed } from "./deliver.ts";
import { forkBackend } from "./spawn.ts";

/** Concurrent POSTs of the per-item sender, like Scrapy's default CONCURRENT_REQUESTS, over keep-alive connections. */
export const PER_ITEM_CONCURRENCY = 16;
const ITEM_BASE = "https://books.example";

export interface LoadRow {
  delivery: "per-item POST" | "feeds + webhook";
  batch: number | null;
  items: number;
  rows: number;
  files: number;
  backend: BackendStats;
  postgresCpuSeconds: number;
  senderCpuSeconds: number;
  seconds: number;
  itemsPerSecond: number;
  /** Feed close → webhook 2xx, per file (feeds only). */
  webhookMs: number[];
}

export interface LoadResult {
  items: number;
  rows: LoadRow[];
  markdown: string;
}

function itemSource(n: number) {
  const catalogue = createCatalogue({ products: n, seed: 6 });
  return (i: number): Item => catalogue.expectedItem(i, ITEM_BASE);
}

async function perItem(ctx: BenchContext, n: number): Promise<LoadRow> {
  const db = await createDatabase("feedcrawl_bench_per_item");
  const backend = await forkBackend(
    join(BENCH_DIR, "backend", "per-item-server.ts"),
    { ...process.env, DATABASE_URL: db.url },
    join(ctx.rawDir, "backend-per-item.log"),
  );
  const item = itemSource(n);
  try {
    await backend.reset();
    const meter = meterPostgresCpu(db.name);
    const pool = new Pool(new URL(backend.url).origin, { connections: PER_ITEM_CONCURRENCY });
    const cpu = process.cpuUsage();
    const started = performance.now();
    let next = 1;
    const worker = async () => {
      while (next <= n) {
        const i = next++;
        const res = await pool.request({
          method: "POST",
          path: "/items",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(item(i)),
        });
        await res.body.dump();
        if (res.statusCode !== 201) throw new Error(`Per-item backend answered ${res.statusCode} for item ${i}`);
      }
    };
    await Promise.all(Array.from({ length: PER_ITEM_CONCURRENCY }, worker));
    const seconds = (performance.now() - started) / 1000;
    const senderCpu = process.cpuUsage(cpu);
    await pool.close();
    const stats = await backend.stats();
    const postgresCpuSeconds = await meter.stop();
    const rows = await db.count("items");
    return {
      delivery: "per-item POST",
      batch: null,
      items: n,
      rows,
      files: 0,
      backend: stats,
      postgresCpuSeconds,
      senderCpuSeconds: (senderCpu.user + senderCpu.system) / 1e6,
      seconds,
      itemsPerSecond: rows / seconds,
      webhookMs: [],
    };
  } finally {
    await backend.stop();
    await db.drop();
  }
}

async function viaFeeds(ctx: BenchContext, s3: BenchS3, n: number, batch: number): Promise<LoadRow> {
  const db = await createDatabase(`feedcrawl_bench_feeds_${batch}`);
  const bucket = `bench-feeds-${batch}`;
  await s3.createBucket(bucket);
  const secret = `whsec_${randomBytes(24).toString("base64")}`;
  const backend = await forkBackend(
    join(BENCH_DIR, "backend", "reference-server.ts"),
    {
      ...process.env,
      WEBHOOK_SECRET: secret,
      DATABASE_URL: db.url,
      S3_ENDPOINT: s3.endpoint,
      S3_FORCE_PATH_STYLE: "true",
      AWS_REGION: s3.region,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      LOG_LEVEL: "warn",
    },
    join(ctx.rawDir, `backend-reference-${batch}.log`),
  );
  const item = itemSource(n);
  const agent = new Agent({ connections: 4 });
  try {
    await backend.reset();
    const meter = meterPostgresCpu(db.name);
    const cpu = process.cpuUsage();
    const started = performance.now();
    // Settled results: a failed delivery is reported after the export, never an unhandled rejection.
    const deliveries: Promise<{ ms: number } | { error: Error }>[] = [];
    const exporter = await createFeedExporter({
      feeds: {
        [`s3://${bucket}/%(name)s/%(time)s/part-%(batch_id)05d.jsonl.gz`]: {
          format: "jsonlines",
          batchItemCount: batch,
          postprocessing: ["gzip"],
        },
      },
      storage: { s3: { endpoint: s3.endpoint, region: s3.region, forcePathStyle: true } },
      params: { name: "books", job: "bench", shard: 0 },
      logger: ctx.logger.child({ part: "backend", batch }, { level: "warn" }),
      s3: { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
      spool: { dir: join(ctx.workDir, "spool", String(batch)) },
      // The operator delivers asynchronously: the runner never waits for the backend.
      onFeedClosed: async (feed) => {
        deliveries.push(deliverFeed(backend.url, secret, feed, agent).catch((error: Error) => ({ error })));
      },
    });
    for (let i = 1; i <= n; i++) await exporter.write(item(i));
    await exporter.close("finished");
    const settled = await Promise.all(deliveries);
    const failed = settled.find((d): d is { error: Error } => "error" in d);
    if (failed) throw failed.error;
    const delivered = settled as { ms: number }[];
    const seconds = (performance.now() - started) / 1000;
    const senderCpu = process.cpuUsage(cpu);
    const stats = await backend.stats();
    const postgresCpuSeconds = await meter.stop();
    const rows = await db.count("items");
    return {
      delivery: "feeds + webhook",
      batch,
      items: n,
      rows,
      files: exporter.closedFeeds.length,
      backend: stats,
      postgresCpuSeconds,
      senderCpuSeconds: (senderCpu.user + senderCpu.system) / 1e6,
      seconds,
      itemsPerSecond: rows / seconds,
      webhookMs: delivered.map((d) => d.ms),
    };
  } finally {
    await agent.close();
    await backend.stop();
    await db.drop();
  }
}

export async function runBackendLoad(ctx: BenchContext): Promise<LoadResult> {
  const n = ctx.quick ? 10_000 : 100_000;
  const rows: LoadRow[] = [];
  rows.push(await perItem(ctx, n));
  ctx.logger.info(rows.at(-1), "Per-item delivery finished");
  const s3 = await startS3(ctx.workDir);
  try {
    for (const batch of [1_000, 5_000, 20_000]) {
      rows.push(await viaFeeds(ctx, s3, n, batch));
      ctx.logger.info(rows.at(-1), `Feed delivery with batches of ${batch} finished`);
    }
  } finally {
    await s3.stop();
  }
  return { items: n, rows, markdown: loadMarkdown(n, rows) };
}

export function loadMarkdown(n: number, rows: LoadRow[]): string {
  const base = rows.find((r) => r.delivery === "per-item POST");
  const lines: string[] = [];
  lines.push(
    `${fmt(n, 0)} fixture items reach PostgreSQL 15 on this machine. (a) per-item: ${PER_ITEM_CONCURRENCY} concurrent POSTs over ` +
      "keep-alive connections to a Node backend that INSERTs one row per request (pg pool of 8, same as the reference backend). " +
      "(b) feeds: feedcrawl's feed exporter writes gzip jsonlines batches to a local versitygw S3 server; each closed file gets one " +
      "signed feed.closed webhook (as the operator sends it) to the reference backend (`examples/ingest-backend`), which streams the " +
      "object from S3 and COPYs it. Requests and connections are counted by the backend's HTTP server; backend CPU is the backend " +
      "process's own; PostgreSQL CPU is that of the server processes serving the scenario's database (sampled from /proc); " +
      "end-to-end is from the first item sent or written until the last row is committed.",
  );
  lines.push("");
  lines.push(
    "| delivery | batch | files | backend HTTP requests | backend TCP connections | backend CPU s | PostgreSQL CPU s | sender/runner CPU s | end-to-end s | items/s into PostgreSQL | rows | requests vs per-item |",
  );
  lines.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    const fewer =
      base && r !== base && r.backend.requests > 0
        ? `${fmt(base.backend.requests / r.backend.requests, 0)}× fewer`
        : "—";
    lines.push(
      `| ${r.delivery} | ${r.batch === null ? "—" : fmt(r.batch, 0)} | ${r.files || "—"} | ${fmt(r.backend.requests, 0)} | ` +
        `${fmt(r.backend.connections, 0)} | ${fmt(r.backend.cpuSeconds)} | ${fmt(r.postgresCpuSeconds)} | ${fmt(r.senderCpuSeconds)} | ` +
        `${fmt(r.seconds)} | ${fmt(r.itemsPerSecond, 0)} | ${r.rows === r.items ? fmt(r.rows, 0) : `**${fmt(r.rows, 0)} of ${fmt(r.items, 0)}**`} | ${fewer} |`,
    );
  }
  const five = rows.find((r) => r.batch === 5_000);
  if (base && five) {
    const x = base.backend.requests / Math.max(1, five.backend.requests);
    lines.push("");
    lines.push(
      `Target: ≥ 1000× fewer backend requests than per-item POST at batch 5k — ${fmt(x, 0)}× (${x >= 1000 ? "met" : "**not met**"}).`,
    );
  }
  const feeds = rows.filter((r) => r.webhookMs.length);
  if (feeds.length) {
    lines.push("");
    lines.push(
      "Webhook call → 2xx per file (the backend answers after its COPY committed; the time includes waiting for one of the " +
        "sender's 4 connections while earlier files load): " +
        feeds
          .map(
            (r) =>
              `batch ${fmt(r.batch ?? 0, 0)}: p50 ${fmt(percentile(r.webhookMs, 50), 0)} ms, p95 ${fmt(percentile(r.webhookMs, 95), 0)} ms`,
          )
          .join("; ") +
        ".",
    );
  }
  return lines.join("\n");
}
