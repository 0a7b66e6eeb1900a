// `feedcrawl run`: what a runner pod executes. Reads the CrawlJob snapshot the
// operator mounted (FEEDCRAWL_SPEC), crawls this shard (JOB_COMPLETION_INDEX of
// FEEDCRAWL_SHARD_COUNT), hands items to the feed exporter, creates one
// CrawlFeed per file the storage confirmed, and patches the shard's counters
// and its last reported batch ids into the CrawlJob's status (a restarted
// shard reads them back from its CrawlJob to resume the numbering). SIGTERM stops scheduling, finishes in-flight
// pages, closes/uploads/reports the open batches, then exits 143: the shard
// did not finish, so the Job must run it again (its podFailurePolicy retries a
// 143 without counting it). Exit 0 only when the crawl finished and every batch
// was stored and reported.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { type Logger, pino } from "pino";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJobSpec, CrawlStats } from "../../crds/schema/crawljob.ts";
import type { Feeds, StorageSpec } from "../../crds/schema/feeds.ts";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import { SPIDER_MODULE_MOUNT_PATH } from "../../crds/schema/spider.ts";
import type { ItemSink } from "../item.ts";
import { createRunnerApi, type RunnerApi } from "../report/api.ts";
import { CrawlFeedReporter, type JobIdentity, type RetryPolicy } from "../report/crawlfeeds.ts";
import { StatsReporter } from "../report/stats-reporter.ts";

export const DEFAULT_SPEC_PATH = "/etc/feedcrawl/crawljob.json";

/**
 * Exit codes, which the runner Job's podFailurePolicy acts on
 * (operator/crawljob/runner-pod.ts): 0 the shard finished, all stored and
 * reported; 1 something was not stored or reported (retried within
 * backoffLimit); 2 bad configuration, env or spec — and nothing else — (fails
 * the Job at once); 143 stopped by SIGTERM/SIGINT after storing and reporting
 * everything collected (retried, not counted).
 */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_CONFIG = 2;
export const EXIT_STOPPED = 143;

const usage = `usage: feedcrawl run

Runs one shard of a CrawlJob inside its runner pod. Exit codes: 0 finished, 1 a
batch was not stored or reported, 2 configuration error, 143 stopped by SIGTERM
(everything collected stored and reported). Configuration comes from the
environment the operator's Job template sets:
  FEEDCRAWL_SPEC          the CrawlJob snapshot (default ${DEFAULT_SPEC_PATH})
  JOB_COMPLETION_INDEX    this shard's index (set by Kubernetes for Indexed Jobs; default 0)
  FEEDCRAWL_SHARD_COUNT   the number of shards (default 1)
  FEEDCRAWL_SPOOL_DIR     where S3 batches are spooled (default $TMPDIR/feedcrawl-spool)
  FEEDCRAWL_SPOOL_MAX_BYTES  the spool's disk budget (default 1 GiB)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   S3 credentials (else the AWS default chain)
  KUBECONFIG              outside a pod only; in a pod the ServiceAccount token is used
`;

export interface ShardEnv {
  specPath: string;
  shard: number;
  shardCount: number;
}

/** The CrawlJob snapshot the operator writes into the `<job>-spec` ConfigMap. */
export interface SpecSnapshot {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; uid: string; generation?: number };
  spec: CrawlJobSpec;
}

/** A configuration problem: the message names the variable, file or field. */
export class RunConfigError extends Error {
  override name = "RunConfigError";
}

