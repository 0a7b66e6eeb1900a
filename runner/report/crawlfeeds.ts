// One CrawlFeed per feed file the exporter confirmed stored. The name is
// deterministic (`<job>-<first 10 hex of sha256(uri)>`), so a create retried
// after a lost answer — or repeated by a restarted shard — finds AlreadyExists,
// which is success: a report is never duplicated and never lost. The runner
// may not read CrawlFeeds (no get, no list): AlreadyExists is taken as "this
// job reported this URI" — the admission policy lets only this job's runners
// create CrawlFeeds labelled and owned by this job, and the name carries the
// job's name and the URI's hash. After each report the shard records its last
// batch id per feed template in its CrawlJob's status.shardProgress["<shard>"]
// (a merge patch of its own key only); a restarted shard resumes after it.
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { API_VERSION } from "../../crds/schema/common.ts";
import type { CrawlFeed, FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { CRAWLJOB_LABEL, SHARD_LABEL } from "../../crds/schema/names.ts";
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
  if (ev.encoding !== undefined) spec.encoding = ev.encoding;
  if (ev.csvDelimiter !== undefined) spec.csvDelimiter = ev.csvDelimiter;
  if (ev.csvQuoteChar !== undefined) spec.csvQuoteChar = ev.csvQuoteChar;
  if (ev.csvHeader !== undefined) spec.csvHeader = ev.csvHeader;
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
  /** The last batch id per template known recorded in status.shardProgress. */
  #progress: Record<string, number> = {};

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

  /**
   * The last reported batch id per feed URI template, from this shard's entry
   * in its CrawlJob's status.shardProgress (a restarted pod continues the
   * numbering and never overwrites an earlier batch). Throws when the CrawlJob
   * cannot be read, is gone, or was replaced by another of the same name.
   */
  async resumeAfter(): Promise<Record<string, number>> {
    const { namespace, name, uid } = this.#job;
    const job = await this.#withRetry(`Reading CrawlJob ${namespace}/${name}`, () => this.#api.getJob(namespace, name));
    if (!job) throw new Error(`CrawlJob ${namespace}/${name} does not exist`);
    if (job.metadata.uid !== uid) {
      throw new Error(`CrawlJob ${namespace}/${name} is another object now (uid ${job.metadata.uid}, not ${uid})`);
    }
    const last: Record<string, number> = {};
    for (const [template, id] of Object.entries(lastBatchIdsOf(job, this.#shard))) {
      if (Number.isSafeInteger(id) && id > 0) last[template] = id;
    }
    this.#progress = { ...last };
    return last;
  }

  /** Creates the CrawlFeed of a stored file (retried; AlreadyExists is success), then records the progress. Throws when it gave up. */
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
          // 409 on a create: AlreadyExists. Only this job's runners can have
          // made an object of this name (admission policy: label, owner and
          // uid are this job's), and the name is the URI's hash: this URI was
          // reported before (a lost answer, or an earlier pod).
          if (!isConflict(err)) throw err;
          this.#logger.info({ crawlfeed: name, uri: ev.uri }, `CrawlFeed ${name} already existed: reported before`);
        }
      });
      this.reported.add(ev.uri);
    } catch (err) {
      const message = describeError(err);
      this.failed.set(ev.uri, message);
      this.#logger.error({ crawlfeed: name, uri: ev.uri, err: message }, `Could not report CrawlFeed ${name}`);
      throw err;
    }
    await this.#recordProgress(ev);
  }

  /**
   * status.shardProgress["<shard>"].lastBatchIds["<template>"] = batchId, a
   * merge patch of this shard's and template's key only (a template's reports
   * come in batch order, one at a time). Not fatal when it gives up: the
   * CrawlFeed is reported, and a later pod resuming from an older id finds
   * the object taken and stores under the next id.
   */
  async #recordProgress(ev: FeedClosed): Promise<void> {
    const template = ev.feed;
    if (!template || ev.batchId <= (this.#progress[template] ?? 0)) return;
    const { namespace, name } = this.#job;
    const body = { shardProgress: { [String(this.#shard)]: { lastBatchIds: { [template]: ev.batchId } } } };
    try {
      await this.#withRetry(`Recording batch ${ev.batchId} in CrawlJob ${namespace}/${name}`, () =>
        this.#api.patchJobStatus(namespace, name, body),
      );
      this.#progress[template] = ev.batchId;
    } catch (err) {
      this.#logger.warn(
        { uri: ev.uri, batchId: ev.batchId, err: describeError(err) },
        `Could not record batch ${ev.batchId} in the status of CrawlJob ${namespace}/${name}; a restarted shard will store under a later batch id`,
      );
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

function lastBatchIdsOf(job: CrawlJob, shard: number): Record<string, number> {
  return job.status?.shardProgress?.[String(shard)]?.lastBatchIds ?? {};
}
