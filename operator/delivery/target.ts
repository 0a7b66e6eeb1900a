// One persisted delivery — a CrawlFeed's status.delivery or a CrawlJob's
// status.completionDelivery — and the one write → 409 → re-read loop over it.
// Every status write carries the resourceVersion read, so a 409 means someone
// else wrote in between (a runner, the CrawlJob reconcile, a label edit, a
// deposed leader): the object is read again and the next step is decided on
// what they wrote.
import type { CrawlFeed, DeliveryStatus } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import type { DeliveryApi, WriteResult } from "./kube.ts";
import { crawlCompletedEvent, crawlJobRef, feedClosedEvent } from "./payload.ts";

export type Result = { requeueAfterMs?: number };

/** How long to come back after losing a write race (someone else changed the object). */
export const CONFLICT_REQUEUE_MS = 1_000;
/** Re-reads after a conflicting write before handing back to the work queue. */
const MAX_CONFLICT_RETRIES = 5;

/** One persisted delivery: where its status lives and what it sends. */
export interface DeliveryTarget<T extends CrawlFeed | CrawlJob> {
  /** For logs and events, e.g. `CrawlFeed crawl/books-7f3a9c01aa`. */
  describe: string;
  read(): Promise<T | undefined>;
  status(object: T): DeliveryStatus | undefined;
  write(object: T, status: DeliveryStatus): Promise<WriteResult<T>>;
  webhookId: string;
  body: string;
  /** When the data became ready (the feed's closedAt), for the latency histogram. */
  readyAt?: string;
}

/** A CrawlFeed's feed.closed delivery, kept in its status.delivery. */
export function feedTarget(api: DeliveryApi, feed: CrawlFeed, job: CrawlJob): DeliveryTarget<CrawlFeed> {
  const { namespace, name } = feed.metadata as { namespace: string; name: string };
  const event = feedClosedEvent(crawlJobRef(job), feed.spec);
  return {
    describe: `CrawlFeed ${namespace}/${name}`,
    read: () => api.getFeed(namespace, name),
    status: (f) => f.status?.delivery,
    write: (f, status) => api.writeFeedDelivery(f, status),
    webhookId: event.id,
    body: JSON.stringify(event),
    readyAt: feed.spec.closedAt,
  };
}

/** A CrawlJob's crawl.completed delivery (mode onCompletion), kept in its status.completionDelivery. */
export function completionTarget(
  api: DeliveryApi,
  job: CrawlJob,
  feeds: readonly CrawlFeed[],
): DeliveryTarget<CrawlJob> {
  const { namespace, name } = job.metadata as { namespace: string; name: string };
  const event = crawlCompletedEvent(
    crawlJobRef(job),
    job.status?.manifest,
    feeds.map((f) => f.spec),
  );
  return {
    describe: `CrawlJob ${namespace}/${name} (crawl.completed)`,
    read: () => api.getJob(namespace, name),
    status: (j) => j.status?.completionDelivery,
    write: (j, status) => api.writeCompletionDelivery(j, status),
    webhookId: event.id,
    body: JSON.stringify(event),
  };
}

/** What to do with the object as read: settle with a result, or write and go on from what was written. */
export type Step =
  | { settle: Result }
  /** A write carrying the read resourceVersion; on success its continuation gives the result. */
  | { write: () => Promise<WriteResult<() => Promise<Result>>> };

/** Why writeOrReread ended without a result: the object is gone, or each re-read lost the race again. */
export type Lost = "gone" | "exhausted";

/** The step that writes `status` on `object` and then goes on with `then(written object)`. */
export function writeStep<T extends CrawlFeed | CrawlJob>(
  target: DeliveryTarget<T>,
  object: T,
  status: DeliveryStatus,
  then: (written: T) => Promise<Result>,
): Step {
  return { write: async () => continueWith(await target.write(object, status), then) };
}

/** A write's result with what comes after a successful one. */
export function continueWith<T>(
  written: WriteResult<T>,
  then: (written: T) => Promise<Result>,
): WriteResult<() => Promise<Result>> {
  return written.ok ? { ok: true, object: () => then(written.object) } : written;
}

/**
 * The delivery's one write-or-reread loop: `next` decides on the object as
 * read (settle, or write); on 409 the object is read again and `next` decides
 * afresh, at most MAX_CONFLICT_RETRIES times.
 */
export async function writeOrReread<T>(
  read: () => Promise<T | undefined>,
  start: T,
  next: (object: T) => Promise<Step>,
): Promise<Result | Lost> {
  let object = start;
  for (let round = 0; round <= MAX_CONFLICT_RETRIES; round++) {
    const step = await next(object);
    if ("settle" in step) return step.settle;
    const written = await step.write();
    if (written.ok) return written.object();
    if (written.reason === "gone") return "gone";
    const fresh = await read();
    if (!fresh) return "gone";
    object = fresh;
  }
  return "exhausted";
}
