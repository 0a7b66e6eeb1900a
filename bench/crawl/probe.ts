// One crawl of one tool on one bench site, for experiments: what a change or
// a Node flag buys, without the whole bench. Prints the run as JSON.
//
//   node bench/crawl/probe.ts --site realistic --tool feedcrawl --concurrency 16 [--quick] [--pages N] [--runs N] [--node-arg=--max-semi-space-size=32] [--cpu-prof]
//
// --pages 50000: the long crawl of issue 17 ("RSS flat over a 50k-page crawl");
// `rssQuarters` is the highest RSS of each quarter of the run (MB).
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { BENCH_DIR, type BenchContext, ensureDir } from "../lib/context.ts";
import { summarizeProfileDir } from "../lib/cpuprofile.ts";
import { type SiteKind, startBenchSite } from "./site.ts";
import { crawlOnce, rssLine } from "./throughput.ts";
import { CRAWL_TOOLS } from "./tools.ts";

const { values } = parseArgs({
  options: {
    site: { type: "string", default: "realistic" },
    tool: { type: "string", multiple: true },
    concurrency: { type: "string", multiple: true },
    runs: { type: "string", default: "1" },
    quick: { type: "boolean", default: false },
    pages: { type: "string" },
    "node-arg": { type: "string", multiple: true },
    "cpu-prof": { type: "boolean", default: false },
  },
});
const kind = values.site as SiteKind;
const workDir = await mkdtemp(join(os.tmpdir(), "feedcrawl-probe-"));
const rawDir = await ensureDir(join(BENCH_DIR, "results", "raw", `probe-${Date.now()}`));
const ctx: BenchContext = {
  quick: values.quick,
  runs: 1,
  profile: false,
  workDir,
  rawDir,
  logger: pino({ level: "warn" }),
};
const site = await startBenchSite(
  ctx,
  values.pages
    ? Number(values.pages)
    : kind === "realistic"
      ? values.quick
        ? 1_050
        : 5_250
      : values.quick
        ? 1_000
        : 10_000,
  kind,
);
try {
  for (let run = 1; run <= Number(values.runs); run++) {
    for (const c of (values.concurrency ?? ["16"]).map(Number)) {
      for (const name of values.tool ?? ["feedcrawl"]) {
        const tool = CRAWL_TOOLS.find((t) => t.name === name);
        if (!tool) throw new Error(`unknown tool ${name}`);
        const profDir = join(rawDir, `cpuprofile-${name}-c${c}-r${run}`);
        const nodeArgs = [...(values["node-arg"] ?? [])];
        if (values["cpu-prof"]) {
          await mkdir(profDir, { recursive: true });
          nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${profDir}`);
        }
        const r = await crawlOnce(ctx, site, tool, c, run, nodeArgs);
        const out = {
          tool: name,
          c,
          run,
          exit: r.exitCode,
          pagesPerSecond: Math.round(r.pages / r.wallSeconds),
          cpuPer1k: Number(((r.cpuSeconds / Math.max(1, r.pages)) * 1000).toFixed(2)),
          peakRssMb: Math.round(r.maxRssMb),
          rss: rssLine(r.rssMb, Math.max(...r.rssMb, 1)),
          rssQuarters: [0, 1, 2, 3].map((q) =>
            Math.max(
              0,
              ...r.rssMb.slice(Math.floor((q * r.rssMb.length) / 4), Math.floor(((q + 1) * r.rssMb.length) / 4)),
            ),
          ),
          correct: `${r.correct}/${site.items}`,
          memory: r.memory?.atPeakRss,
          maxMb: r.memory?.maxMb,
          load: os
            .loadavg()
            .map((x) => x.toFixed(2))
            .join(" "),
        };
        console.log(JSON.stringify(out));
        if (values["cpu-prof"]) {
          const p = await summarizeProfileDir(profDir, 25);
          if (p) {
            for (const a of p.byArea)
              console.log(`  ${a.area.padEnd(40)} ${Math.round(a.selfMs)} ms ${(a.share * 100).toFixed(1)} %`);
            for (const f of p.byFunction)
              console.log(
                `  ${(f.name).padEnd(30)} ${f.where.padEnd(60)} ${Math.round(f.selfMs)} ms ${(f.share * 100).toFixed(1)} %`,
              );
          }
        }
      }
    }
  }
} finally {
  await site.nginx.stop();
  await rm(workDir, { recursive: true, force: true });
}
