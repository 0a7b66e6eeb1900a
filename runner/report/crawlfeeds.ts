// One CrawlFeed per feed file the exporter confirmed stored. The name is
// deterministic (`<job>-<first 10 hex of sha256(uri)>`), so a create retried
// after a lost answer — or repeated by a restarted shard — finds AlreadyExists,
// which is success: a report is never duplicated and never lost.
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { API_VERSION } from "../../crds/schema/common.ts";
import { CRAWLJOB_LABEL, type CrawlFeed, type FeedClosed, SHARD_LABEL } from "../../crds/schema/crawlfeed.ts";
import { describeError, isConflict } from "../../kube/errors.ts";
import { backoffDelayMs } from "../../lib/backoff.ts";
import { sleep } from "../../lib/sleep.ts";
import { isTransient, type RunnerApi } from "./api.ts";

export interface JobIdentity {
  name: string;
  namespace: string;
  uid: string;
}

export interface RetryPolicy {
  attempts: number;
  baseMs: number;
  capMs: number;
}

/** About 3 minutes of retries at most: within a pod's usual termination grace period is not guaranteed, so keep it bounded. */
export const DEFAULT_REPORT_RETRY: RetryPolicy = { attempts: 10, baseMs: 500, capMs: 30_000 };

export function crawlFeedName(job: string, uri: string): string {
  const hash = createHash("sha256").update(uri).digest("hex").slice(0, 10);
  return `${job.slice(0, 253 - 11)}-${hash}`;
}

/** Only the CrawlFeedSpec fields: the CRD has additionalProperties false. */
function feedSpec(ev: FeedClosed): FeedClosed {
  const spec: FeedClosed = {
    uri: ev.uri,
    batchId: ev.batchId,
    shard: ev.shard,
    format: ev.format,
    items: ev.items,
    bytes: ev.bytes,
    sha256: ev.sha256,
    closedAt: ev.closedAt,
  };
  if (ev.feed !== undefined) spec.feed = ev.feed;
  if (ev.compression !== undefined) spec.compression = ev.compression;
  return spec;
}

export function crawlFeedObject(job: JobIdentity, shard: number, ev: FeedClosed): CrawlFeed {
  return {
    apiVersion: API_VERSION,
    kind: "CrawlFeed",
    metadata: {
      name: crawlFeedName(job.name, ev.uri),
      namespace: job.namespace,
      labels: { [CRAWLJOB_LABEL]: job.name, [SHARD_LABEL]: String(shard) },
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: "CrawlJob",
          name: job.name,
          uid: job.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: feedSpec(ev),
  };
}

export class CrawlFeedReporter {
  readonly #api: RunnerApi;
  readonly #job: JobIdentity;
  readonly #shard: number;
  readonly #logger: Logger;
  readonly #retry: RetryPolicy;
  readonly #random: () => number;
  /** URIs reported (created or found existing). */
  readonly reported = new Set<string>();
  /** URIs whose report failed for good, with why. */
  readonly failed = new Map<string, string>();

  constructor(opts: {
    api: RunnerApi;
    job: JobIdentity;
    shard: number;
    logger: Logger;
    retry?: RetryPolicy;
    random?: () => number;
  }) {
    this.#api = opts.api;
    this.#job = opts.job;
    this.#shard = opts.shard;
    this.#logger = opts.logger;
    this.#retry = opts.retry ?? DEFAULT_REPORT_RETRY;
    this.#random = opts.random ?? Math.random;
  }

  /** The label selector of this shard's CrawlFeeds. */
  get selector(): string {
    return `${CRAWLJOB_LABEL}=${this.#job.name},${SHARD_LABEL}=${this.#shard}`;
  }

  /**
   * The last reported batch id per feed URI template, from this shard's
   * existing CrawlFeeds (a restarted pod continues the numbering and never
   * overwrites an earlier batch).
   */
  async resumeAfter(): Promise<Record<string, number>> {
    const feeds = await this.#withRetry("Listing this shard's CrawlFeeds", () =>
      this.#api.listFeeds(this.#job.namespace, this.selector),
    );
    const last: Record<string, number> = {};
    for (const feed of feeds) {
      const ownedHere = feed.metadata.ownerReferences?.some((ref) => ref.uid === this.#job.uid);
      if (!ownedHere || feed.spec.shard !== this.#shard || !feed.spec.feed) continue;
      last[feed.spec.feed] = Math.max(last[feed.spec.feed] ?? 0, feed.spec.batchId);
    }
    return last;
  }

  /** Creates the CrawlFeed of a stored file (retried; AlreadyExists is success). Throws when it gave up. */
  async report(ev: FeedClosed): Promise<void> {
    const object = crawlFeedObject(this.#job, this.#shard, ev);
    const name = `${this.#job.namespace}/${object.metadata.name}`;
    try {
      await this.#withRetry(`Creating CrawlFeed ${name}`, async () => {
        try {
          await this.#api.createFeed(object);
          this.#logger.info(
            { crawlfeed: name, uri: ev.uri, batchId: ev.batchId, items: ev.items },
            `Created CrawlFeed ${name}`,
          );
        } catch (err) {
          // 409 on a create: AlreadyExists.
          if (!isConflict(err)) throw err;
          await this.#checkExisting(name, object, ev);
        }
      });
      this.reported.add(ev.uri);
    } catch (err) {
      const message = describeError(err);
      this.failed.set(ev.uri, message);
      this.#logger.error({ crawlfeed: name, uri: ev.uri, err: message }, `Could not report CrawlFeed ${name}`);
      throw err;
    }
  }

  async #checkExisting(name: string, object: CrawlFeed, ev: FeedClosed): Promise<void> {
    // Same name = same URI (a retried or repeated report). A different file
    // under the same URI would be a bug upstream: say so, but the existing
    // record stays (the CrawlFeed spec is immutable).
    const existing = await this.#api.getFeed(object.metadata.namespace!, object.metadata.name!);
    if (existing && existing.spec.uri !== ev.uri) {
      throw new Error(`CrawlFeed ${name} already exists for another URI (${existing.spec.uri}): sha256 name collision`);
    }
    if (existing && existing.spec.sha256 !== ev.sha256) {
      this.#logger.warn(
        { crawlfeed: name, uri: ev.uri },
        `CrawlFeed ${name} already exists with another sha256; kept the existing record`,
      );
    } else {
      this.#logger.info({ crawlfeed: name, uri: ev.uri }, `CrawlFeed ${name} already existed: reported before`);
    }
  }

  async #withRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!isTransient(err) || attempt >= this.#retry.attempts) throw err;
        const delay = backoffDelayMs(attempt, { ...this.#retry, minMs: 50 }, this.#random);
        this.#logger.warn({ attempt, retryInMs: delay, err: describeError(err) }, `${what} failed; retrying`);
        await sleep(delay);
      }
    }
  }
}