function intVar(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min) {
    throw new RunConfigError(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

export function readShardEnv(env: NodeJS.ProcessEnv): ShardEnv {
  const shardCount = intVar(env, "FEEDCRAWL_SHARD_COUNT", 1, 1);
  const shard = intVar(env, "JOB_COMPLETION_INDEX", 0, 0);
  if (shard >= shardCount) {
    throw new RunConfigError(`JOB_COMPLETION_INDEX ${shard} is not below FEEDCRAWL_SHARD_COUNT ${shardCount}`);
  }
  return { specPath: env.FEEDCRAWL_SPEC || DEFAULT_SPEC_PATH, shard, shardCount };
}

export function loadSnapshot(path: string): SpecSnapshot {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new RunConfigError(`FEEDCRAWL_SPEC ${path}: ${(err as Error).message}`);
  }
  const s = parsed as Partial<SpecSnapshot> | null;
  const missing = (field: string) => new RunConfigError(`FEEDCRAWL_SPEC ${path}: ${field} is missing`);
  if (!s || typeof s !== "object") throw new RunConfigError(`FEEDCRAWL_SPEC ${path}: not a JSON object`);
  if (s.kind !== "CrawlJob")
    throw new RunConfigError(`FEEDCRAWL_SPEC ${path}: kind is ${JSON.stringify(s.kind)}, not CrawlJob`);
  for (const field of ["name", "namespace", "uid"] as const) {
    if (typeof s.metadata?.[field] !== "string" || !s.metadata[field]) throw missing(`metadata.${field}`);
  }
  if (!s.spec || typeof s.spec !== "object") throw missing("spec");
  if (!s.spec.spider) throw missing("spec.spider");
  if (!s.spec.feeds || Object.keys(s.spec.feeds).length === 0) {
    throw new RunConfigError(`FEEDCRAWL_SPEC ${path}: spec.feeds is empty, so nothing the crawl finds would be stored`);
  }
  return s as SpecSnapshot;
}

/** What `feedcrawl run` needs of the crawl engine (runner/crawler.ts's Crawler). */
export interface CrawlerLike {
  /** Resolves once drained and the sink closed; `error` when the sink failed. */
  run(): Promise<{ reason: string; error?: Error }>;
  stop(reason: string): void;
  readonly stats: { toStatus(): CrawlStats };
}

export type CreateCrawler = (opts: {
  spider: SpiderSpec;
  sink: ItemSink;
  logger: Logger;
  shard: { index: number; count: number };
  signal: AbortSignal;
  /** Where the pod mounts spider.moduleConfigMapRef's key. */
  moduleConfigMapDir: string;
}) => CrawlerLike;

/** What it needs of the feed exporter (runner/feeds/exporter.ts). */
export interface ExporterLike extends ItemSink {
  readonly closedFeeds: readonly FeedClosed[];
  /** Batches that could not be stored within the exporter's retry budget. */
  readonly failedFeeds?: readonly { uri: string; error: string }[];
}

export type CreateExporter = (opts: {
  feeds: Feeds;
  storage?: StorageSpec;
  params: { name: string; job: string; shard: number };
  logger: Logger;
  onFeedClosed: (ev: FeedClosed) => Promise<void>;
  resumeAfter: Record<string, number>;
}) => Promise<ExporterLike>;

export interface RunShardOptions {
  env: ShardEnv;
  snapshot: SpecSnapshot;
  api: RunnerApi;
  logger: Logger;
  createCrawler: CreateCrawler;
  createExporter: CreateExporter;
  /** Aborted on SIGTERM/SIGINT: stop scheduling, drain, close, report. */
  signal: AbortSignal;
  reportIntervalMs?: number;
  reportRetry?: RetryPolicy;
}

/** Runs one shard to the end; resolves to the process exit code. */
export async function runShard(opts: RunShardOptions): Promise<number> {
  const { env, snapshot, api, signal } = opts;
  const job: JobIdentity = {
    name: snapshot.metadata.name,
    namespace: snapshot.metadata.namespace,
    uid: snapshot.metadata.uid,
  };
  const logger = opts.logger.child({ crawljob: { namespace: job.namespace, name: job.name }, shard: env.shard });
  const feeds = new CrawlFeedReporter({ api, job, shard: env.shard, logger, retry: opts.reportRetry });

  let resumeAfter: Record<string, number>;
  try {
    resumeAfter = await feeds.resumeAfter();
  } catch (err) {
    logger.error(
      { err: (err as Error).message },
      `Could not read where CrawlJob ${job.namespace}/${job.name} shard ${env.shard} left off (its status.shardProgress)`,
    );
    return EXIT_FAILED;
  }
  if (Object.keys(resumeAfter).length > 0) {
    logger.info(
      { resumeAfter },
      `Resuming the batch numbering of CrawlJob ${job.namespace}/${job.name} shard ${env.shard}`,
    );
  }

  let exporter: ExporterLike;
  try {
    exporter = await opts.createExporter({
      feeds: snapshot.spec.feeds!,
      storage: snapshot.spec.storage,
      params: { name: snapshot.spec.spider.name, job: job.name, shard: env.shard },
      logger,
      onFeedClosed: (ev) => feeds.report(ev),
      resumeAfter,
    });
  } catch (err) {
    logger.error({ err: (err as Error).message }, `Could not open the feeds of CrawlJob ${job.namespace}/${job.name}`);
    return EXIT_FAILED;
  }

  // Watch the exporter's close: the engine calls it, and its failure means a
  // batch was not stored even if the engine itself finishes cleanly.
  let closeCalled = false;
  let closeError: unknown;
  const sink: ItemSink = {
    write: (item) => exporter.write(item),
    async close(reason) {
      closeCalled = true;
      try {
        await exporter.close(reason);
      } catch (err) {
        closeError = err;
        throw err;
      }
    },
  };

  const crawler = opts.createCrawler({
    spider: snapshot.spec.spider,
    sink,
    logger,
    shard: { index: env.shard, count: env.shardCount },
    signal,
    moduleConfigMapDir: SPIDER_MODULE_MOUNT_PATH,
  });
  const stop = () => {
    logger.info(
      `Stopping the crawl of CrawlJob ${job.namespace}/${job.name}: finishing in-flight pages and closing feeds`,
    );
    crawler.stop("shutdown");
  };
  signal.addEventListener("abort", stop, { once: true });
  if (signal.aborted) stop();

  const stats = new StatsReporter({
    api,
    job,
    shard: env.shard,
    shardCount: env.shardCount,
    stats: () => crawler.stats.toStatus(),
    logger,
    intervalMs: opts.reportIntervalMs,
  });
  stats.start();

  let reason = "unknown";
  let runError: unknown;
  try {
    const result = await crawler.run();
    reason = result.reason;
    if (result.error) runError = result.error;
  } catch (err) {
    runError = err;
  } finally {
    signal.removeEventListener("abort", stop);
  }
  if (!closeCalled) {
    // The engine did not close the sink (it failed early): close the open batches here.
    try {
      await sink.close(runError ? "error" : reason);
    } catch {
      // recorded in closeError
    }
  }
  const statsReported = await stats.finish();

  const problems: string[] = [];
  if (runError && runError !== closeError) problems.push(`the crawl failed: ${(runError as Error).message}`);
  if (closeError) problems.push(`closing the feeds failed: ${(closeError as Error).message}`);
  for (const failed of exporter.failedFeeds ?? [])
    problems.push(`the batch ${failed.uri} was not stored: ${failed.error}`);
  for (const [uri, why] of feeds.failed) problems.push(`the CrawlFeed of ${uri} was not reported: ${why}`);
  for (const feed of exporter.closedFeeds) {
    if (!feeds.reported.has(feed.uri) && !feeds.failed.has(feed.uri))
      problems.push(`the CrawlFeed of ${feed.uri} was not reported`);
  }
  if (!statsReported) {
    logger.warn(`Could not write the final stats of CrawlJob ${job.namespace}/${job.name}; the feeds are reported`);
  }
  const summary = {
    reason,
    feeds: exporter.closedFeeds.length,
    reported: feeds.reported.size,
    stats: crawler.stats.toStatus(),
  };
  if (problems.length > 0) {
    logger.error({ ...summary, problems }, `Runner of CrawlJob ${job.namespace}/${job.name} shard ${env.shard} failed`);
    return EXIT_FAILED;
  }
  if (signal.aborted && reason === "shutdown") {
    logger.info(
      summary,
      `Runner of CrawlJob ${job.namespace}/${job.name} shard ${env.shard} stopped: all it collected is stored and reported`,
    );
    return EXIT_STOPPED;
  }
  logger.info(summary, `Runner of CrawlJob ${job.namespace}/${job.name} shard ${env.shard} finished`);
  return EXIT_OK;
}

export function runnerLogger(): Logger {
  return pino({
    base: { component: "runner" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: ["*.authorization", "*.secretAccessKey", "*.token"],
  });
}

export async function main(argv: string[]): Promise<number> {
  try {
    const { values } = parseArgs({ args: argv, options: { help: { type: "boolean", short: "h" } }, strict: true });
    if (values.help) {
      process.stdout.write(usage);
      return EXIT_OK;
    }
  } catch (err) {
    process.stderr.write(`feedcrawl run: ${(err as Error).message}\n\n${usage}`);
    return EXIT_CONFIG;
  }
  const logger = runnerLogger();
  let env: ShardEnv;
  let snapshot: SpecSnapshot;
  try {
    env = readShardEnv(process.env);
    snapshot = loadSnapshot(env.specPath);
  } catch (err) {
    logger.error({ err: (err as Error).message }, "Runner configuration is invalid");
    return EXIT_CONFIG;
  }

  const kc = new KubeConfig();
  kc.loadFromDefault();
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, `Received ${signal}: shutting down the runner of CrawlJob ${snapshot.metadata.name}`);
    controller.abort();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    const { Crawler } = await import("../crawler.ts");
    const { createFeedExporter } = await import("../feeds/exporter.ts");
    return await runShard({
      env,
      snapshot,
      api: createRunnerApi(kc),
      logger,
      signal: controller.signal,
      createCrawler: (opts) => new Crawler(opts),
      createExporter: (opts) => createFeedExporter(opts),
    });
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}
