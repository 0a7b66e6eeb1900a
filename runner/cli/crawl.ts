// `feedcrawl crawl FILE.yaml`: runs a CrawlJob manifest (or a bare spider spec)
// on this machine, no cluster. Validates first (exit 2 on any error), crawls
// into the manifest's feeds (or ./feeds/<name>-<time>.jsonl), shows a live
// progress line on a TTY (pino JSON logs otherwise), stops gracefully on
// Ctrl-C/SIGTERM (a second Ctrl-C exits at once) and prints the final stats.
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import type { Feeds } from "../../crds/schema/feeds.ts";
import { validateCrawlJobSpec } from "../../spec/validate.ts";
import { Crawler } from "../crawler.ts";
import type { StatsSnapshot } from "../stats.ts";
import { loadManifestArg } from "./manifest-arg.ts";

const usage = `usage: feedcrawl crawl FILE.yaml [options]

Runs a CrawlJob manifest (or a bare spider spec) on this machine.

options:
  --allow-private-networks  let the crawl reach loopback/private/link-local addresses
                            (the address guard refuses them unless the manifest allows them)
  --out DIR                 where the default feed goes when the manifest has no feeds
                            (default ./feeds: DIR/<name>-<time>.jsonl)
  --log-level LEVEL         pino level (default info; warn on a TTY)
  --no-progress             no live progress line, JSON logs even on a TTY
  -h, --help                this text

exit codes: 0 crawl finished (or a closeSpider limit hit), 1 the feeds failed,
            2 invalid manifest, 130 stopped by Ctrl-C (SIGINT), 143 by SIGTERM
`;

