// Part 1: crawl throughput of feedcrawl, Scrapy and Crawlee on the same
// nginx-served fixture sites — small pages and realistic-weight pages — at
// equal concurrency, runs interleaved, with goals marked per row.
import { mkdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { DEFAULT_RUNNER_RUNTIME_ENV } from "../../operator/crawljob/runner-pod.ts";
import { BENCH_DIR, type BenchContext } from "../lib/context.ts";
import { type ProfileSummary, summarizeProfileDir } from "../lib/cpuprofile.ts";
import { RSS_SAMPLE_MS, runMeasured } from "../lib/measure.ts";
import { fmt, median, ratio } from "../lib/stats.ts";
import { checkItems } from "./items.ts";
import { type BenchSite, measureServerCeiling, type ServerCeiling, type SiteKind, startBenchSite } from "./site.ts";
import { CRAWL_TOOLS, type CrawlTool, isFeedcrawl } from "./tools.ts";

/** feedcrawl's process.memoryUsage() split (MB), from bench/crawl/memory-probe.mjs. */
export interface MemorySplit {
  atPeakRss: { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number; t: number };
  maxMb: { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number };
}

export interface CrawlRun {
  site: SiteKind;
  tool: CrawlTool["name"];
  concurrency: number;
  run: number;
  exitCode: number;
  wallSeconds: number;
  cpuSeconds: number;
  maxRssMb: number;
  /** RSS of the tool's processes every RSS_SAMPLE_MS (MB). */
  rssMb: number[];
  memory?: MemorySplit;
  /** 200 responses nginx logged during the run. */
  pages: number;
  /** Every request nginx logged during the run. */
  requests: number;
  /** First to last request seen by nginx. */
  windowSeconds: number;
  items: number;
  correct: number;
  duplicates: number;
}

export interface CrawlSummary {
  site: SiteKind;
  tool: CrawlTool["name"];
  concurrency: number;
  runs: number;
  pagesPerSecond: number;
  pagesPerSecondWindow: number;
  cpuSecondsPer1kPages: number;
  maxRssMb: number;
  /** RSS over time of the run with the median peak. */
  rssMb: number[];
  memory?: MemorySplit;
  pages: number[];
  items: number[];
  correct: number[];
  ok: boolean;
}

export interface SiteInfo {
  kind: SiteKind;
  pages: number;
  items: number;
  bytes: number;
  ceilings: ServerCeiling[];
  /** When this site's runs started, and the load average (1/5/15 min) at its start and end. */
  startedAt?: string;
  loadStart?: number[];
  loadEnd?: number[];
  profile?: ProfileSummary & { concurrency: number; peer: string };
}

export interface ThroughputResult {
  runsPerTool: number;
  concurrencies: number[];
  sites: SiteInfo[];
  runs: CrawlRun[];
  summaries: CrawlSummary[];
  /** feedcrawl's small-site numbers of the last published result, for the no-regression check. */
  baseline?: {
    date: string;
    summaries: { concurrency: number; pagesPerSecond: number; cpuSecondsPer1kPages: number; maxRssMb: number }[];
  };
  markdown: string;
}

export async function crawlOnce(
  ctx: BenchContext,
  site: BenchSite,
  tool: CrawlTool,
  concurrency: number,
  run: number,
  nodeArgs: string[] = [],
): Promise<CrawlRun> {
  const name = `${site.kind}-${tool.name}-c${concurrency}-r${run}`;
  const scratch = join(ctx.workDir, "crawl", name);
  await mkdir(scratch, { recursive: true });
  const outFile = join(scratch, "items.jsonl");
  const memoryFile = join(scratch, "memory.json");
  const startUrl = `${site.nginx.url}/`;
  const probe = isFeedcrawl(tool.name) ? ["--import", join(BENCH_DIR, "crawl", "memory-probe.mjs")] : [];
  const cmd = await tool.command({ startUrl, concurrency, outFile, scratch, nodeArgs: [...probe, ...nodeArgs] });
  const before = await site.nginx.requestCount();
  const measured = await runMeasured(cmd.command, cmd.args, {
    cwd: cmd.cwd,
    env: { ...cmd.env, FEEDCRAWL_BENCH_MEMORY_FILE: memoryFile },
    logFile: join(ctx.rawDir, `crawl-${name}.log`),
    timeoutMs: 15 * 60_000,
  });
  const requests = await site.nginx.requestsSince(before);
  const check = await checkItems(outFile, site.catalogue, site.nginx.url);
  const times = requests.map((r) => r.msec);
  const memory = await readFile(memoryFile, "utf8").then(
    (t) => JSON.parse(t) as MemorySplit,
    () => undefined,
  );
  const result: CrawlRun = {
    site: site.kind,
    tool: tool.name,
    concurrency,
    run,
    exitCode: measured.exitCode,
    wallSeconds: measured.wallSeconds,
    cpuSeconds: measured.cpuSeconds,
    maxRssMb: measured.maxRssMb,
    rssMb: measured.rssMb,
    ...(memory ? { memory } : {}),
    pages: requests.filter((r) => r.status === 200).length,
    requests: requests.length,
    windowSeconds: times.length ? Math.max(...times) - Math.min(...times) : 0,
    items: check.items,
    correct: check.correct,
    duplicates: check.duplicates,
  };
  const { rssMb: _, ...logged } = result;
  ctx.logger.info({ ...logged, samples: check.samples }, `Crawl run of ${tool.name} finished`);
  await rm(scratch, { recursive: true, force: true });
  return result;
}

function summarize(
  runs: CrawlRun[],
  site: SiteKind,
  tool: CrawlTool["name"],
  concurrency: number,
  expected: number,
): CrawlSummary {
  const mine = runs.filter((r) => r.site === site && r.tool === tool && r.concurrency === concurrency);
  const byPeak = [...mine].sort((a, b) => a.maxRssMb - b.maxRssMb);
  const mid = byPeak[Math.floor((byPeak.length - 1) / 2)];
  return {
    site,
    tool,
    concurrency,
    runs: mine.length,
    pagesPerSecond: median(mine.map((r) => r.pages / r.wallSeconds)),
    pagesPerSecondWindow: median(mine.map((r) => r.pages / Math.max(r.windowSeconds, 1e-3))),
    cpuSecondsPer1kPages: median(mine.map((r) => (r.cpuSeconds / Math.max(r.pages, 1)) * 1000)),
    maxRssMb: median(mine.map((r) => r.maxRssMb)),
    rssMb: mid?.rssMb ?? [],
    ...(mid?.memory ? { memory: mid.memory } : {}),
    pages: mine.map((r) => r.pages),
    items: mine.map((r) => r.items),
    correct: mine.map((r) => r.correct),
    ok:
      mine.length > 0 &&
      mine.every((r) => r.exitCode === 0 && r.items === expected && r.correct === expected && r.duplicates === 0),
  };
}

const distinct = (xs: number[]) => [...new Set(xs)].map((x) => fmt(x, 0)).join(" / ");

/** Pages per site: the small site as before; the realistic one ~5,000 detail pages. */
const SITE_PAGES: Record<SiteKind, { full: number; quick: number }> = {
  small: { full: 10_000, quick: 1_000 },
  realistic: { full: 5_250, quick: 1_050 },
};

async function loadBaseline(): Promise<ThroughputResult["baseline"]> {
  const date = "2026-11-25";
  try {
    const old = JSON.parse(await readFile(join(BENCH_DIR, "results", `${date}.json`), "utf8"));
    const summaries = (old.throughput?.summaries ?? []).filter(
      (s: CrawlSummary) => s.tool === "feedcrawl" && (s.site ?? "small") === "small",
    );
    return { date, summaries };
  } catch {
    return undefined;
  }
}

export async function runThroughput(
  ctx: BenchContext,
  kinds: SiteKind[] = ["small", "realistic"],
): Promise<ThroughputResult> {
  const concurrencies = [16, 64];
  const runs: CrawlRun[] = [];
  const sites: SiteInfo[] = [];
  for (const kind of kinds) {
    const site = await startBenchSite(ctx, ctx.quick ? SITE_PAGES[kind].quick : SITE_PAGES[kind].full, kind);
    const info: SiteInfo = {
      kind,
      pages: site.pages,
      items: site.items,
      bytes: site.bytes,
      ceilings: [],
      startedAt: new Date().toISOString(),
      loadStart: os.loadavg(),
    };
    sites.push(info);
    try {
      for (const c of concurrencies) info.ceilings.push(await measureServerCeiling(site, c));
      ctx.logger.info({ kind, ceilings: info.ceilings }, "Measured nginx's ceiling");
      for (const concurrency of concurrencies) {
        for (let run = 1; run <= ctx.runs; run++) {
          // Interleave, and rotate the order each round so no tool always goes first.
          const order = CRAWL_TOOLS.map((_, i) => CRAWL_TOOLS[(i + run - 1) % CRAWL_TOOLS.length]!);
          for (const tool of order) runs.push(await crawlOnce(ctx, site, tool, concurrency, run));
        }
      }
      const profile = await profileIfSlower(ctx, site, runs, concurrencies);
      if (profile) info.profile = profile;
    } finally {
      info.loadEnd = os.loadavg();
      await site.nginx.stop();
    }
  }
  const summaries = sites.flatMap((site) =>
    concurrencies.flatMap((c) => CRAWL_TOOLS.map((t) => summarize(runs, site.kind, t.name, c, site.items))),
  );
  const baseline = await loadBaseline();
  const result: ThroughputResult = {
    runsPerTool: ctx.runs,
    concurrencies,
    sites,
    runs,
    summaries,
    ...(baseline ? { baseline } : {}),
    markdown: "",
  };
  result.markdown = throughputMarkdown(result);
  return result;
}

/** Where feedcrawl is slower than a peer (or with --profile), one more feedcrawl run under --cpu-prof says why. */
async function profileIfSlower(ctx: BenchContext, site: BenchSite, runs: CrawlRun[], concurrencies: number[]) {
  for (const concurrency of concurrencies) {
    const ours = summarize(runs, site.kind, "feedcrawl", concurrency, site.items);
    const faster = CRAWL_TOOLS.filter((t) => !isFeedcrawl(t.name))
      .map((t) => summarize(runs, site.kind, t.name, concurrency, site.items))
      .filter((s) => s.pagesPerSecond > ours.pagesPerSecond);
    if (faster.length === 0 && !(ctx.profile && concurrency === concurrencies.at(-1))) continue;
    const dir = join(ctx.rawDir, `cpuprofile-${site.kind}-c${concurrency}`);
    await mkdir(dir, { recursive: true });
    const feedcrawlTool = CRAWL_TOOLS.find((t) => t.name === "feedcrawl")!;
    await crawlOnce(ctx, site, feedcrawlTool, concurrency, 0, ["--cpu-prof", `--cpu-prof-dir=${dir}`]);
    const summary = await summarizeProfileDir(dir);
    ctx.logger.info({ file: summary?.file, concurrency, site: site.kind }, "Profiled a feedcrawl crawl");
    if (summary) return { ...summary, concurrency, peer: faster.map((f) => f.tool).join(", ") };
  }
  return undefined;
}

/** Goals per site: the realistic site's from issue 17, the small site's from the first bench plus no regression. */
export function goalMisses(r: ThroughputResult, site: SiteKind, c: number, tool = "feedcrawl"): string[] {
  const get = (name: string) => r.summaries.find((s) => s.site === site && s.tool === name && s.concurrency === c);
  const ours = get(tool);
  const scrapy = get("scrapy");
  const crawlee = get("crawlee");
  if (!ours || !scrapy || !crawlee) return ["not measured"];
  const misses: string[] = [];
  const speed = (peer: CrawlSummary, want: number) => {
    const x = ours.pagesPerSecond / peer.pagesPerSecond;
    if (!(x >= want)) misses.push(`pages/s ${fmt(x, 2)}× ${peer.tool} (goal ≥ ${want}×)`);
  };
  if (site === "realistic") {
    speed(scrapy, 5);
    speed(crawlee, 3);
    for (const peer of [scrapy, crawlee])
      if (!(ours.cpuSecondsPer1kPages < peer.cpuSecondsPer1kPages)) misses.push(`CPU per page not below ${peer.tool}`);
    if (!(ours.maxRssMb <= 1.5 * scrapy.maxRssMb))
      misses.push(`peak RSS ${fmt(ours.maxRssMb / scrapy.maxRssMb, 2)}× Scrapy (goal ≤ 1.5×)`);
  } else {
    speed(scrapy, 2);
    speed(crawlee, 1.5);
    const head = get("feedcrawl-head");
    if (head && tool !== head.tool && ours.cpuSecondsPer1kPages > 1.1 * head.cpuSecondsPer1kPages)
      misses.push(`CPU per page ${fmt(ours.cpuSecondsPer1kPages / head.cpuSecondsPer1kPages, 2)}× git HEAD's`);
  }
  if (!ours.ok) misses.push("items not all correct");
  return misses;
}

const BARS = "▁▂▃▄▅▆▇█";
/** RSS over time as a 24-character line, scaled to `top` MB; one character per slice of the run. */
export function rssLine(samples: number[], top: number, width = 24): string {
  if (samples.length === 0 || !(top > 0)) return "–";
  const out: string[] = [];
  for (let i = 0; i < width; i++) {
    const from = Math.floor((i * samples.length) / width);
    const slice = samples.slice(from, Math.max(from + 1, Math.floor(((i + 1) * samples.length) / width)));
    const v = Math.max(...slice);
    out.push(BARS[Math.min(BARS.length - 1, Math.floor((v / top) * BARS.length))]!);
  }
  return out.join("");
}

const SITE_TITLES: Record<SiteKind, string> = {
  small: "Small pages (books.toscrape-shaped, 1.5–5 KB)",
  realistic: "Realistic-weight pages (37–56 KB, DOM depth 20–30; bench/crawl/heavy-site.ts)",
};

export function throughputMarkdown(r: ThroughputResult): string {
  const lines: string[] = [];
  lines.push(
    `Each tool: ${r.runsPerTool} run${r.runsPerTool === 1 ? "" : "s"} per site and concurrency, interleaved (order rotated each round); medians. ` +
      `Pages = 200 responses in nginx's access log during the run; pages/s = pages ÷ wall time of the whole process (start-up included); ` +
      `CPU = user + system seconds of the crawler process (GNU time); peak RSS = its maximum resident set; ` +
      `RSS over time = the process tree's RSS sampled every ${RSS_SAMPLE_MS} ms (run with the median peak), one character per 1/24 of the run, scaled to the highest peak of the group. ` +
      `feedcrawl = this checkout compiled (dist/, as the image ships it) with the env the operator gives a runner pod of the default resources (\`${Object.entries(
        DEFAULT_RUNNER_RUNTIME_ENV,
      )
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")}\`): the goals apply to it; ` +
      "feedcrawl-cli = the same CLI without that env (`feedcrawl crawl` on a laptop: Node's default heap sizing, glibc's default arenas); feedcrawl-head = git HEAD's TypeScript sources as they shipped (before this checkout's changes), same run.",
  );
  for (const site of r.sites) lines.push("", ...siteMarkdown(r, site));
  lines.push("");
  lines.push("<details><summary>Every run</summary>");
  lines.push("");
  lines.push(
    "| site | concurrency | tool | run | exit | wall s | CPU s | peak RSS MB | pages | requests | items | correct |",
  );
  lines.push("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const x of r.runs) {
    lines.push(
      `| ${x.site} | ${x.concurrency} | ${x.tool} | ${x.run} | ${x.exitCode} | ${fmt(x.wallSeconds)} | ${fmt(x.cpuSeconds)} | ${fmt(x.maxRssMb, 0)} | ` +
        `${x.pages} | ${x.requests} | ${x.items} | ${x.correct} |`,
    );
  }
  lines.push("");
  lines.push("</details>");
  return lines.join("\n");
}

function siteMarkdown(r: ThroughputResult, site: SiteInfo): string[] {
  const lines: string[] = [];
  lines.push(`### ${SITE_TITLES[site.kind]}`);
  lines.push("");
  if (site.startedAt && site.loadStart && site.loadEnd) {
    const load = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(" / ");
    lines.push(
      `_This site's runs: from ${site.startedAt.slice(0, 19).replace("T", " ")} UTC; load average (1/5/15 min) ${load(site.loadStart)} at the start, ${load(site.loadEnd)} at the end._`,
    );
    lines.push("");
  }
  lines.push(
    `${fmt(site.pages, 0)} pages (${fmt(site.items, 0)} detail pages = expected items), ${fmt(site.bytes / site.pages / 1024, 1)} KB of HTML per page on average, static files served by nginx on 127.0.0.1. ` +
      `Server ceiling (wrk on one detail page, same machine): ${site.ceilings.map((c) => `${fmt(c.requestsPerSecond, 0)} req/s at ${c.connections} connections`).join(", ")}.`,
  );
  lines.push("");
  lines.push(
    "| concurrency | tool | pages/s | pages/s (first→last request) | CPU s per 1k pages | peak RSS MB | RSS over time | items correct (of " +
      fmt(site.items, 0) +
      ") | feedcrawl ÷ tool: pages/s, CPU per page, peak RSS | goals |",
  );
  lines.push("|---:|---|---:|---:|---:|---:|---|---:|---|---|");
  for (const c of r.concurrencies) {
    const rows = r.summaries.filter((s) => s.site === site.kind && s.concurrency === c);
    const ours = rows.find((s) => s.tool === "feedcrawl");
    if (!ours) continue;
    const top = Math.max(...rows.map((s) => Math.max(s.maxRssMb, ...s.rssMb)));
    for (const s of rows) {
      const ratios = isFeedcrawl(s.tool)
        ? "—"
        : `${ratio(ours.pagesPerSecond, s.pagesPerSecond)}, ${ratio(ours.cpuSecondsPer1kPages, s.cpuSecondsPer1kPages)}, ${ratio(ours.maxRssMb, s.maxRssMb)}`;
      const misses = isFeedcrawl(s.tool) ? goalMisses(r, site.kind, c, s.tool) : [];
      const goals = !isFeedcrawl(s.tool) ? "" : misses.length ? `**missed: ${misses.join("; ")}**` : "met";
      lines.push(
        `| ${c} | ${s.tool}${s.ok ? "" : " **(invalid)**"} | ${fmt(s.pagesPerSecond)} | ${fmt(s.pagesPerSecondWindow)} | ${fmt(s.cpuSecondsPer1kPages)} | ${fmt(s.maxRssMb, 0)} | ` +
          `\`${rssLine(s.rssMb, top)}\` | ${distinct(s.correct)} | ${ratios} | ${goals} |`,
      );
    }
  }
  lines.push("");
  const goalText =
    site.kind === "realistic"
      ? "Goals (issue 17): pages/s ≥ 5× Scrapy and ≥ 3× Crawlee, CPU s per 1k pages below both, peak RSS ≤ 1.5× Scrapy's; every item correct."
      : `Goals: pages/s ≥ 2× Scrapy and ≥ 1.5× Crawlee; CPU per page no more than 10 % above git HEAD's (feedcrawl-head, the same run); every item correct. ${
          r.baseline
            ? `For reference, ${r.baseline.date} (10k pages, quieter machine): ${r.baseline.summaries.map((b) => `${fmt(b.pagesPerSecond, 0)} pages/s and ${fmt(b.cpuSecondsPer1kPages)} CPU s/1k at concurrency ${b.concurrency}`).join(", ")}.`
            : ""
        }`;
  lines.push(goalText);
  const split = r.summaries.filter((s) => s.site === site.kind && isFeedcrawl(s.tool) && s.memory);
  if (split.length) {
    lines.push("");
    lines.push(
      "feedcrawl's memory at its peak RSS (`process.memoryUsage()` every 100 ms, bench/crawl/memory-probe.mjs): " +
        split
          .map((s) => {
            const m = s.memory!.atPeakRss;
            return `${s.tool} at concurrency ${s.concurrency}: RSS ${m.rss} MB = V8 heap ${m.heapTotal} MB (${m.heapUsed} MB used) + external ${m.external} MB (arrayBuffers ${m.arrayBuffers} MB) + the rest (code, stacks, native)`;
          })
          .join("; ") +
        ".",
    );
  }
  if (site.profile) lines.push("", ...profileMarkdown(site.profile));
  return lines;
}

function profileMarkdown(p: NonNullable<SiteInfo["profile"]>): string[] {
  const lines: string[] = [];
  lines.push(
    (p.peer
      ? `feedcrawl was slower than ${p.peer} at concurrency ${p.concurrency}; a profiled feedcrawl run `
      : `Where a feedcrawl crawl at concurrency ${p.concurrency} spends its CPU: a profiled run `) +
      `(\`node --cpu-prof\`, ${fmt(p.totalMs / 1000)} s profiled, main thread, self time; not counted in the medians):`,
  );
  lines.push("");
  lines.push("| area | self ms | share |");
  lines.push("|---|---:|---:|");
  for (const a of p.byArea) lines.push(`| ${a.area} | ${fmt(a.selfMs, 0)} | ${fmt(a.share * 100, 1)} % |`);
  lines.push("");
  lines.push("| function | where | self ms | share |");
  lines.push("|---|---|---:|---:|");
  for (const f of p.byFunction)
    lines.push(`| \`${f.name}\` | ${f.where || "—"} | ${fmt(f.selfMs, 0)} | ${fmt(f.share * 100, 1)} % |`);
  return lines;
}
