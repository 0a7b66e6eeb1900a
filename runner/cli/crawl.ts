// `feedcrawl crawl FILE.yaml`: runs a CrawlJob manifest (or a bare spider spec)
// on this machine, no cluster. Validates first (exit 2 on any error), crawls
// into the manifest's feeds (or ./feeds/<name>-<time>.jsonl), shows a live
// progress line on a TTY (pino JSON logs otherwise), stops gracefully on
// Ctrl-C/SIGTERM (a second Ctrl-C exits at once) and prints the final stats.
// stdout carries nothing but the items of `stdout:` feeds: logs, progress and
// the stats all go to stderr.
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type Logger, pino } from "pino";
import type { CrawlJobSpec } from "../../crds/schema/crawljob.ts";
import type { Feeds } from "../../crds/schema/feeds.ts";
import { parseOrUsage } from "../../lib/cli-args.ts";
import { proxyUrlProblem } from "../../spec/proxy-url.ts";
import { type LoadedManifest, validateCrawlJobSpec } from "../../spec/validate.ts";
import { Crawler, type CrawlResult } from "../crawler.ts";
import { DeltaRun } from "../delta/delta-run.ts";
import type { FeedExporter } from "../feeds/exporter.ts";
import { type ProxyPlan, proxyPlanFromEnv } from "../proxy.ts";
import { unresumableFeeds } from "../state/resumable-feeds.ts";
import { type CrawlState, resumeBatchIds, type StateOpening } from "../state/types.ts";
import type { StatsSnapshot } from "../stats.ts";
import { loadManifestArg } from "./manifest-arg.ts";

const usage = `usage: feedcrawl crawl FILE.yaml [options]

Runs a CrawlJob manifest (or a bare spider spec) on this machine.

options:
  --allow-private-networks  let the crawl reach loopback/private/link-local addresses
                            (the address guard refuses them unless the manifest allows them)
  --out DIR                 where the default feed goes when the manifest has no feeds
                            (default ./feeds: DIR/<name>-<time>.jsonl)
  --jobdir DIR              keep the crawl's state in DIR (frontier, seen-set, delivered batches):
                            killed at any moment, the same command continues it, each item
                            delivered once; once finished, it says so and writes nothing
  --delta-dir DIR           a delta crawl (spider.settings.delta; this option turns it on): the
                            state of the last finished runs in DIR/<key>.sqlite (default dir
                            .feedcrawl/delta); only new or changed items are written
  --frontier redis://HOST:PORT/DB
                            share the crawl's state in Redis: every process started with the
                            same manifest and URL crawls part of one crawl (per-host politeness
                            kept across all of them); feed names need %(worker)s
  --worker NAME             this process's id in a --frontier crawl, the same after a restart
                            (default: the lowest free w0, w1, …)
  --log-level LEVEL         pino level (default info; warn on a TTY)
  --no-progress             no live progress line, JSON logs even on a TTY
  -h, --help                this text

stdout carries only the items of stdout: feeds; logs and the final stats go to stderr.

environment: HTTP_PROXY / HTTPS_PROXY (proxy for http:// / https:// URLs) and NO_PROXY
             apply unless the manifest sets spider.settings.proxy

exit codes: 0 crawl finished (or a closeSpider limit hit), 1 the feeds failed,
            2 invalid manifest, 130 stopped by Ctrl-C (SIGINT), 143 by SIGTERM
`;

interface CrawlArgs {
  file: string;
  manifest: LoadedManifest;
  allowPrivateNetworks: boolean;
  out: string | undefined;
  jobdir: string | undefined;
  deltaDir: string | undefined;
  frontier: string | undefined;
  worker: string | undefined;
  logLevel: string | undefined;
  progress: boolean;
}

/** Fields only a cluster acts on; a local run names the ones it ignores, once. */
const CLUSTER_ONLY = ["ingest", "runner", "ttlSecondsAfterFinished", "suspend"] as const;

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
    ...(stats.sitemaps > 0 ? [`sitemaps          ${stats.sitemaps} read, ${stats.sitemapEntries} entries`] : []),
    `errors            ${s.errors} ${JSON.stringify(stats.errorsByKind)}`,
    `bytes             ${s.bytes}`,
    `depth             ${depthLine(stats.depth)}`,
  ];
  return `${lines.join("\n")}\n`;
}

/** Parses the options and loads FILE; an exit code when there is nothing to crawl. */
async function parseCrawlArgs(argv: string[]): Promise<CrawlArgs | number> {
  const parsed = parseOrUsage(
    "feedcrawl crawl",
    usage,
    () => parseOptions(argv),
    (p) => p.values.help,
  );
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  const loaded = await loadManifestArg(positionals, usage);
  if (typeof loaded === "number") return loaded;
  return {
    ...loaded,
    allowPrivateNetworks: values["allow-private-networks"] ?? false,
    out: values.out,
    jobdir: values.jobdir,
    deltaDir: values["delta-dir"],
    frontier: values.frontier,
    worker: values.worker,
    logLevel: values["log-level"],
    progress: !values["no-progress"],
  };
}

