// Feed export throughput and memory: N book-like items -> batched gzip JSON Lines on S3.
//   node bench/feeds-export.ts --items 1000000 [--batch 100000] [--format jsonlines]
// S3 comes from FEEDCRAWL_TEST_S3_ENDPOINT / _ACCESS_KEY / _SECRET_KEY (as `npm run local-cluster -- up` prints).
// Prints one JSON line: items, seconds, items/s, peak RSS, objects and bytes stored. Not a test: no assertion on speed.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { pino } from "pino";
import type { FeedFormat } from "../crds/schema/names.ts";
import { createFeedExporter } from "../runner/feeds/exporter.ts";

const { values } = parseArgs({
  options: {
    items: { type: "string", default: "1000000" },
    batch: { type: "string", default: "100000" },
    format: { type: "string", default: "jsonlines" },
    bucket: { type: "string", default: `bench-feeds-${randomBytes(3).toString("hex")}` },
  },
});
const items = Number(values.items);
const endpoint = process.env.FEEDCRAWL_TEST_S3_ENDPOINT;
const accessKeyId = process.env.FEEDCRAWL_TEST_S3_ACCESS_KEY;
const secretAccessKey = process.env.FEEDCRAWL_TEST_S3_SECRET_KEY;
if (!endpoint || !accessKeyId || !secretAccessKey) {
  console.error(
    "Set FEEDCRAWL_TEST_S3_ENDPOINT, FEEDCRAWL_TEST_S3_ACCESS_KEY, FEEDCRAWL_TEST_S3_SECRET_KEY (npm run local-cluster -- up)",
  );
  process.exit(2);
}
const credentials = { accessKeyId, secretAccessKey };
const client = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true, credentials });
await client.send(new CreateBucketCommand({ Bucket: values.bucket })).catch(() => {});

let peakRss = process.memoryUsage().rss;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 100);

const spoolDir = await mkdtemp(path.join(os.tmpdir(), "feedcrawl-bench-spool-"));
const ext = values.format === "jsonlines" ? "jsonl" : values.format;
const exporter = await createFeedExporter({
  feeds: {
    [`s3://${values.bucket}/%(name)s/%(time)s/part-%(batch_id)05d.${ext}.gz`]: {
      format: values.format as FeedFormat,
      batchItemCount: Number(values.batch),
      postprocessing: ["gzip"],
    },
  },
  storage: { s3: { endpoint, forcePathStyle: true } },
  params: { name: "bench", job: "bench", shard: 0 },
  logger: pino({ level: "warn" }),
  s3: { client },
  spool: { dir: spoolDir },
});

const started = process.hrtime.bigint();
const timeline: number[] = [];
for (let i = 0; i < items; i++) {
  if (i % 100_000 === 0) timeline.push(Math.round(process.memoryUsage().rss / 1048576));
  await exporter.write({
    type: "product",
    fields: {
      url: `https://books.example/catalogue/book-${i}/index.html`,
      title: `A book with a title of moderate length, number ${i}`,
      price: (i % 5000) / 100,
      availability: i % 7 === 0 ? "Out of stock" : "In stock",
      rating: (i % 5) + 1,
      tags: ["fiction", `shelf-${i % 40}`],
      upc: (i * 2654435761).toString(16).padStart(16, "0"),
    },
  });
}
await exporter.close("finished");
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
clearInterval(sampler);
peakRss = Math.max(peakRss, process.memoryUsage().rss, process.resourceUsage().maxRSS * 1024);
await rm(spoolDir, { recursive: true, force: true });
const stored = exporter.closedFeeds.reduce((n, f) => n + f.bytes, 0);
console.log(
  JSON.stringify({
    items,
    batchItemCount: Number(values.batch),
    format: values.format,
    seconds: Number(seconds.toFixed(2)),
    itemsPerSecond: Math.round(items / seconds),
    peakRssMiB: Number((peakRss / 1048576).toFixed(1)),
    rssMiBEvery100k: timeline,
    objects: exporter.closedFeeds.length,
    storedMiB: Number((stored / 1048576).toFixed(1)),
    node: process.version,
    cpus: os.cpus().length,
    loadAverage1m: Number(os.loadavg()[0]?.toFixed(1)),
  }),
);
