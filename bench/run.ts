#!/usr/bin/env node
// feedcrawl's benchmarks, side by side with Scrapy and Crawlee, and the
// backend load that feed files + webhooks remove. One command runs
// everything and writes bench/results/<date>.md (+ .svg chart, + .json data).
//
//   node bench/run.ts [--quick] [--only crawl,backend,scale,operator,frontier] [--sites small,realistic] [--runs N] [--profile] [--render]
//
// See docs/benchmarks.md.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { pino } from "pino";
import { type LoadResult, loadMarkdown, runBackendLoad } from "./backend/load.ts";
import type { SiteKind } from "./crawl/site.ts";
import { runThroughput, type ThroughputResult, throughputMarkdown } from "./crawl/throughput.ts";
import { type JobdirOverheadResult, jobdirOverheadMarkdown, runJobdirOverhead } from "./frontier/jobdir-overhead.ts";
import { type RedisFrontierResult, redisFrontierMarkdown, runRedisFrontier } from "./frontier/redis.ts";
import { renderChart } from "./lib/chart.ts";
import { BENCH_DIR, type BenchContext, ensureDir, NODE, REPO_ROOT } from "./lib/context.ts";
import { describeMachine, type Machine, machineMarkdown } from "./lib/machine.ts";
import { ensurePeers } from "./lib/setup.ts";
import { fmt } from "./lib/stats.ts";
import { type OperatorResult, operatorMarkdown, runOperatorScale } from "./operator/scale.ts";
import { runScale, type ScaleResult, scaleMarkdown } from "./scale/exports.ts";

const SECTIONS = ["crawl", "backend", "scale", "operator", "frontier"] as const;
type Section = (typeof SECTIONS)[number];

