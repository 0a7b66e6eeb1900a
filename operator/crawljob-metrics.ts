// Per-CrawlJob metrics, read from the CrawlJob status the operator already
// aggregates (and the CrawlFeeds' delivery state) at scrape time, from the
// informer caches, so no short-lived runner pod is ever scraped. Labels:
// namespace and crawljob only. A CrawlJob's series exist while it is in the
// cache and vanish at the next scrape after it is deleted, so the series
// count is (metrics below) × (CrawlJobs that exist), which
// ttlSecondsAfterFinished and the CrawlSchedule history limits bound. Only
// the leader exports them (a standby's cache holds the same jobs).
import type { CrawlFeed } from "../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../crds/schema/crawljob.ts";
import { CRAWLJOB_LABEL } from "../crds/schema/names.ts";
import type { KubeObject } from "../kube/client.ts";
import { getCondition } from "./runtime/conditions.ts";

type Job = CrawlJob & KubeObject;
type Feed = CrawlFeed & KubeObject;

interface Cache<T> {
  list(filter?: (obj: T) => boolean): T[];
}

export interface CrawlJobMetricsSource {
  crawlJobs: Cache<Job>;
  crawlFeeds?: Cache<Feed>;
  /** True while this process leads (or runs without leader election). */
  active: () => boolean;
  now?: () => Date;
}

const sources = new Set<CrawlJobMetricsSource>();

/** Exports the CrawlJobs of these caches; returns the function that stops it. */
export function observeCrawlJobs(source: CrawlJobMetricsSource): () => void {
  sources.add(source);
  return () => sources.delete(source);
}

/** What one CrawlJob's series are computed from. */
interface Observed {
  job: Job;
  feeds: Feed[];
  now: number;
}

type Read = (o: Observed) => number | undefined;

const seconds = (iso: string | undefined) => (iso ? Date.parse(iso) / 1000 : undefined);

/** Seconds from close to 2xx of the job's most recently delivered feed file. */
function deliveryLag({ feeds }: Observed): number | undefined {
  let latest: Feed | undefined;
  for (const f of feeds) {
    const at = f.status?.delivery?.deliveredAt;
    if (at && (!latest || at > latest.status!.delivery!.deliveredAt!)) latest = f;
  }
  if (!latest) return undefined;
  return Math.max(0, (Date.parse(latest.status!.delivery!.deliveredAt!) - Date.parse(latest.spec.closedAt)) / 1000);
}

/** Age of the oldest feed file closed and not delivered yet (Pending or Sending); 0 when none waits. */
function oldestUndelivered({ feeds, now }: Observed): number {
  let oldest = now;
  for (const f of feeds) {
    const state = f.status?.delivery?.state ?? "Pending";
    if (state === "Pending" || state === "Sending") oldest = Math.min(oldest, Date.parse(f.spec.closedAt));
  }
  return Math.max(0, (now - oldest) / 1000);
}

const succeeded =
  (value: string): Read =>
  ({ job }) => {
    const status = getCondition(job.status?.conditions, "Succeeded")?.status;
    return status === value ? 1 : 0;
  };

