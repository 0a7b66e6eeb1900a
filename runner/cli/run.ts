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
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { type Logger, pino } from "pino";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJobSpec, CrawlStats } from "../../crds/schema/crawljob.ts";
import type { Feeds, StorageSpec } from "../../crds/schema/feeds.ts";
import {
  CRAWLSCHEDULE_LABEL,
  DEFAULT_LEASE_SECONDS,
  FRONTIER_JOB_ENV,
  FRONTIER_LEASE_ENV,
  FRONTIER_REDIS_URL_ENV,
  SCHEDULED_TIME_ANNOTATION,
  SPIDER_MODULE_MOUNT_PATH,
} from "../../crds/schema/names.ts";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import { type KubeConfig, loadKubeConfig } from "../../kube/kubeconfig.ts";
import { cgroupMemoryPeakBytes } from "../../lib/cgroup-memory.ts";
import { DeltaRun } from "../delta/delta-run.ts";
import type { DeltaStore } from "../delta/store.ts";
import { createRunnerApi, type RunnerApi } from "../report/api.ts";
import { CrawlFeedReporter, type JobIdentity, type RetryPolicy } from "../report/crawlfeeds.ts";
import { StatsReporter } from "../report/stats-reporter.ts";
import {
  type CrawlState,
  type PageAwareSink,
  type RecoveredBatch,
  resumeBatchIds,
  type StateOpening,
} from "../state/types.ts";

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
  FEEDCRAWL_SHARD_STATE   "off": no crawl state (a restarted shard starts again from its start URLs)
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
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    generation?: number;
    /** feedcrawl.io/scheduled-time, on the runs a CrawlSchedule creates. */
    annotations?: Record<string, string>;
    /** feedcrawl.io/crawlschedule, on the runs a CrawlSchedule creates (names the delta state). */
    labels?: Record<string, string>;
  };
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
  sink: PageAwareSink;
  logger: Logger;
  shard: { index: number; count: number };
  signal: AbortSignal;
  /** Where the pod mounts spider.moduleConfigMapRef's key. */
  moduleConfigMapDir: string;
  /** The shard's crawl state (frontier, seen-set), when it has one. */
  state?: { state: CrawlState; queued: number };
  /** spider.settings.delta: the delta run, loaded. */
  delta?: DeltaRun;
}) => CrawlerLike;

/** What it needs of the feed exporter (runner/feeds/exporter.ts). */
export interface ExporterLike extends PageAwareSink {
  readonly closedFeeds: readonly FeedClosed[];
  /** Batches that could not be stored within the exporter's retry budget. */
  readonly failedFeeds?: readonly { uri: string; error: string }[];
  /** Settles the batches a restored state found pending (runner/feeds/exporter.ts). */
  recover?(pending: readonly RecoveredBatch[]): Promise<void>;
}

/**
 * A shard's crawl state: the Redis frontier's, or SQLite checkpointed off the pod
 * (runner/state/checkpoint.ts), which is saved once more when the shard stops.
 */
export interface ShardState extends CrawlState {
  checkpoint?(): Promise<void>;
}

