// One runner-side export, measured from outside (GNU time: peak RSS, CPU):
// N items through feedcrawl's feed exporter into gzip jsonlines batches on S3.
// The exporter is the compiled one (dist/, what a runner pod runs), and this
// file is plain JavaScript: a .ts entry point would load Node's type
// stripper (~18 MB) that no runner pays. The items repeat the 10k distinct
// products bench/scale/exports.ts wrote to ITEMS_FILE (the fixture
// catalogue's), each with its own URL, so what grows with N is the
// exporter's memory alone.
//
//   node bench/scale/export-child.mjs ITEMS BATCH ITEMS_FILE   (env: BENCH_S3_ENDPOINT, BENCH_S3_BUCKET, AWS_*)
import { readFileSync } from "node:fs";
import { pino } from "pino";
import { createFeedExporter } from "../../dist/runner/feeds/exporter.js";

const [itemsArg, batchArg, itemsFile] = process.argv.slice(2);
const items = Number(itemsArg);
const batch = Number(batchArg);
const endpoint = process.env.BENCH_S3_ENDPOINT;
const bucket = process.env.BENCH_S3_BUCKET;
if (!Number.isInteger(items) || !Number.isInteger(batch) || !itemsFile || !endpoint || !bucket) {
  process.stderr.write("usage: BENCH_S3_ENDPOINT=… BENCH_S3_BUCKET=… node export-child.mjs ITEMS BATCH ITEMS_FILE\n");
  process.exit(2);
}

const products = JSON.parse(readFileSync(itemsFile, "utf8"));
const logger = pino({ level: "warn" });
const exporter = await createFeedExporter({
  feeds: {
    [`s3://${bucket}/%(name)s/%(time)s/part-%(batch_id)05d.jsonl.gz`]: {
      format: "jsonlines",
      batchItemCount: batch,
      postprocessing: ["gzip"],
    },
  },
  storage: { s3: { endpoint, region: process.env.AWS_REGION ?? "us-east-1", forcePathStyle: true } },
  params: { name: "scale", job: `scale-${items}`, shard: 0 },
  logger,
  ...(process.env.BENCH_SPOOL_DIR ? { spool: { dir: process.env.BENCH_SPOOL_DIR } } : {}),
});
const started = performance.now();
let peakRss = 0;
// Live JS objects (sampled): flat when nothing accumulates, whatever V8 reserves around them.
let peakHeapUsed = 0;
// RSS every 10k items, for the RSS-over-time line.
const rssMb = [];
for (let i = 1; i <= items; i++) {
  const { type, fields } = products[(i - 1) % products.length];
  await exporter.write({ type, fields: { ...fields, url: `https://books.example/item/${i}` } });
  if (i % 10_000 === 0) {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeapUsed = Math.max(peakHeapUsed, m.heapUsed);
    rssMb.push(Math.round(m.rss / 1048576));
  }
  // BENCH_MEMORY_TRACE=1: where the memory is, every 100k items (for "why is RSS growing" questions).
  if (process.env.BENCH_MEMORY_TRACE && i % 100_000 === 0) {
    const m = process.memoryUsage();
    const mb = (x) => Math.round(x / 1048576);
    process.stderr.write(
      `${JSON.stringify({ i, rss: mb(m.rss), heapTotal: mb(m.heapTotal), heapUsed: mb(m.heapUsed), external: mb(m.external), arrayBuffers: mb(m.arrayBuffers) })}\n`,
    );
  }
}
await exporter.close("finished");
const seconds = (performance.now() - started) / 1000;
const files = exporter.closedFeeds.length;
const stored = exporter.closedFeeds.reduce((a, f) => a + f.items, 0);
const bytes = exporter.closedFeeds.reduce((a, f) => a + f.bytes, 0);
process.stdout.write(
  `${JSON.stringify({ items, stored, files, bytes, seconds, sampledPeakRssMb: peakRss / 1048576, sampledPeakHeapUsedMb: peakHeapUsed / 1048576, rssMb })}\n`,
);
