// Wires the delivery part's per-CrawlFeed state machine into a controller:
// each CrawlFeed key is reconciled by operator/delivery, which decides and
// hands a due POST to its dispatcher (never POSTing in this worker), and is
// requeued after the delay it asks for.
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { CRAWLJOB_LABEL } from "../../crds/schema/names.ts";
import type { KubeObject } from "../../kube/client.ts";
import type { ReconcileRequest, ReconcileResult } from "../runtime/controller.ts";
import type { InformerGroup } from "../runtime/informer.ts";

/** operator/delivery/index.ts's createFeedDeliveryReconciler(...) result. */
export interface FeedDeliveryReconciler {
  reconcile(feed: CrawlFeed, job: CrawlJob | undefined): Promise<{ requeueAfterMs?: number } | undefined>;
}

export function createCrawlFeedReconciler(deps: {
  crawlFeeds: InformerGroup<CrawlFeed & KubeObject>;
  crawlJobs: InformerGroup<CrawlJob & KubeObject>;
  delivery: FeedDeliveryReconciler;
}) {
  return async function reconcile(req: ReconcileRequest): Promise<ReconcileResult | undefined> {
    const feed = deps.crawlFeeds.get(req.namespace, req.name);
    if (!feed || feed.metadata.deletionTimestamp) return undefined;
    const jobName = feed.metadata.labels?.[CRAWLJOB_LABEL];
    const job = jobName ? deps.crawlJobs.get(req.namespace, jobName) : undefined;
    // No copies: the delivery only reads the cached objects (it acts on fresh GETs).
    const result = await deps.delivery.reconcile(feed, job);
    return result && result.requeueAfterMs !== undefined ? { requeueAfterMs: result.requeueAfterMs } : undefined;
  };
}
