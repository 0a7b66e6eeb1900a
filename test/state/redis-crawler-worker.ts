// One worker of a shared crawl run by the real engine: the Crawler with the
// feed exporter, both on a RedisState — what `feedcrawl crawl --frontier
// redis://…` is to do (crawl.ts's --jobdir path with openRedisState).
// A child process of redis-crawler.test.ts, SIGKILL-able. Each worker writes
// its own files through %(worker)s, under one feed template for all workers
// (committed counts are kept per template), so a page redone by another
// worker skips the items already delivered.
//
// argv[2]: JSON { redisUrl, job, worker, siteUrl, out }. Exit 0: this worker's crawl ended.
import { pino } from "pino";
import type { Feeds } from "../../crds/schema/feeds.ts";
import { Crawler } from "../../runner/crawler.ts";
import { createFeedExporter } from "../../runner/feeds/exporter.ts";
import { openRedisState } from "../../runner/state/redis-open.ts";
import { catalogueSpider } from "../runner/crawl-state-helpers.ts";

export interface CrawlerWorkerConfig {
  redisUrl: string;
  job: string;
  worker: string;
  siteUrl: string;
  out: string;
}

const cfg = JSON.parse(process.argv[2] as string) as CrawlerWorkerConfig;

function feedsFor(out: string): Feeds {
  return { [`file://${out}/%(worker)s-all-%(batch_id)05d.jsonl`]: { format: "jsonlines", batchItemCount: 7 } };
}

async function main(): Promise<number> {
  const logger = pino({ level: "warn" }, pino.destination(2));
  const { state, opening, resumeAfter } = await openRedisState({
    url: cfg.redisUrl,
    job: cfg.job,
    worker: cfg.worker,
    leaseSeconds: 3,
    logger,
  });
  if (opening.status === "finished") return 0;
  const exporter = await createFeedExporter({
    feeds: feedsFor(cfg.out),
    params: { name: "redis-crawl", job: cfg.job, shard: 0, worker: cfg.worker },
    logger,
    state,
    resumeAfter,
  });
  await exporter.recover(opening.pending);
  const crawler = new Crawler({
    spider: catalogueSpider("redis-crawl", cfg.siteUrl, { concurrentRequests: 4, downloadDelayMs: 10 }),
    sink: exporter,
    logger,
    state: { state, queued: await state.queuedCount() },
  });
  const result = await crawler.run();
  if (result.error) throw result.error;
  await state.markFinished(result.reason);
  await state.close();
  return 0;
}

if (import.meta.main)
  main().then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`worker ${cfg.worker}: ${(err as Error).stack}\n`);
      process.exit(3);
    },
  );