function parseOptions(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      "allow-private-networks": { type: "boolean" },
      out: { type: "string" },
      jobdir: { type: "string" },
      "delta-dir": { type: "string" },
      frontier: { type: "string" },
      worker: { type: "string" },
      "log-level": { type: "string" },
      "no-progress": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}

/** Applies the command-line overrides and validates; exit code 2 after printing every error. */
async function checkSpec(args: CrawlArgs): Promise<number | undefined> {
  const { spec } = args.manifest;
  if (args.allowPrivateNetworks && spec.spider && typeof spec.spider === "object") {
    spec.spider.settings = { ...(spec.spider.settings ?? {}), allowPrivateNetworks: true };
  }
  const errors = await validateCrawlJobSpec(spec);
  if (errors.length === 0) return undefined;
  for (const e of errors) process.stderr.write(`${e.path}: ${e.message}\n`);
  process.stderr.write(`${args.file}: ${errors.length} error${errors.length === 1 ? "" : "s"}; nothing was crawled\n`);
  return 2;
}

function clusterOnlyFields(spec: CrawlJobSpec): string[] {
  const fields: string[] = CLUSTER_ONLY.filter((f) => spec[f] !== undefined).map((f) => `spec.${f}`);
  if (spec.storage?.s3?.credentialsSecretRef) fields.push("spec.storage.s3.credentialsSecretRef");
  return fields;
}

/** stderr: pino logs, and on a TTY a live progress line that logs are written above. */
class Terminal {
  readonly tty: boolean;
  #shown = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(progress: boolean) {
    this.tty = process.stderr.isTTY === true && progress;
  }

  logger(level: string | undefined, job: string): Logger {
    const destination = this.tty
      ? {
          write: (line: string) => {
            this.clear();
            process.stderr.write(line);
          },
        }
      : pino.destination({ fd: 2, sync: true });
    return pino({ level: level ?? (this.tty ? "warn" : "info"), base: { job } }, destination);
  }

  clear(): void {
    if (this.#shown) process.stderr.write("\r\x1b[K");
    this.#shown = false;
  }

  /** Redraws the line every 500 ms: elapsed, pages and a smoothed pages/s, items, errors, queue, in flight. */
  startProgress(crawler: Crawler): void {
    if (!this.tty) return;
    let lastPages = 0;
    let lastAt = Date.now();
    let rate = 0;
    this.#timer = setInterval(() => {
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
      this.#shown = true;
    }, 500);
  }

  stopProgress(): void {
    clearInterval(this.#timer);
    this.clear();
  }
}

async function openFeeds(args: CrawlArgs, logger: Logger, job?: OpenJob): Promise<FeedExporter | number> {
  const { spec, name } = args.manifest;
  const outDir = resolve(args.out ?? "feeds");
  const feeds: Feeds =
    spec.feeds && Object.keys(spec.feeds).length > 0
      ? spec.feeds
      : job?.worker !== undefined
        ? { [`file://${outDir}/%(name)s-%(worker)s-%(time)s.jsonl`]: { format: "jsonlines" } }
        : { [`file://${outDir}/%(name)s-%(time)s.jsonl`]: { format: "jsonlines" } };
  try {
    // Loaded only now: the exporter pulls in the AWS SDK, which an invalid manifest never needs.
    const { createFeedExporter } = await import("../feeds/exporter.ts");
    return await createFeedExporter({
      feeds,
      ...(spec.storage ? { storage: spec.storage } : {}),
      params: {
        name: spec.spider.name,
        job: name,
        shard: 0,
        ...(job?.worker !== undefined ? { worker: job.worker } : {}),
      },
      logger,
      ...(job ? { state: job.state, resumeAfter: job.resumeAfter } : {}),
    });
  } catch (err) {
    process.stderr.write(`feedcrawl crawl: cannot open the feeds: ${(err as Error).message}\n`);
    return 1;
  }
}

interface OpenJob {
  state: CrawlState;
  opening: StateOpening;
  resumeAfter: Record<string, number>;
  /** --frontier: this process's worker id (%(worker)s). */
  worker?: string;
}

