// Part 1: crawl throughput of feedcrawl, Scrapy and Crawlee on the same
// nginx-served fixture site, at equal concurrency, runs interleaved.
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { BenchContext } from "../lib/context.ts";
import { type ProfileSummary, summarizeProfileDir } from "../lib/cpuprofile.ts";
import { runMeasured } from "../lib/measure.ts";
import { fmt, median, ratio } from "../lib/stats.ts";
import { checkItems } from "./items.ts";
import { type BenchSite, measureServerCeiling, type ServerCeiling, startBenchSite } from "./site.ts";
import { CRAWL_TOOLS, type CrawlTool } from "./tools.ts";

export interface CrawlRun {
  tool: CrawlTool["name"];
  concurrency: number;
  run: number;
  exitCode: number;
  wallSeconds: number;
  cpuSeconds: number;
  maxRssMb: number;
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
  tool: CrawlTool["name"];
  concurrency: number;
  runs: number;
  pagesPerSecond: number;
  pagesPerSecondWindow: number;
  cpuSecondsPer1kPages: number;
  maxRssMb: number;
  pages: number[];
  items: number[];
  correct: number[];
  ok: boolean;
}

export interface ThroughputResult {
  pagesTarget: number;
  runsPerTool: number;
  sitePages: number;
  expectedItems: number;
  concurrencies: number[];
  ceilings: ServerCeiling[];
  runs: CrawlRun[];
  summaries: CrawlSummary[];
  profile?: ProfileSummary & { concurrency: number; peer: string };
  markdown: string;
}

async function crawlOnce(
  ctx: BenchContext,
  site: BenchSite,
  tool: CrawlTool,
  concurrency: number,
  run: number,
  nodeArgs: string[] = [],
): Promise<CrawlRun> {
  const scratch = join(ctx.workDir, "crawl", `${tool.name}-c${concurrency}-r${run}`);
  await mkdir(scratch, { recursive: true });
  const outFile = join(scratch, "items.jsonl");
  const startUrl = `${site.nginx.url}/`;
  const cmd = await tool.command({ startUrl, concurrency, outFile, scratch, nodeArgs });
  const before = await site.nginx.requestCount();
  const measured = await runMeasured(cmd.command, cmd.args, {
    cwd: cmd.cwd,
    env: cmd.env,
    logFile: join(ctx.rawDir, `crawl-${tool.name}-c${concurrency}-r${run}.log`),
    timeoutMs: 15 * 60_000,
  });
  const requests = await site.nginx.requestsSince(before);
  const check = await checkItems(outFile, site.catalogue, site.nginx.url);
  const times = requests.map((r) => r.msec);
  const result: CrawlRun = {
    tool: tool.name,
    concurrency,
    run,
    exitCode: measured.exitCode,
    wallSeconds: measured.wallSeconds,
    cpuSeconds: measured.cpuSeconds,
    maxRssMb: measured.maxRssMb,
    pages: requests.filter((r) => r.status === 200).length,
    requests: requests.length,
    windowSeconds: times.length ? Math.max(...times) - Math.min(...times) : 0,
    items: check.items,
    correct: check.correct,
    duplicates: check.duplicates,
  };
  ctx.logger.info({ ...result, samples: check.samples }, `Crawl run of ${tool.name} finished`);
  await rm(scratch, { recursive: true, force: true });
  return result;
}

function summarize(runs: CrawlRun[], tool: CrawlTool["name"], concurrency: number, expected: number): CrawlSummary {
  const mine = runs.filter((r) => r.tool === tool && r.concurrency === concurrency);
  const pagesPerSecond = median(mine.map((r) => r.pages / r.wallSeconds));
  return {
    tool,
    concurrency,
    runs: mine.length,
    pagesPerSecond,
    pagesPerSecondWindow: median(mine.map((r) => r.pages / Math.max(r.windowSeconds, 1e-3))),
    cpuSecondsPer1kPages: median(mine.map((r) => (r.cpuSeconds / Math.max(r.pages, 1)) * 1000)),
    maxRssMb: median(mine.map((r) => r.maxRssMb)),
    pages: mine.map((r) => r.pages),
    items: mine.map((r) => r.items),
    correct: mine.map((r) => r.correct),
    ok: mine.length > 0 && mine.every((r) => r.exitCode === 0 && r.items === expected && r.duplicates === 0),
  };
}

const distinct = (xs: number[]) => [...new Set(xs)].map((x) => fmt(x, 0)).join(" / ");

