// Per-CrawlJob metrics: read from CrawlJob status (and CrawlFeed delivery
// state) at scrape time, labelled namespace/crawljob only, gone with the job.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import type { KubeObject } from "../../kube/client.ts";
import { CRAWLJOB_METRICS, observeCrawlJobs, writeCrawlJobMetrics } from "../../operator/crawljob-metrics.ts";
import { crawlFeed, crawlJob } from "./fixtures.ts";

type Job = CrawlJob & KubeObject;
type Feed = CrawlFeed & KubeObject;

const cache = <T>(items: T[]) => ({ list: (filter?: (o: T) => boolean) => (filter ? items.filter(filter) : items) });

/** What /metrics appends to the registry's text. */
function text(): string {
  let out = "";
  writeCrawlJobMetrics((chunk) => {
    out += chunk;
  });
  return out;
}

/** name{labels} → value, from the text output. */
async function scrape(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of text().split("\n")) {
    const m = /^(feedcrawl_crawljob_[a-z_]+)\{namespace="([^"]+)",crawljob="([^"]+)"\} (\S+)$/.exec(line);
    if (m) out.set(`${m[1]}{${m[2]}/${m[3]}}`, Number(m[4]));
  }
  return out;
}

function job(name: string, status: CrawlJob["status"]): Job {
  const j = crawlJob(undefined, name, "shop") as Job;
  j.status = status;
  return j;
}

describe("per-CrawlJob metrics", () => {
  const now = new Date("2026-06-01T12:00:00Z");
  const running = job("books", {
    phase: "Running",
    stats: { requests: 120, responses: 118, pages: 110, items: 900, itemsDropped: 2, errors: 3, bytes: 5_000_000 },
    feedSummary: { closed: 4, delivered: 2, failed: 1, items: 800, bytes: 40_000 },
    runner: { active: 2, failed: 1 },
    startTime: "2026-06-01T11:50:00Z",
  });
  const failed = job("shoes", {
    phase: "Failed",
    conditions: [
      {
        type: "Succeeded",
        status: "False",
        reason: "RunnerFailed",
        message: "x",
        lastTransitionTime: now.toISOString(),
      },
    ],
  });
  const feed = (n: number, closedAt: string, delivery?: NonNullable<CrawlFeed["status"]>["delivery"]) => {
    const f = crawlFeed(running, n, undefined, { closedAt }) as Feed;
    if (delivery) f.status = { delivery };
    return f;
  };
  const feeds = [
    feed(1, "2026-06-01T11:55:00Z", { state: "Delivered", attempts: 1, deliveredAt: "2026-06-01T11:55:04Z" }),
    feed(2, "2026-06-01T11:57:00Z", { state: "Delivered", attempts: 1, deliveredAt: "2026-06-01T11:57:09Z" }),
    feed(3, "2026-06-01T11:58:00Z", { state: "Sending", attempts: 2 }),
    feed(4, "2026-06-01T11:59:00Z"),
  ];

  it("exports the status counters, the delivery lag and the oldest undelivered feed per CrawlJob", async () => {
    const jobs = [running, failed];
    const stop = observeCrawlJobs({
      crawlJobs: cache(jobs),
      crawlFeeds: cache(feeds),
      active: () => true,
      now: () => now,
    });
    try {
      const m = await scrape();
      const v = (name: string, j = "books") => m.get(`feedcrawl_crawljob_${name}{shop/${j}}`);
      assert.equal(v("pages_total"), 110);
      assert.equal(v("items_total"), 900);
      assert.equal(v("response_bytes_total"), 5_000_000);
      assert.equal(v("request_errors_total"), 3);
      assert.equal(v("items_dropped_total"), 2);
      assert.equal(v("feeds_stored_total"), 4);
      assert.equal(v("feeds_delivered_total"), 2);
      assert.equal(v("feeds_failed_total"), 1);
      assert.equal(v("runner_restarts_total"), 1);
      assert.equal(v("runner_active_shards"), 2);
      assert.equal(v("delivery_lag_seconds"), 9, "the latest delivered feed: closed 11:57:00, 2xx 11:57:09");
      assert.equal(v("oldest_undelivered_feed_age_seconds"), 120, "books-3 closed at 11:58, still Sending");
      assert.equal(v("start_time_seconds"), Date.parse("2026-06-01T11:50:00Z") / 1000);
      assert.equal(v("failed"), 0);
      assert.equal(v("failed", "shoes"), 1);
      assert.equal(v("succeeded", "shoes"), 0);
      assert.equal(v("pages_total", "shoes"), undefined, "no status, no series");

      // Deleted from the cache: its series are gone at the next scrape.
      jobs.splice(0, 1);
      const after = await scrape();
      assert.ok(![...after.keys()].some((k) => k.includes("shop/books")), "no series of a deleted CrawlJob");
      assert.equal(after.get("feedcrawl_crawljob_failed{shop/shoes}"), 1);
    } finally {
      stop();
    }
  });

  it("reads the caches once per scrape, not once per metric (issue 13: a scrape of 1,000 CrawlJobs)", async () => {
    const reads = { jobs: 0, feeds: 0 };
    const counted = <T>(items: T[], key: keyof typeof reads) => ({
      list: () => {
        reads[key] += 1;
        return items;
      },
    });
    const stop = observeCrawlJobs({
      crawlJobs: counted([running], "jobs"),
      crawlFeeds: counted(feeds, "feeds"),
      active: () => true,
    });
    try {
      assert.equal((await scrape()).get("feedcrawl_crawljob_pages_total{shop/books}"), 110);
      assert.deepEqual(reads, { jobs: 1, feeds: 1 });
      await scrape();
      assert.deepEqual(reads, { jobs: 2, feeds: 2 }, "the next scrape reads them again");
    } finally {
      stop();
    }
  });

  it("labels are namespace and crawljob only; a standby (not leading) exports nothing", async () => {
    const stop = observeCrawlJobs({ crawlJobs: cache([running]), active: () => false });
    try {
      assert.equal((await scrape()).size, 0);
    } finally {
      stop();
    }
    for (const [name, [type]] of Object.entries(CRAWLJOB_METRICS)) {
      assert.ok(name.startsWith("feedcrawl_crawljob_"));
      assert.match(text(), new RegExp(`^# TYPE ${name} ${type}$`, "m"), "HELP and TYPE even with no series");
    }
    const stopLeader = observeCrawlJobs({ crawlJobs: cache([running]), active: () => true });
    try {
      const series = text()
        .split("\n")
        .filter((l) => l.startsWith("feedcrawl_crawljob_"));
      assert.ok(series.length > 0);
      for (const line of series)
        assert.match(line, /^feedcrawl_crawljob_[a-z_]+\{namespace="[^"]+",crawljob="[^"]+"\} /);
    } finally {
      stopLeader();
    }
  });
});
