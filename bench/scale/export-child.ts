// One runner-side export, measured from outside (GNU time: peak RSS, CPU):
// N items through feedcrawl's feed exporter into gzip jsonlines batches on S3.
// The items are generated on the fly, so what grows with N is the exporter's
// memory alone.
//
//   node bench/scale/export-child.ts ITEMS BATCH   (env: BENCH_S3_ENDPOINT, BENCH_S3_BUCKET, AWS_*)
import { pino } from "pino";
import { createFeedExporter } from "../../runner/feeds/exporter.ts";
import { createCatalogue } from "../../test/fixtures/catalogue.ts";

const [itemsArg, batchArg] = process.argv.slice(2);
const items = Number(itemsArg);
const batch = Number(batchArg);
const endpoint = process.env.BENCH_S3_ENDPOINT;
const bucket = process.env.BENCH_S3_BUCKET;
if (!Number.isInteger(items) || !Number.isInteger(batch) || !endpoint || !bucket) {
  process.stderr.write("usage: BENCH_S3_ENDPOINT=… BENCH_S3_BUCKET=… node export-child.ts ITEMS BATCH\n");
  process.exit(2);
}

// 10k distinct products, repeated with distinct URLs: realistic item sizes, no per-item memory.
const catalogue = createCatalogue({ products: 10_000, seed: 6 });
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
for (let i = 1; i <= items; i++) {
  const { type, fields } = catalogue.expectedItem(((i - 1) % catalogue.products) + 1, "https://books.example");
  await exporter.write({ type, fields: { ...fields, url: `https://books.example/item/${i}` } });
  if (i % 10_000 === 0) {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeapUsed = Math.max(peakHeapUsed, m.heapUsed);
  }
  // BENCH_MEMORY_TRACE=1: where the memory is, every 100k items (for "why is RSS growing" questions).
  if (process.env.BENCH_MEMORY_TRACE && i % 100_000 === 0) {
    const m = process.memoryUsage();
    const mb = (x: number) => Math.round(x / 1048576);
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
  `${JSON.stringify({ items, stored, files, bytes, seconds, sampledPeakRssMb: peakRss / 1048576, sampledPeakHeapUsedMb: peakHeapUsed / 1048576 })}\n`,
);
