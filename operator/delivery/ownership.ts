// Which CrawlFeeds the operator delivers: only those a CrawlJob owns. The
// runner's token may create any CrawlFeed in its namespace, so the labels
// and the controller ownerReference are checked against the CrawlJob itself
// (uid included: a recreated job with the same name is another job).
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { CRAWLJOB_LABEL, SHARD_LABEL } from "../../crds/schema/names.ts";

/** Why `feed` cannot be delivered for `job` (the CrawlJob its label names), or undefined when it belongs to it. */
export function ownershipProblem(feed: CrawlFeed, job: CrawlJob | undefined): string | undefined {
  const label = feed.metadata.labels?.[CRAWLJOB_LABEL];
  if (!label) return `CrawlFeed has no ${CRAWLJOB_LABEL} label`;
  if (!job) return `CrawlJob ${feed.metadata.namespace}/${label} (from the ${CRAWLJOB_LABEL} label) does not exist`;
  if (label !== job.metadata.name)
    return `label ${CRAWLJOB_LABEL}=${label} does not name CrawlJob ${job.metadata.name}`;
  const owner = feed.metadata.ownerReferences?.find((ref) => ref.controller);
  if (owner?.kind !== "CrawlJob" || owner.uid !== job.metadata.uid) {
    return `CrawlFeed is not controlled by CrawlJob ${job.metadata.name} (uid ${job.metadata.uid})`;
  }
  const shard = feed.metadata.labels?.[SHARD_LABEL];
  if (shard !== undefined && shard !== String(feed.spec.shard)) {
    return `label ${SHARD_LABEL}=${shard} does not match spec.shard ${feed.spec.shard}`;
  }
  return undefined;
}