function formatDuration(s: number): string {
  const m = Math.floor(s / 60);
  const sec = Math.floor(s % 60);
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m` : `${m}:${String(sec).padStart(2, "0")}`;
}

function depthLine(depth: Record<string, number>): string {
  const entries = Object.entries(depth);
  if (entries.length <= 8) return JSON.stringify(depth);
  const head = Object.fromEntries(entries.slice(0, 6));
  return `${JSON.stringify(head).slice(0, -1)}, … (max depth ${entries[entries.length - 1]?.[0]})}`;
}

function summary(stats: StatsSnapshot): string {
  const s = stats.status;
  const rate = stats.elapsedSeconds > 0 ? (s.pages / stats.elapsedSeconds).toFixed(1) : "0";
  const lines = [
    `finish reason     ${stats.finishReason ?? "?"}`,
    `elapsed           ${stats.elapsedSeconds.toFixed(1)} s (${rate} pages/s)`,
    `requests          ${s.requests} (retries ${stats.retries}, redirects ${stats.redirects}, robots.txt ${stats.robotsTxtFetched})`,
    `responses         ${s.responses} ${JSON.stringify(stats.responsesByStatus)}`,
    `pages             ${s.pages} (non-HTML ${stats.nonHtml})`,
    `items             ${s.items} ${JSON.stringify(stats.itemsByType)}`,
    `items dropped     ${s.itemsDropped} ${JSON.stringify(stats.itemsDroppedByReason)}`,
    `field problems    ${JSON.stringify(stats.fieldErrors)}`,
    `requests dropped  ${JSON.stringify(stats.requestsDropped)}`,
    `errors            ${s.errors} ${JSON.stringify(stats.errorsByKind)}`,
    `bytes             ${s.bytes}`,
    `depth             ${depthLine(stats.depth)}`,
  ];
  return `${lines.join("\n")}\n`;
}

export async function main(argv: string[]): Promise<number> {
  let values: {
    "allow-private-networks"?: boolean;
    out?: string;
    "log-level"?: string;
    "no-progress"?: boolean;
    help?: boolean;
  };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        "allow-private-networks": { type: "boolean" },
        out: { type: "string" },
        "log-level": { type: "string" },
        "no-progress": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    process.stderr.write(`feedcrawl crawl: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const loaded = await loadManifestArg(positionals, usage);
  if (typeof loaded === "number") return loaded;
  const { file, manifest } = loaded;
  const spec = manifest.spec;
  if (values["allow-private-networks"] && spec.spider && typeof spec.spider === "object") {
    spec.spider.settings = { ...(spec.spider.settings ?? {}), allowPrivateNetworks: true };
  }
  const errors = validateCrawlJobSpec(spec);
  if (errors.length > 0) {
    for (const e of errors) process.stderr.write(`${e.path}: ${e.message}\n`);
    process.stderr.write(`${file}: ${errors.length} error${errors.length === 1 ? "" : "s"}; nothing was crawled\n`);
    return 2;
  }

  const tty = process.stderr.isTTY === true && !values["no-progress"];
  let progressShown = false;
  const clearProgress = () => {
    if (progressShown) process.stderr.write("\r\x1b[K");
    progressShown = false;
  };
  const destination = tty
    ? {
        write(line: string) {
          clearProgress();
          process.stderr.write(line);
        },
      }
    : pino.destination({ fd: 2, sync: true });
  const logger = pino(
    { level: values["log-level"] ?? (tty ? "warn" : "info"), base: { job: manifest.name } },
    destination,
  );

  const outDir = resolve(values.out ?? "feeds");
  const feeds: Feeds =
    spec.feeds && Object.keys(spec.feeds).length > 0
      ? spec.feeds
      : { [`file://${outDir}/%(name)s-%(time)s.jsonl`]: { format: "jsonlines" } };

  let exporter: import("../feeds/exporter.ts").FeedExporter;
  try {
    // Loaded only now: the exporter pulls in the AWS SDK, which an invalid manifest never needs.
    const { createFeedExporter } = await import("../feeds/exporter.ts");
    exporter = await createFeedExporter({
      feeds,
      ...(spec.storage ? { storage: spec.storage } : {}),
      params: { name: spec.spider.name, job: manifest.name, shard: 0 },
      logger,
    });
  } catch (err) {
    process.stderr.write(`feedcrawl crawl: cannot open the feeds: ${(err as Error).message}\n`);
    return 1;
  }

  const stop = new AbortController();
  const crawler = new Crawler({
    spider: spec.spider,
    sink: exporter,
    logger,
    signal: stop.signal,
    moduleBaseDir: dirname(resolve(file)),
  });

  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted && sig === "SIGINT") {
      clearProgress();
      process.stderr.write("feedcrawl crawl: second Ctrl-C, exiting now (open feed files are lost)\n");
      process.exit(130);
    }
    interrupted ??= sig;
    clearProgress();
    process.stderr.write(
      `feedcrawl crawl: ${sig}, stopping: finishing in-flight pages and closing the feeds${sig === "SIGINT" ? " (Ctrl-C again to quit at once)" : ""}\n`,
    );
    stop.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  let progress: NodeJS.Timeout | undefined;
  if (tty) {
    let lastPages = 0;
    let lastAt = Date.now();
    let rate = 0;
    progress = setInterval(() => {
      const s = crawler.stats;
      const now = Date.now();
      const inst = ((s.pages - lastPages) * 1000) / Math.max(1, now - lastAt);
      rate = rate === 0 ? inst : rate * 0.7 + inst * 0.3;
      lastPages = s.pages;
      lastAt = now;
      const line =
        `${formatDuration(s.elapsedSeconds())}  pages ${s.pages} (${rate.toFixed(1)}/s)  items ${s.items}` +
        `  errors ${s.errors}  queue ${crawler.queueSize}  in flight ${s.gauges.inFlight()}`;
      process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns || 120) - 1)}`);
      progressShown = true;
    }, 500);
  }

  let result: Awaited<ReturnType<Crawler["run"]>>;
  try {
    result = await crawler.run();
  } catch (err) {
    if (progress) clearInterval(progress);
    clearProgress();
    process.stderr.write(`feedcrawl crawl: ${(err as Error).message}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  if (progress) clearInterval(progress);
  clearProgress();

  const out = tty ? process.stderr : process.stdout;
  if (tty) out.write(summary(result.stats));
  else {
    const written = exporter.closedFeeds.map((f) => ({ uri: f.uri, items: f.items, bytes: f.bytes }));
    out.write(`${JSON.stringify({ reason: result.reason, stats: result.stats, feeds: written })}\n`);
  }
  for (const f of exporter.closedFeeds) {
    if (tty) out.write(`feed  ${f.uri}  ${f.items} items  ${f.bytes} bytes\n`);
  }
  if (result.error) {
    process.stderr.write(`feedcrawl crawl: the feeds failed: ${result.error.message}\n`);
    return 1;
  }
  if (interrupted) return interrupted === "SIGTERM" ? 143 : 130;
  return 0;
}