/** --frontier: joins the shared crawl in Redis; an exit code when it finished already or Redis refused. */
async function openFrontier(url: string, args: CrawlArgs, logger: Logger): Promise<OpenJob | number> {
  if (args.jobdir) {
    process.stderr.write(
      "feedcrawl crawl: --frontier and --jobdir exclude each other (the frontier keeps the state)\n",
    );
    return 2;
  }
  const { openRedisState } = await import("../state/redis-open.ts");
  try {
    const opened = await openRedisState({
      url,
      job: `local/${args.manifest.name}`,
      ...(args.worker ? { worker: args.worker } : {}),
      logger,
    });
    if (opened.opening.status === "finished") {
      process.stderr.write(
        `feedcrawl crawl: the shared crawl ${args.manifest.name} already finished (${opened.opening.finishReason}): nothing to do\n`,
      );
      return 0;
    }
    return { ...opened, worker: opened.state.worker };
  } catch (err) {
    process.stderr.write(`feedcrawl crawl: ${(err as Error).message}\n`);
    return 1;
  }
}

/**
 * --jobdir: opens and recovers the state; an exit code when there is nothing to do
 * (finished), a feed cannot be resumed (2), or the state cannot be opened.
 */
async function openJobDir(dir: string, args: CrawlArgs, logger: Logger): Promise<OpenJob | number> {
  const problems = unresumableFeeds(args.manifest.spec.feeds ?? {});
  for (const p of problems) process.stderr.write(`${p.path}: ${p.message}\n`);
  if (problems.length > 0) return 2;
  const { SqliteState } = await import("../state/sqlite.ts");
  const state = new SqliteState({ dir: resolve(dir), identity: args.manifest.spec.spider.name });
  let opening: StateOpening;
  try {
    opening = await state.open();
  } catch (err) {
    process.stderr.write(`feedcrawl crawl: ${(err as Error).message}\n`);
    return 1;
  }
  if (opening.status === "finished") {
    await state.close();
    process.stderr.write(
      `feedcrawl crawl: the crawl in ${state.file} already finished (${opening.finishReason}): nothing to do\n`,
    );
    return 0;
  }
  if (opening.status === "resumed")
    logger.info(
      { jobdir: dir, pagesDone: opening.done, requeued: opening.requeued, pendingBatches: opening.pending.length },
      `Resuming the crawl in ${dir}: ${opening.done} pages done, ${opening.requeued} requeued`,
    );
  const resumeAfter = resumeBatchIds(await state.lastBatchIds(), opening.pending);
  return { state, opening, resumeAfter };
}

/** spider.settings.delta (or --delta-dir): the delta state in a local directory, loaded. */
async function openDelta(args: CrawlArgs, logger: Logger): Promise<DeltaRun | undefined> {
  const { spider } = args.manifest.spec;
  const setting = spider.settings?.delta;
  if (!setting?.enabled && args.deltaDir === undefined) return undefined;
  const { SqliteDeltaStore } = await import("../delta/sqlite.ts");
  const store = new SqliteDeltaStore(resolve(args.deltaDir ?? ".feedcrawl/delta"), setting?.key ?? spider.name);
  return DeltaRun.open(store, spider, logger);
}

/**
 * Saves the delta state only when the run finished and every item is stored: a
 * run cut short (a limit, a signal, a failed feed) comes again whole next time.
 * A failed save is a warning: this run's items are stored, the next run repeats them.
 */
async function finishDelta(delta: DeltaRun, result: CrawlResult, interrupted: boolean): Promise<void> {
  try {
    await delta.finish(result.reason === "finished" && !result.error && !interrupted, result.reason);
  } catch (err) {
    process.stderr.write(`feedcrawl crawl: the delta state was not saved: ${(err as Error).message}\n`);
  } finally {
    await delta.close();
  }
}

/** Whether a crawl that ended this way is over for good (a rerun writes nothing) rather than stopped midway. */
function crawlIsOver(result: CrawlResult, interrupted: boolean): boolean {
  return !result.error && !interrupted && result.reason !== "shutdown";
}