export async function runThroughput(ctx: BenchContext): Promise<ThroughputResult> {
  const pagesTarget = ctx.quick ? 1_000 : 10_000;
  const concurrencies = [16, 64];
  const site = await startBenchSite(ctx, pagesTarget);
  const runs: CrawlRun[] = [];
  let profile: ThroughputResult["profile"];
  const ceilings: ServerCeiling[] = [];
  try {
    for (const c of concurrencies) ceilings.push(await measureServerCeiling(site, c));
    ctx.logger.info({ ceilings }, "Measured nginx's ceiling");
    for (const concurrency of concurrencies) {
      for (let run = 1; run <= ctx.runs; run++) {
        // Interleave, and rotate the order each round so no tool always goes first.
        const order = CRAWL_TOOLS.map((_, i) => CRAWL_TOOLS[(i + run - 1) % CRAWL_TOOLS.length]!);
        for (const tool of order) runs.push(await crawlOnce(ctx, site, tool, concurrency, run));
      }
    }
    // Where feedcrawl is slower than a peer (or with --profile), profile one more feedcrawl run to say why.
    for (const concurrency of concurrencies) {
      const ours = summarize(runs, "feedcrawl", concurrency, site.items);
      const faster = CRAWL_TOOLS.filter((t) => t.name !== "feedcrawl")
        .map((t) => summarize(runs, t.name, concurrency, site.items))
        .filter((s) => s.pagesPerSecond > ours.pagesPerSecond);
      const wanted = faster.length > 0 || (ctx.profile && concurrency === concurrencies.at(-1));
      if (wanted && !profile) {
        const dir = join(ctx.rawDir, `cpuprofile-c${concurrency}`);
        await mkdir(dir, { recursive: true });
        const feedcrawlTool = CRAWL_TOOLS.find((t) => t.name === "feedcrawl")!;
        await crawlOnce(ctx, site, feedcrawlTool, concurrency, 0, ["--cpu-prof", `--cpu-prof-dir=${dir}`]);
        const summary = await summarizeProfileDir(dir);
        if (summary) profile = { ...summary, concurrency, peer: faster.map((f) => f.tool).join(", ") };
        ctx.logger.info({ file: summary?.file, concurrency }, "Profiled a feedcrawl crawl");
      }
    }
  } finally {
    await site.nginx.stop();
  }
  const summaries = concurrencies.flatMap((c) => CRAWL_TOOLS.map((t) => summarize(runs, t.name, c, site.items)));
  const result: ThroughputResult = {
    pagesTarget,
    runsPerTool: ctx.runs,
    sitePages: site.pages,
    expectedItems: site.items,
    concurrencies,
    ceilings,
    runs,
    summaries,
    ...(profile ? { profile } : {}),
    markdown: "",
  };
  result.markdown = throughputMarkdown(result);
  return result;
}

