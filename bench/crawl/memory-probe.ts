// Loaded into a feedcrawl crawl with `node --import` by the bench: samples
// process.memoryUsage() (heap, external, arrayBuffers) every 100 ms and, at
// exit, writes the sample with the highest RSS and each part's maximum to
// $FEEDCRAWL_BENCH_MEMORY_FILE. RSS alone cannot say whether memory is V8's
// heap, Buffers outside it, or native allocations.
import { writeFileSync } from "node:fs";

const file = process.env.FEEDCRAWL_BENCH_MEMORY_FILE;
if (file) {
  type Sample = NodeJS.MemoryUsage & { t: number };
  const started = performance.now();
  let peak: Sample | undefined;
  const max = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    for (const k of Object.keys(max) as (keyof typeof max)[]) max[k] = Math.max(max[k], m[k]);
    if (!peak || m.rss > peak.rss) peak = { ...m, t: performance.now() - started };
  };
  setInterval(sample, 100).unref();
  process.on("exit", () => {
    sample();
    const mb = (o: Record<string, number>) =>
      Object.fromEntries(Object.entries(o).map(([k, v]) => [k, k === "t" ? Math.round(v) : Math.round(v / 1048576)]));
    writeFileSync(file, JSON.stringify({ atPeakRss: mb(peak as unknown as Record<string, number>), maxMb: mb(max) }));
  });
}