/** SIGINT/SIGTERM stop the crawl gracefully; a second Ctrl-C exits at once. */
function handleSignals(stop: AbortController, terminal: Terminal) {
  const state: { interrupted?: NodeJS.Signals; remove(): void } = {
    remove: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
  const onSignal = (sig: NodeJS.Signals) => {
    terminal.clear();
    if (state.interrupted && sig === "SIGINT") {
      process.stderr.write("feedcrawl crawl: second Ctrl-C, exiting now (open feed files are lost)\n");
      process.exit(130);
    }
    state.interrupted ??= sig;
    process.stderr.write(
      `feedcrawl crawl: ${sig}, stopping: finishing in-flight pages and closing the feeds${sig === "SIGINT" ? " (Ctrl-C again to quit at once)" : ""}\n`,
    );
    stop.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return state;
}

/** The final stats, on stderr: a table on a TTY, one JSON line otherwise. */
function printSummary(tty: boolean, result: CrawlResult, exporter: FeedExporter): void {
  const out = process.stderr;
  const written = exporter.closedFeeds.map((f) => ({ uri: f.uri, items: f.items, bytes: f.bytes }));
  const failed = exporter.failedFeeds.map((f) => ({ uri: f.uri, items: f.items, keptAt: f.keptAt }));
  if (!tty) {
    out.write(`${JSON.stringify({ reason: result.reason, stats: result.stats, feeds: written, failed })}\n`);
    return;
  }
  out.write(summary(result.stats));
  for (const f of written) out.write(`feed  ${f.uri}  ${f.items} items  ${f.bytes} bytes\n`);
  for (const f of failed) out.write(`FAILED  ${f.uri}  ${f.items} items  kept in ${f.keptAt ?? "(nothing kept)"}\n`);
}

/** HTTP_PROXY/HTTPS_PROXY/NO_PROXY, checked; exit code 2 when a proxy variable is not a proxy URL. */
function envProxies(): ProxyPlan | number | undefined {
  const plan = proxyPlanFromEnv(process.env);
  for (const [scheme, urls] of [
    ["HTTP_PROXY", plan?.http ?? []],
    ["HTTPS_PROXY", plan?.https ?? []],
  ] as const)
    for (const u of urls) {
      const problem = proxyUrlProblem(u);
      if (problem) {
        process.stderr.write(
          `feedcrawl crawl: ${scheme} (or ${scheme.toLowerCase()}) ${JSON.stringify(u)}: ${problem}\n`,
        );
        return 2;
      }
    }
  return plan;
}

export async function main(argv: string[]): Promise<number> {
  const args = await parseCrawlArgs(argv);
  if (typeof args === "number") return args;
  const invalid = await checkSpec(args);
  if (invalid !== undefined) return invalid;
  const proxyFallback = args.manifest.spec.spider.settings?.proxy ? undefined : envProxies();
  if (typeof proxyFallback === "number") return proxyFallback;
  const { spec, name } = args.manifest;

  const terminal = new Terminal(args.progress);
  const logger = terminal.logger(args.logLevel, name);
  const ignored = clusterOnlyFields(spec);
  if (ignored.length > 0) {
    logger.warn(
      { fields: ignored },
      `CrawlJob ${name}: ${ignored.join(", ")} ignored by feedcrawl crawl (they apply on a cluster only)`,
    );
  }
  const job = args.frontier
    ? await openFrontier(args.frontier, args, logger)
    : args.jobdir
      ? await openJobDir(args.jobdir, args, logger)
      : undefined;
  if (typeof job === "number") return job;
  const exporter = await openFeeds(args, logger, job);
  if (typeof exporter === "number") {
    await job?.state.close();
    return exporter;
  }
  try {
    await exporter.recover(job?.opening.pending ?? []);
  } catch (err) {
    process.stderr.write(`feedcrawl crawl: ${(err as Error).message}\n`);
    await job?.state.close();
    return 1;
  }

  let delta: DeltaRun | undefined;
  try {
    delta = await openDelta(args, logger);
  } catch (err) {
    process.stderr.write(`feedcrawl crawl: the delta state: ${(err as Error).message}\n`);
    await job?.state.close();
    return 1;
  }
  const stop = new AbortController();
  const crawler = new Crawler({
    spider: spec.spider,
    sink: exporter,
    logger,
    signal: stop.signal,
    moduleBaseDir: dirname(resolve(args.file)),
    ...(proxyFallback ? { proxyFallback } : {}),
    httpCache: { baseDir: process.cwd() },
    ...(job ? { state: { state: job.state, queued: await job.state.queuedCount() } } : {}),
    ...(delta ? { delta } : {}),
  });
  const signals = handleSignals(stop, terminal);
  terminal.startProgress(crawler);
  let result: CrawlResult;
  try {
    result = await crawler.run();
  } catch (err) {
    terminal.stopProgress();
    process.stderr.write(`feedcrawl crawl: ${(err as Error).message}\n`);
    // Whatever was collected is still stored (or kept): never dropped with the error.
    await exporter.close("error").catch((e) => process.stderr.write(`feedcrawl crawl: ${(e as Error).message}\n`));
    await job?.state.close();
    await delta?.close();
    return 1;
  } finally {
    signals.remove();
  }
  if (delta) await finishDelta(delta, result, signals.interrupted !== undefined);
  if (job) {
    if (crawlIsOver(result, signals.interrupted !== undefined)) await job.state.markFinished(result.reason);
    await job.state.close();
  }
  terminal.stopProgress();
  printSummary(terminal.tty, result, exporter);
  if (result.error) {
    process.stderr.write(`feedcrawl crawl: the feeds failed: ${result.error.message}\n`);
    return 1;
  }
  if (signals.interrupted) return signals.interrupted === "SIGTERM" ? 143 : 130;
  return 0;
}
