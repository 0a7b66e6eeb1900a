// The shard's live counters in its CrawlJob's status: a JSON merge patch of
// status.shardStats["<shard>"] every few seconds and once at the end (each
// shard touches only its own key, so shards never overwrite each other; the
// operator sums them into status.stats). A single-shard job also writes
// status.stats itself, so the numbers show up even before the operator sums.
import type { Logger } from "pino";
import type { CrawlStats } from "../../crds/schema/crawljob.ts";
import { describeError } from "../../kube/errors.ts";
import { type BackoffPolicy, backoffDelayMs } from "../../lib/backoff.ts";
import { sleep } from "../../lib/sleep.ts";
import type { RunnerApi } from "./api.ts";
import type { JobIdentity } from "./crawlfeeds.ts";

export const DEFAULT_REPORT_INTERVAL_MS = 5_000;
/** The final patch: 400 ms, 800 ms … 6.4 s between five tries. */
const FINISH_BACKOFF: BackoffPolicy = { baseMs: 200, capMs: 10_000, jitter: "none" };

export interface StatsReporterOptions {
  api: RunnerApi;
  job: JobIdentity;
  shard: number;
  shardCount: number;
  /** The engine's current counters. */
  stats: () => CrawlStats;
  logger: Logger;
  intervalMs?: number;
}

export class StatsReporter {
  readonly #opts: StatsReporterOptions;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<boolean> | undefined;
  #last = "";
  /** Patches that reached the API. */
  patches = 0;

  constructor(opts: StatsReporterOptions) {
    this.#opts = opts;
  }

  start(): void {
    this.#timer ??= setInterval(() => {
      // Skip a tick while the previous patch is still on its way.
      if (!this.#inFlight) this.#inFlight = this.#patch(false).finally(() => (this.#inFlight = undefined));
    }, this.#opts.intervalMs ?? DEFAULT_REPORT_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Stops the timer and writes the final counters (retried a few times). True when they reached the API. */
  async finish(): Promise<boolean> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#inFlight;
    for (let attempt = 1; attempt <= 5; attempt++) {
      if (await this.#patch(true)) return true;
      if (attempt < 5) await sleep(backoffDelayMs(attempt + 1, FINISH_BACKOFF));
    }
    return false;
  }

  /** The merge-patch body for the current counters. */
  body(stats: CrawlStats): Record<string, unknown> {
    const status: Record<string, unknown> = { shardStats: { [String(this.#opts.shard)]: stats } };
    if (this.#opts.shardCount === 1) status.stats = stats;
    return status;
  }

  async #patch(force: boolean): Promise<boolean> {
    const { api, job, logger } = this.#opts;
    const stats = this.#opts.stats();
    const serialized = JSON.stringify(stats);
    if (!force && serialized === this.#last) return true;
    try {
      await api.patchJobStatus(job.namespace, job.name, this.body(stats));
      this.#last = serialized;
      this.patches++;
      return true;
    } catch (err) {
      logger.warn({ err: describeError(err) }, `Could not patch the stats of CrawlJob ${job.namespace}/${job.name}`);
      return false;
    }
  }
}
