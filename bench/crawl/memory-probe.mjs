// Loaded into a feedcrawl crawl with `node --import` by the bench: samples
// process.memoryUsage() (heap, external, arrayBuffers) every 100 ms and, at
// exit, writes the sample with the highest RSS and each part's maximum to
// $FEEDCRAWL_BENCH_MEMORY_FILE. RSS alone cannot say whether memory is V8's
// heap, Buffers outside it, or native allocations. Plain JavaScript: a .ts
// preload would load Node's type stripper (~18 MB) into the compiled CLI
// it measures.
import { writeFileSync } from "node:fs";

const file = process.env.FEEDCRAWL_BENCH_MEMORY_FILE;
if (file) {
  const started = performance.now();
  let peak;
  const max = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    for (const k of Object.keys(max)) max[k] = Math.max(max[k], m[k]);
    if (!peak || m.rss > peak.rss) peak = { ...m, t: performance.now() - started };
  };
  setInterval(sample, 100).unref();
  process.on("exit", () => {
    sample();
    const mb = (o) =>
      Object.fromEntries(Object.entries(o).map(([k, v]) => [k, k === "t" ? Math.round(v) : Math.round(v / 1048576)]));
    writeFileSync(file, JSON.stringify({ atPeakRss: mb(peak), maxMb: mb(max) }));
  });
}
