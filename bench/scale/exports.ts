// Part 3: the runner's cost as exports grow (10k, 100k, 1M items): peak RSS
// should stay flat, items/s steady.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { BENCH_DIR, type BenchContext, NODE, REPO_ROOT } from "../lib/context.ts";
import { runMeasured } from "../lib/measure.ts";
import { startS3 } from "../lib/s3.ts";
import { fmt } from "../lib/stats.ts";

export const SCALE_BATCH = 5_000;

export interface ScaleRow {
  items: number;
  stored: number;
  files: number;
  bytes: number;
  seconds: number;
  itemsPerSecond: number;
  cpuSeconds: number;
  maxRssMb: number;
  /** Largest sampled V8 heapUsed (live objects), every 10k items. */
  heapUsedMb: number;
  exitCode: number;
}

export interface ScaleResult {
  rows: ScaleRow[];
  markdown: string;
}

export async function runScale(ctx: BenchContext): Promise<ScaleResult> {
  const sizes = ctx.quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000];
  const s3 = await startS3(ctx.workDir);
  const rows: ScaleRow[] = [];
  try {
    for (const items of sizes) {
      const bucket = `bench-scale-${items}`;
      await s3.createBucket(bucket);
      const logFile = join(ctx.rawDir, `scale-${items}.log`);
      const measured = await runMeasured(
        NODE,
        [join(BENCH_DIR, "scale", "export-child.ts"), String(items), String(SCALE_BATCH)],
        {
          cwd: REPO_ROOT,
          env: {
            ...process.env,
            BENCH_S3_ENDPOINT: s3.endpoint,
            BENCH_S3_BUCKET: bucket,
            BENCH_SPOOL_DIR: join(ctx.workDir, "spool", `scale-${items}`),
            AWS_ACCESS_KEY_ID: s3.accessKeyId,
            AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
            AWS_REGION: s3.region,
          },
          logFile,
          timeoutMs: 20 * 60_000,
        },
      );
      const out = (await readFile(logFile, "utf8"))
        .split("\n")
        .filter((l) => l.startsWith('{"items"'))
        .at(-1);
      const parsed = out
        ? (JSON.parse(out) as {
            stored: number;
            files: number;
            bytes: number;
            seconds: number;
            sampledPeakHeapUsedMb: number;
          })
        : undefined;
      const row: ScaleRow = {
        items,
        stored: parsed?.stored ?? 0,
        files: parsed?.files ?? 0,
        bytes: parsed?.bytes ?? 0,
        seconds: parsed?.seconds ?? Number.NaN,
        itemsPerSecond: parsed ? parsed.stored / parsed.seconds : Number.NaN,
        cpuSeconds: measured.cpuSeconds,
        maxRssMb: measured.maxRssMb,
        heapUsedMb: parsed?.sampledPeakHeapUsedMb ?? Number.NaN,
        exitCode: measured.exitCode,
      };
      rows.push(row);
      ctx.logger.info(row, `Export of ${items} items finished`);
    }
  } finally {
    await s3.stop();
  }
  return { rows, markdown: scaleMarkdown(rows) };
}

export function scaleMarkdown(rows: ScaleRow[]): string {
  const lines: string[] = [];
  lines.push(
    `feedcrawl's feed exporter (the runner's item sink) in its own process: generated fixture items → gzip jsonlines, ` +
      `batches of ${fmt(SCALE_BATCH, 0)} items, multipart uploads to the local versitygw S3 server. Peak RSS and CPU of ` +
      "the whole process from GNU time; live heap = the largest V8 `heapUsed` sampled every 10k items (what the exporter " +
      "actually holds; RSS adds what V8 reserves around it); items/s from the first item written to the last batch confirmed by S3.",
  );
  lines.push("");
  lines.push(
    "| items | files | stored bytes (gzip) | seconds | items/s | CPU s | peak RSS MB | live heap MB (max sampled) | items stored |",
  );
  lines.push("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    lines.push(
      `| ${fmt(r.items, 0)} | ${fmt(r.files, 0)} | ${fmt(r.bytes, 0)} | ${fmt(r.seconds)} | ${fmt(r.itemsPerSecond, 0)} | ` +
        `${fmt(r.cpuSeconds)} | ${fmt(r.maxRssMb, 0)} | ${fmt(r.heapUsedMb, 0)} | ${r.stored === r.items && r.exitCode === 0 ? fmt(r.stored, 0) : `**${fmt(r.stored, 0)} (exit ${r.exitCode})**`} |`,
    );
  }
  const biggest = rows.at(-1);
  if (biggest) {
    lines.push("");
    lines.push(
      `Target: runner RSS under 200 MB at 1M items — ${biggest.items < 1_000_000 ? "not measured in a --quick run" : `${fmt(biggest.maxRssMb, 0)} MB (${biggest.maxRssMb < 200 ? "met" : "**not met**"})`}.`,
    );
  }
  return lines.join("\n");
}