export function throughputMarkdown(r: ThroughputResult): string {
  const runsPerTool = r.runsPerTool;
  const lines: string[] = [];
  lines.push(
    `Site: ${fmt(r.sitePages, 0)} pages (${fmt(r.expectedItems, 0)} detail pages = expected items), static files served by nginx on 127.0.0.1. ` +
      `Each tool: ${runsPerTool} run${runsPerTool === 1 ? "" : "s"} per concurrency, interleaved (order rotated each round); medians. ` +
      `Pages = 200 responses in nginx's access log during the run; pages/s = pages ÷ wall time of the whole process (start-up included); ` +
      `CPU = user + system seconds of the crawler process (GNU time); peak RSS = its maximum resident set.`,
  );
  lines.push("");
  lines.push(
    `Server ceiling (wrk on one detail page, same machine): ${r.ceilings.map((c) => `${fmt(c.requestsPerSecond, 0)} req/s at ${c.connections} connections`).join(", ")} — ` +
      `far above every crawler below, so the server is not the bottleneck.`,
  );
  lines.push("");
  lines.push(
    "| concurrency | tool | pages/s | pages/s (first→last request) | CPU s per 1k pages | peak RSS MB | pages fetched | items (expected " +
      fmt(r.expectedItems, 0) +
      ") | items correct | row | feedcrawl ÷ tool, pages/s | feedcrawl ÷ tool, CPU per page |",
  );
  lines.push("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|");
  for (const c of r.concurrencies) {
    const ours = r.summaries.find((s) => s.tool === "feedcrawl" && s.concurrency === c)!;
    const rows = r.summaries.filter((s) => s.concurrency === c);
    const counts = new Set(rows.flatMap((s) => s.items));
    for (const s of rows) {
      const valid = s.ok && counts.size === 1;
      const slower = s.tool !== "feedcrawl" && ours.pagesPerSecond < s.pagesPerSecond ? " **(feedcrawl slower)**" : "";
      lines.push(
        `| ${c} | ${s.tool} | ${fmt(s.pagesPerSecond)} | ${fmt(s.pagesPerSecondWindow)} | ${fmt(s.cpuSecondsPer1kPages)} | ${fmt(s.maxRssMb, 0)} | ` +
          `${distinct(s.pages)} | ${distinct(s.items)} | ${distinct(s.correct)} | ${valid ? "valid" : "**invalid**"} | ` +
          `${s.tool === "feedcrawl" ? "—" : `${ratio(ours.pagesPerSecond, s.pagesPerSecond)}${slower}`} | ` +
          `${s.tool === "feedcrawl" ? "—" : ratio(ours.cpuSecondsPer1kPages, s.cpuSecondsPer1kPages)} |`,
      );
    }
  }
  lines.push("");
  lines.push("Targets: feedcrawl ≥ 2× Scrapy and ≥ 1.5× Crawlee pages/s at equal concurrency.");
  for (const c of r.concurrencies) {
    const ours = r.summaries.find((s) => s.tool === "feedcrawl" && s.concurrency === c)!;
    const scrapy = r.summaries.find((s) => s.tool === "scrapy" && s.concurrency === c)!;
    const crawlee = r.summaries.find((s) => s.tool === "crawlee" && s.concurrency === c)!;
    const vsScrapy = ours.pagesPerSecond / scrapy.pagesPerSecond;
    const vsCrawlee = ours.pagesPerSecond / crawlee.pagesPerSecond;
    lines.push(
      `- concurrency ${c}: ${fmt(vsScrapy, 2)}× Scrapy (${vsScrapy >= 2 ? "met" : "**not met**"}), ` +
        `${fmt(vsCrawlee, 2)}× Crawlee (${vsCrawlee >= 1.5 ? "met" : "**not met**"}).`,
    );
  }
  // Say plainly wherever feedcrawl is behind a peer, not only on pages/s.
  const behind: string[] = [];
  for (const c of r.concurrencies) {
    const ours = r.summaries.find((s) => s.tool === "feedcrawl" && s.concurrency === c)!;
    for (const peer of r.summaries.filter((s) => s.tool !== "feedcrawl" && s.concurrency === c)) {
      if (ours.pagesPerSecond < peer.pagesPerSecond) behind.push(`pages/s below ${peer.tool} at concurrency ${c}`);
      if (ours.cpuSecondsPer1kPages > peer.cpuSecondsPer1kPages)
        behind.push(`more CPU per page than ${peer.tool} at concurrency ${c}`);
      if (ours.maxRssMb > peer.maxRssMb)
        behind.push(
          `higher peak RSS than ${peer.tool} at concurrency ${c} (${fmt(ours.maxRssMb, 0)} vs ${fmt(peer.maxRssMb, 0)} MB)`,
        );
    }
  }
  lines.push("");
  lines.push(behind.length ? `Where feedcrawl is behind: ${behind.join("; ")}.` : "feedcrawl is behind no peer here.");
  if (r.profile) {
    lines.push("");
    lines.push(
      (r.profile.peer
        ? `feedcrawl was slower than ${r.profile.peer} at concurrency ${r.profile.concurrency}; a profiled feedcrawl run `
        : `Where a feedcrawl crawl at concurrency ${r.profile.concurrency} spends its CPU: a profiled run `) +
        `(\`node --cpu-prof\`, ${fmt(r.profile.totalMs / 1000)} s profiled, main thread, self time; not counted in the medians):`,
    );
    lines.push("");
    lines.push("| area | self ms | share |");
    lines.push("|---|---:|---:|");
    for (const a of r.profile.byArea) lines.push(`| ${a.area} | ${fmt(a.selfMs, 0)} | ${fmt(a.share * 100, 1)} % |`);
    lines.push("");
    lines.push("| function | where | self ms | share |");
    lines.push("|---|---|---:|---:|");
    for (const f of r.profile.byFunction) {
      lines.push(`| \`${f.name}\` | ${f.where || "—"} | ${fmt(f.selfMs, 0)} | ${fmt(f.share * 100, 1)} % |`);
    }
  }
  lines.push("");
  lines.push("<details><summary>Every run</summary>");
  lines.push("");
  lines.push("| concurrency | tool | run | exit | wall s | CPU s | peak RSS MB | pages | requests | items | correct |");
  lines.push("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const x of r.runs) {
    lines.push(
      `| ${x.concurrency} | ${x.tool} | ${x.run} | ${x.exitCode} | ${fmt(x.wallSeconds)} | ${fmt(x.cpuSeconds)} | ${fmt(x.maxRssMb, 0)} | ` +
        `${x.pages} | ${x.requests} | ${x.items} | ${x.correct} |`,
    );
  }
  lines.push("");
  lines.push("</details>");
  return lines.join("\n");
}