interface Results {
  quick: boolean;
  runs: number;
  machine: Machine;
  loadAtEnd: number[];
  throughput?: Omit<ThroughputResult, "markdown">;
  load?: Omit<LoadResult, "markdown">;
  scale?: Omit<ScaleResult, "markdown">;
  operator?: OperatorResult;
  frontier?: { jobdir: JobdirOverheadResult; redis: RedisFrontierResult };
  sections?: Partial<Record<Section, { startedAt: string; loadStart: number[]; loadEnd: number[] }>>;
}

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    runs: { type: "string" },
    sites: { type: "string" },
    profile: { type: "boolean", default: false },
    render: { type: "boolean", default: false },
  },
});
const quick = values.quick ?? false;
// --render: no measuring, only write the Markdown and SVG again from the day's JSON.
const only = (values.render ? [] : (values.only?.split(",").map((s) => s.trim()) ?? [...SECTIONS])) as Section[];
for (const s of only) {
  if (!SECTIONS.includes(s)) throw new Error(`--only: unknown section "${s}" (one of ${SECTIONS.join(", ")})`);
}
const sites = (values.sites?.split(",").map((s) => s.trim()) ?? ["small", "realistic"]) as SiteKind[];
for (const s of sites) if (s !== "small" && s !== "realistic") throw new Error(`--sites: unknown site "${s}"`);
const runs = values.runs ? Number(values.runs) : 3;
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got "${values.runs}"`);

const logger = pino({ name: "bench" });
const stamp = new Date().toISOString().slice(0, 10);
const stem = quick ? `${stamp}-quick` : stamp;
const resultsDir = await ensureDir(join(BENCH_DIR, "results"));
const rawDir = await ensureDir(
  join(resultsDir, "raw", `${stem}-${new Date().toISOString().slice(11, 19).replace(/:/g, "")}`),
);
const workDir = await mkdtemp(join(os.tmpdir(), "feedcrawl-bench-"));
const ctx: BenchContext = { quick, runs, profile: values.profile ?? false, workDir, rawDir, logger };

if (!values.render) {
  await ensurePeers(logger);
  // feedcrawl runs as it ships: dist/ from the sources of this checkout (~5 s).
  await promisify(execFile)(NODE, [join(REPO_ROOT, "node_modules", ".bin", "tsc"), "-p", "tsconfig.build.json"], {
    cwd: REPO_ROOT,
  });
}
const jsonFile = join(resultsDir, `${stem}.json`);
// A partial run (--only) replaces its sections in the day's results and keeps the others.
const previous: Partial<Results> =
  only.length < SECTIONS.length && existsSync(jsonFile) ? JSON.parse(await readFile(jsonFile, "utf8")) : {};
const results: Results = {
  ...previous,
  quick,
  runs,
  machine: values.render && previous.machine ? previous.machine : await describeMachine(),
  loadAtEnd: previous.loadAtEnd ?? [],
};
logger.info({ machine: results.machine, only, quick, runs }, "Bench starting");

const strip = <T extends { markdown: string }>(r: T): Omit<T, "markdown"> => {
  const { markdown: _, ...rest } = r;
  return rest;
};
/** When each part ran and how busy the machine was (parts may come from different --only runs). */
const when = async <T>(section: Section, fn: () => Promise<T>): Promise<T> => {
  const startedAt = new Date().toISOString();
  const loadStart = os.loadavg();
  const value = await fn();
  results.sections = { ...results.sections, [section]: { startedAt, loadStart, loadEnd: os.loadavg() } };
  return value;
};
try {
  if (only.includes("crawl")) {
    const fresh = strip(await when("crawl", () => runThroughput(ctx, sites)));
    // A run of some sites (--sites) keeps the other sites' results of the day.
    const kept = (previous.throughput?.sites ?? []).filter((s) => !sites.includes(s.kind)).map((s) => s.kind);
    const old = previous.throughput;
    results.throughput =
      old && kept.length
        ? {
            ...fresh,
            sites: [...old.sites.filter((s) => kept.includes(s.kind)), ...fresh.sites],
            runs: [...old.runs.filter((x) => kept.includes(x.site)), ...fresh.runs],
            summaries: [...old.summaries.filter((x) => kept.includes(x.site)), ...fresh.summaries],
          }
        : fresh;
  }
  if (only.includes("backend")) results.load = strip(await when("backend", () => runBackendLoad(ctx)));
  if (only.includes("scale")) results.scale = strip(await when("scale", () => runScale(ctx)));
  if (only.includes("operator")) results.operator = await when("operator", () => runOperatorScale(ctx));
  if (only.includes("frontier")) {
    results.frontier = await when("frontier", async () => ({
      jobdir: await runJobdirOverhead({ products: quick ? 2000 : 10_000, runs }),
      redis: await runRedisFrontier(ctx),
    }));
  }
} finally {
  await rm(workDir, { recursive: true, force: true });
}
if (!values.render) results.loadAtEnd = os.loadavg();

// Another --only run may have written the day's file meanwhile: keep the sections it wrote that this run did not.
if (only.length < SECTIONS.length && existsSync(jsonFile)) {
  const latest: Partial<Results> = JSON.parse(await readFile(jsonFile, "utf8"));
  const key = {
    crawl: "throughput",
    backend: "load",
    scale: "scale",
    operator: "operator",
    frontier: "frontier",
  } as const;
  for (const section of SECTIONS) {
    if (only.includes(section) || latest[key[section]] === undefined) continue;
    (results as unknown as Record<string, unknown>)[key[section]] = latest[key[section]];
    const at = latest.sections?.[section];
    if (at) results.sections = { ...results.sections, [section]: at };
  }
}
await writeFile(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
const svgName = `${stem}.svg`;
await writeFile(join(resultsDir, svgName), renderChart(chartInput(results)));
await writeFile(join(resultsDir, `${stem}.md`), render(results, svgName));
logger.info({ results: join(resultsDir, `${stem}.md`) }, "Bench results written");

function chartInput(r: Results) {
  const t = r.throughput;
  // The chart shows the realistic-weight site when it ran: the number that matters for real pages.
  const kind = t?.summaries.some((s) => s.site === "realistic") ? "realistic" : "small";
  const summaries = (t?.summaries ?? []).filter((s) => (s.site ?? "small") === kind);
  const rows = r.load?.rows ?? [];
  return {
    title: `feedcrawl bench ${stem} (${r.machine.cores} cores; crawl: ${kind} pages)`,
    items: r.load?.items ?? 0,
    throughput: summaries.map((s) => ({
      concurrency: s.concurrency,
      tool: s.tool,
      pagesPerSecond: s.pagesPerSecond,
      valid:
        s.ok && new Set(summaries.filter((x) => x.concurrency === s.concurrency).flatMap((x) => x.items)).size === 1,
    })),
    requests: rows.map((x) => ({
      label: x.batch === null ? "per-item POST" : `batch ${x.batch / 1000}k`,
      requests: x.backend.requests,
    })),
  };
}

function measuredAt(r: Results, section: Section): string {
  const s = r.sections?.[section];
  if (!s) return "";
  const load = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(" / ");
  return `_Measured from ${s.startedAt.slice(0, 19).replace("T", " ")} UTC; load average (1/5/15 min) ${load(s.loadStart)} at the start, ${load(s.loadEnd)} at the end._\n\n`;
}

function render(r: Results, svg: string): string {
  const out: string[] = [];
  out.push(
    `# feedcrawl benchmarks — ${stem}${r.quick ? " (quick run: smaller sizes, not the published numbers)" : ""}`,
  );
  out.push("");
  out.push(
    "Produced by `npm run bench` (`node bench/run.ts" +
      (r.quick ? " --quick" : "") +
      "`) on the machine below; how and why in [docs/benchmarks.md](../../docs/benchmarks.md).",
  );
  out.push("");
  out.push(`![throughput and backend requests](${svg})`);
  out.push("");
  out.push("## Machine");
  out.push("");
  out.push(machineMarkdown(r.machine, r.loadAtEnd));
  out.push("");
  out.push("## 1. Crawl throughput: feedcrawl vs Scrapy vs Crawlee");
  out.push("");
  out.push(
    measuredAt(r, "crawl") + (r.throughput ? throughputMarkdown({ ...r.throughput, markdown: "" }) : "Not run."),
  );
  out.push("");
  out.push("## 2. Backend load: one POST per item vs feed files + one webhook per file");
  out.push("");
  out.push(measuredAt(r, "backend") + (r.load ? loadMarkdown(r.load.items, r.load.rows) : "Not run."));
  out.push("");
  out.push("## 3. Scale of cost");
  out.push("");
  out.push("### Runner exports of growing size");
  out.push("");
  out.push(measuredAt(r, "scale") + (r.scale ? scaleMarkdown(r.scale.rows) : "Not run."));
  out.push("");
  out.push(
    `### Operator with ${fmt(r.operator?.jobs ?? 1000, 0)} CrawlJobs${r.operator?.crawlFeeds ? ` and ${fmt(r.operator.crawlFeeds, 0)} CrawlFeeds` : ""}; feed close → webhook 2xx through the operator`,
  );
  out.push("");
  out.push(measuredAt(r, "operator") + (r.operator ? operatorMarkdown(r.operator) : "Not run."));
  out.push("");
  out.push("## 4. Crawl state: `--jobdir` and the Redis frontier");
  out.push("");
  out.push(
    measuredAt(r, "frontier") +
      (r.frontier
        ? `${jobdirOverheadMarkdown(r.frontier.jobdir)}\n\n${redisFrontierMarkdown(r.frontier.redis)}`
        : "Not run."),
  );
  out.push("");
  return out.join("\n");
}
