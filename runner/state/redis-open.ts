// Opening the Redis crawl state for a crawl: what `feedcrawl crawl --frontier`
// and a runner pod with spec.frontier.redis do before crawling (the Redis
// counterpart of crawl.ts's openJobDir): join the crawl, recover this
// worker's pages, and work out where its batch numbering continues.
import type { Logger } from "pino";
import { redactRedisUrl } from "./redis-client.ts";
import { RedisState } from "./redis-state.ts";
import { resumeBatchIds, type StateOpening } from "./types.ts";

export interface OpenRedisOptions {
  /** redis://… or rediss://… (never logged with its password). */
  url: string;
  /** The crawl's name in Redis: a CrawlJob's namespace/name/uid, or the local job's name. */
  job: string;
  /** Absent: the lowest free "wN" is claimed. */
  worker?: string;
  leaseSeconds?: number;
  logger: Logger;
}

export interface OpenedRedisState {
  state: RedisState;
  opening: StateOpening;
  /** Feed template → the batch id numbering continues after (for the exporter). */
  resumeAfter: Record<string, number>;
}

/** Joins the crawl; closes the connection again when the crawl had finished (nothing to do) or opening failed. */
export async function openRedisState(o: OpenRedisOptions): Promise<OpenedRedisState> {
  const state = new RedisState({
    url: o.url,
    job: o.job,
    ...(o.worker ? { worker: o.worker } : {}),
    ...(o.leaseSeconds ? { leaseMs: o.leaseSeconds * 1000 } : {}),
    logger: o.logger,
  });
  let opening: StateOpening;
  try {
    opening = await state.open();
  } catch (err) {
    await state.close();
    throw err;
  }
  if (opening.status === "finished") {
    await state.close();
    return { state, opening, resumeAfter: {} };
  }
  o.logger.info(
    {
      redis: redactRedisUrl(o.url),
      job: o.job,
      worker: state.worker,
      status: opening.status,
      pagesDone: opening.done,
      requeued: opening.requeued,
      pendingBatches: opening.pending.length,
    },
    `Redis frontier ${redactRedisUrl(o.url)}: worker ${state.worker} joined crawl ${o.job} (${opening.status}, ${opening.done} pages done)`,
  );
  return { state, opening, resumeAfter: resumeBatchIds(await state.lastBatchIds(), opening.pending) };
}