export type CreateExporter = (opts: {
  feeds: Feeds;
  storage?: StorageSpec;
  params: { name: string; job: string; shard: number; time?: Date };
  logger: Logger;
  onFeedClosed: (ev: FeedClosed) => Promise<void>;
  resumeAfter: Record<string, number>;
  state?: CrawlState;
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
  /** The shard's crawl state, not yet opened (absent: none; a restarted shard starts from its start URLs). */
  state?: ShardState;
  /** spider.settings.delta: the delta run, loaded; saved here after a run that delivered everything. */
  delta?: DeltaRun;
}

/**
 * Opens (restores) the shard's crawl state. Resolves to an exit code when there
 * is nothing to do (the shard finished before) or the state cannot be had;
 * else to what the crawl resumes from: the numbering is the higher of the
 * status' and the state's (a batch stored before the restart keeps its id).
 */
async function openShardState(
  state: ShardState | undefined,
  resumeAfter: Record<string, number>,
  logger: Logger,
  what: string,
): Promise<number | { opening: StateOpening | undefined; resumeAfter: Record<string, number> }> {
  if (!state) return { opening: undefined, resumeAfter };
  let opening: StateOpening;
  try {
    opening = await state.open();
  } catch (err) {
    logger.error({ err: (err as Error).message }, `Could not open the crawl state of ${what}`);
    return frontierLost(err) ? EXIT_CONFIG : EXIT_FAILED;
  }
  if (opening.status === "new" && "shared" in state && Object.keys(resumeAfter).length > 0) {
    // This shard reported batches before, yet Redis has no crawl: it lost the job's keys between two pods.
    await state.close();
    logger.error(
      { err: "Redis has no crawl state for it although the shard reported batches before" },
      `Redis lost the crawl state of ${what}: it was restarted without persistence, flushed or evicted keys; stopping rather than crawling again from the start`,
    );
    return EXIT_CONFIG;
  }
  if (opening.status === "finished") {
    await state.close();
    logger.info({ reason: opening.finishReason }, `${what} already finished: nothing to do`);
    return EXIT_OK;
  }
  if (opening.status === "resumed")
    logger.info(
      { pagesDone: opening.done, requeued: opening.requeued, pendingBatches: opening.pending.length },
      `Resuming the crawl of ${what}: ${opening.done} pages done, ${opening.requeued} requeued`,
    );
  const fromState = resumeBatchIds(await state.lastBatchIds(), opening.pending);
  const merged = { ...resumeAfter };
  for (const [feed, id] of Object.entries(fromState)) merged[feed] = Math.max(merged[feed] ?? 0, id);
  return { opening, resumeAfter: merged };
}

/** What went wrong in a shard's run, the first cause first; empty when it stored and reported everything. */
function problemsOf(
  runError: unknown,
  closeError: unknown,
  exporter: ExporterLike,
  feeds: { reported: ReadonlySet<string>; failed: ReadonlyMap<string, string> },
): string[] {
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
  return problems;
}

/**
 * Redis lost the crawl (runner/state/redis-state.ts FrontierLostError): exit 2
 * fails the Job at once, where a retried pod would crawl again from the start.
 */
function frontierLost(err: unknown): boolean {
  return (err as Error | undefined)?.name === "FrontierLostError";
}

/**
 * Marks the state finished when the shard is over for good (a later pod then has
 * nothing to do), else checkpoints it once more; closes it. Returns a problem, if any.
 */
async function closeShardState(state: ShardState | undefined, over: boolean, reason: string) {
  if (!state) return undefined;
  try {
    if (over) await state.markFinished(reason);
    else await state.checkpoint?.();
    return undefined;
  } catch (err) {
    return `the crawl state could not be saved: ${(err as Error).message}`;
  } finally {
    await state.close().catch(() => {});
  }
}

/**
 * Loads the delta state. Unreadable: a warning and a full crawl without it
 * (every item delivered again, nothing saved), rather than no crawl at all.
 */
async function openDelta(store: DeltaStore | undefined, spider: SpiderSpec, logger: Logger) {
  if (!store) return undefined;
  try {
    return await DeltaRun.open(store, spider, logger);
  } catch (err) {
    logger.warn({ err: (err as Error).message }, `Could not read the delta state ${store.where}: crawling without it`);
    return undefined;
  }
}

/**
 * Saves the delta state when the shard delivered everything. A failed save is
 * a warning, not a failed shard: its items are all delivered, and the next run
 * only delivers them once more.
 */
async function finishDelta(delta: DeltaRun | undefined, delivered: boolean, reason: string, logger: Logger) {
  if (!delta) return;
  try {
    await delta.finish(delivered, reason);
  } catch (err) {
    logger.warn({ err: (err as Error).message }, "Delta state not saved: the next run delivers this run's items again");
  } finally {
    await delta.close();
  }
}

/**
 * spider.settings.delta in a pod: one object per shard in the feed bucket,
 * named by the CrawlSchedule (label) or settings.delta.key. None (a warning,
 * a full crawl) without a key or without an S3 feed.
 */
export async function deltaStore(
  snapshot: SpecSnapshot,
  env: ShardEnv,
  logger: Logger,
): Promise<DeltaStore | undefined> {
  const setting = snapshot.spec.spider.settings?.delta;
  if (!setting?.enabled) return undefined;
  const { namespace, name } = snapshot.metadata;
  const key = snapshot.metadata.labels?.[CRAWLSCHEDULE_LABEL] ?? setting.key;
  const { deltaUri, S3DeltaStore } = await import("../delta/s3.ts");
  const uri =
    key &&
    deltaUri(Object.keys(snapshot.spec.feeds ?? {}), { namespace, key }, { index: env.shard, count: env.shardCount });
  if (!uri) {
    logger.warn(
      `CrawlJob ${namespace}/${name}: spider.settings.delta needs a CrawlSchedule or settings.delta.key, and an S3 feed; crawling without it`,
    );
    return undefined;
  }
  const { createS3Client } = await import("../feeds/storages/s3.ts");
  return new S3DeltaStore(createS3Client(snapshot.spec.storage?.s3), uri);
}

/** A scheduled run's %(time)s is its scheduled time (every shard, every restart); otherwise the shard's start. */
function scheduledTime(snapshot: SpecSnapshot): { time?: Date } {
  const at = Date.parse(snapshot.metadata.annotations?.[SCHEDULED_TIME_ANNOTATION] ?? "");
  return Number.isNaN(at) ? {} : { time: new Date(at) };
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
  const what = `CrawlJob ${job.namespace}/${job.name} shard ${env.shard}`;
  const opened = await openShardState(opts.state, resumeAfter, logger, what);
  if (typeof opened === "number") return opened;
  resumeAfter = opened.resumeAfter;
  if (Object.keys(resumeAfter).length > 0) logger.info({ resumeAfter }, `Resuming the batch numbering of ${what}`);

  let exporter: ExporterLike;
  try {
    exporter = await opts.createExporter({
      feeds: snapshot.spec.feeds!,
      storage: snapshot.spec.storage,
      params: { name: snapshot.spec.spider.name, job: job.name, shard: env.shard, ...scheduledTime(snapshot) },
      logger,
      onFeedClosed: (ev) => feeds.report(ev),
      resumeAfter,
      ...(opts.state ? { state: opts.state } : {}),
    });
    await exporter.recover?.(opened.opening?.pending ?? []);
  } catch (err) {
    logger.error({ err: (err as Error).message }, `Could not open the feeds of CrawlJob ${job.namespace}/${job.name}`);
    await opts.state?.close();
    return EXIT_FAILED;
  }

  // Watch the exporter's close: the engine calls it, and its failure means a
  // batch was not stored even if the engine itself finishes cleanly.
  let closeCalled = false;
  let closeError: unknown;
  const sink: PageAwareSink = {
    write: (item, page) => exporter.write(item, page),
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
    shard: snapshot.spec.frontier?.redis ? { index: 0, count: 1 } : { index: env.shard, count: env.shardCount }, // shared: all hosts
    signal,
    moduleConfigMapDir: SPIDER_MODULE_MOUNT_PATH,
    ...(opts.state ? { state: { state: opts.state, queued: await opts.state.queuedCount() } } : {}),
    ...(opts.delta ? { delta: opts.delta } : {}),
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

  const problems = problemsOf(runError, closeError, exporter, feeds);
  const over = problems.length === 0 && !(signal.aborted && reason === "shutdown");
  const stateProblem = await closeShardState(opts.state, over, reason);
  if (stateProblem) problems.push(stateProblem);
  await finishDelta(opts.delta, over && reason === "finished", reason, logger);
  if (!statsReported)
    logger.warn(`Could not write the final stats of CrawlJob ${job.namespace}/${job.name}; the feeds are reported`);
  const summary = {
    reason,
    feeds: exporter.closedFeeds.length,
    reported: feeds.reported.size,
    stats: crawler.stats.toStatus(),
    cgroupMemoryPeakBytes: await cgroupMemoryPeakBytes(), // what the pod's memory limit is compared with
  };
  const runner = `Runner of CrawlJob ${job.namespace}/${job.name} shard ${env.shard}`;
  if (problems.length > 0) {
    logger.warn({ ...summary, problems }, `${runner}: what failed`);
    // Last and short: the pod's termination message is the log's last 2048 bytes, and the CrawlJob's condition its gist.
    logger.error({ err: problems[0], problems: problems.length }, `${runner} failed`);
    return frontierLost(runError) ? EXIT_CONFIG : EXIT_FAILED;
  }
  if (signal.aborted && reason === "shutdown") {
    logger.info(summary, `${runner} stopped: all it collected is stored and reported`);
    return EXIT_STOPPED;
  }
  logger.info(summary, `${runner} finished`);
  return EXIT_OK;
}

/**
 * Without a Redis frontier, the shard's state is SQLite on the pod's spool disk,
 * checkpointed beside its first S3 feed (runner/state/checkpoint.ts). None when
 * FEEDCRAWL_SHARD_STATE=off, without an S3 feed, or with a feed a resumed crawl
 * could not keep exactly-once (then a restarted shard starts from its start URLs).
 */
async function shardState(snapshot: SpecSnapshot, env: ShardEnv, logger: Logger): Promise<ShardState | undefined> {
  if (snapshot.spec.frontier?.redis) return redisShardState(snapshot, env, logger);
  if (process.env.FEEDCRAWL_SHARD_STATE === "off") return undefined;
  if (snapshot.spec.frontier !== undefined) return undefined;
  const feeds = snapshot.spec.feeds ?? {};
  const { unresumableFeeds } = await import("../state/resumable-feeds.ts");
  const { checkpointUri, s3CheckpointStore } = await import("../state/s3-checkpoint.ts");
  const problems = unresumableFeeds(feeds);
  const uri = checkpointUri(Object.keys(feeds), snapshot.metadata, env.shard);
  if (problems.length > 0 || !uri) {
    logger.warn(
      { problems: problems.map((p) => `${p.path}: ${p.message}`) },
      `CrawlJob ${snapshot.metadata.name} shard ${env.shard} keeps no crawl state: a restarted shard starts again from its start URLs`,
    );
    return undefined;
  }
  const { CheckpointedState } = await import("../state/checkpoint.ts");
  const { createS3Client } = await import("../feeds/storages/s3.ts");
  const root = process.env.FEEDCRAWL_SPOOL_DIR || os.tmpdir();
  return new CheckpointedState({
    dir: path.join(root, `state-${snapshot.metadata.name}-${env.shard}`),
    identity: snapshot.spec.spider.name,
    store: s3CheckpointStore(createS3Client(snapshot.spec.storage?.s3), uri),
    logger,
  });
}

/**
 * spec.frontier.redis: every shard of the CrawlJob is a worker of one crawl in
 * Redis (its id: the shard index, so a restarted shard settles its own
 * batches). The URL comes from the env the kubelet filled from the Secret.
 */
async function redisShardState(snapshot: SpecSnapshot, env: ShardEnv, logger: Logger): Promise<ShardState> {
  const url = process.env[FRONTIER_REDIS_URL_ENV];
  if (!url)
    throw new RunConfigError(
      `${FRONTIER_REDIS_URL_ENV} is not set: spec.frontier.redis of CrawlJob ${snapshot.metadata.name} needs the runner pod the operator makes`,
    );
  const { namespace, name, uid } = snapshot.metadata;
  const { RedisState } = await import("../state/redis-state.ts");
  return new RedisState({
    url,
    job: process.env[FRONTIER_JOB_ENV] || `${namespace}/${name}/${uid}`,
    worker: String(env.shard),
    leaseMs: (Number(process.env[FRONTIER_LEASE_ENV]) || DEFAULT_LEASE_SECONDS) * 1000,
    logger,
  });
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
  let kc: KubeConfig;
  try {
    env = readShardEnv(process.env);
    snapshot = loadSnapshot(env.specPath);
    kc = loadKubeConfig();
  } catch (err) {
    logger.error({ err: (err as Error).message }, "Runner configuration is invalid");
    return EXIT_CONFIG;
  }

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
    let state: ShardState | undefined;
    let delta: DeltaRun | undefined;
    try {
      state = await shardState(snapshot, env, logger);
      delta = await openDelta(await deltaStore(snapshot, env, logger), snapshot.spec.spider, logger);
    } catch (err) {
      if (!(err instanceof RunConfigError)) throw err;
      logger.error({ err: err.message }, "Runner configuration is invalid");
      return EXIT_CONFIG;
    }
    return await runShard({
      env,
      snapshot,
      api: createRunnerApi(kc),
      logger,
      signal: controller.signal,
      createCrawler: (opts) => new Crawler(opts),
      createExporter: (opts) => createFeedExporter(opts),
      ...(state ? { state } : {}),
      ...(delta ? { delta } : {}),
    });
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}