/** name → [type, help, read]. Counters are the runners' and the operator's own running totals. */
export const CRAWLJOB_METRICS: Record<string, ["counter" | "gauge", string, Read]> = {
  feedcrawl_crawljob_requests_total: ["counter", "Requests sent by the runners.", (o) => o.job.status?.stats?.requests],
  feedcrawl_crawljob_responses_total: ["counter", "Responses received.", (o) => o.job.status?.stats?.responses],
  feedcrawl_crawljob_pages_total: ["counter", "Pages crawled.", (o) => o.job.status?.stats?.pages],
  feedcrawl_crawljob_items_total: ["counter", "Items scraped.", (o) => o.job.status?.stats?.items],
  feedcrawl_crawljob_response_bytes_total: ["counter", "Response bytes downloaded.", (o) => o.job.status?.stats?.bytes],
  // Errors by kind: one metric per kind (the label set stays namespace/crawljob).
  feedcrawl_crawljob_request_errors_total: [
    "counter",
    "Requests that failed (network errors, retries exhausted).",
    (o) => o.job.status?.stats?.errors,
  ],
  feedcrawl_crawljob_items_dropped_total: [
    "counter",
    "Items dropped (could not be serialised).",
    (o) => o.job.status?.stats?.itemsDropped,
  ],
  feedcrawl_crawljob_feeds_stored_total: [
    "counter",
    "Feed files stored and reported (CrawlFeeds).",
    (o) => o.job.status?.feedSummary?.closed,
  ],
  feedcrawl_crawljob_feeds_delivered_total: [
    "counter",
    "Feed files the ingest webhook acknowledged (2xx).",
    (o) => o.job.status?.feedSummary?.delivered,
  ],
  feedcrawl_crawljob_feeds_failed_total: [
    "counter",
    "Feed files whose delivery failed for good (attempts exhausted or a permanent error).",
    (o) => o.job.status?.feedSummary?.failed,
  ],
  feedcrawl_crawljob_feed_bytes_total: [
    "counter",
    "Bytes stored in feed files.",
    (o) => o.job.status?.feedSummary?.bytes,
  ],
  feedcrawl_crawljob_runner_restarts_total: [
    "counter",
    "Runner pods that failed (and were replaced while the Job's backoff limit allowed).",
    (o) => o.job.status?.runner?.failed,
  ],
  feedcrawl_crawljob_runner_active_shards: ["gauge", "Runner pods running now.", (o) => o.job.status?.runner?.active],
  feedcrawl_crawljob_delivery_lag_seconds: [
    "gauge",
    "Seconds from close to the webhook's 2xx of the most recently delivered feed file.",
    deliveryLag,
  ],
  feedcrawl_crawljob_oldest_undelivered_feed_age_seconds: [
    "gauge",
    "Age of the oldest stored feed file not delivered yet; 0 when none waits.",
    oldestUndelivered,
  ],
  feedcrawl_crawljob_succeeded: ["gauge", "1 when the CrawlJob succeeded (Succeeded=True).", succeeded("True")],
  feedcrawl_crawljob_failed: ["gauge", "1 when the CrawlJob failed (Succeeded=False).", succeeded("False")],
  feedcrawl_crawljob_start_time_seconds: [
    "gauge",
    "Unix time the runners started.",
    (o) => seconds(o.job.status?.startTime),
  ],
  feedcrawl_crawljob_completion_time_seconds: [
    "gauge",
    "Unix time the CrawlJob finished.",
    (o) => seconds(o.job.status?.completionTime),
  ],
};

/** Every CrawlJob the leading sources hold, once each, with its CrawlFeeds. */
function observe(): Observed[] {
  const seen = new Map<string, Observed>();
  for (const source of sources) {
    if (!source.active()) continue;
    const now = (source.now?.() ?? new Date()).getTime();
    const feedsByJob = new Map<string, Feed[]>();
    for (const feed of source.crawlFeeds?.list() ?? []) {
      const key = `${feed.metadata.namespace}/${feed.metadata.labels?.[CRAWLJOB_LABEL]}`;
      const feeds = feedsByJob.get(key);
      if (feeds) feeds.push(feed);
      else feedsByJob.set(key, [feed]);
    }
    for (const job of source.crawlJobs.list()) {
      const key = `${job.metadata.namespace}/${job.metadata.name}`;
      if (!seen.has(key)) seen.set(key, { job, feeds: feedsByJob.get(key) ?? [], now });
    }
  }
  return [...seen.values()];
}

/**
 * Writes every CrawlJob's series in the Prometheus text format, after the
 * registry's, one metric at a time: a scrape of 1,000 CrawlJobs holds one
 * metric's ~80 KB of lines at once. Through the registry (prom-client
 * Counters and Gauges) the same scrape held all ~19,000 series as objects and
 * strings at once, ~21 MB that stayed in the operator's heap (issue 13).
 * Namespaces and names are DNS labels: no character of them needs escaping in
 * a label value.
 */
export function writeCrawlJobMetrics(write: (chunk: string) => void): void {
  const jobs = observe();
  for (const [name, [type, help, read]] of Object.entries(CRAWLJOB_METRICS)) {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
    for (const o of jobs) {
      const value = read(o);
      if (value === undefined || !Number.isFinite(value)) continue;
      lines.push(`${name}{namespace="${o.job.metadata.namespace}",crawljob="${o.job.metadata.name}"} ${value}`);
    }
    write(`${lines.join("\n")}\n`);
  }
}
