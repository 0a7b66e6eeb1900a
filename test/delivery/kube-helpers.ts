// Shared steps of the delivery integration tests on the real apiserver:
// install the CRDs, create a CrawlJob + signing Secret, create CrawlFeeds the
// way the runner does, read them back, drive the reconciler until a feed
// settles, read Events.
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import type { CrawlFeed, FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob, CrawlJobSpec } from "../../crds/schema/crawljob.ts";
import type { FeedDeliveryReconciler } from "../../operator/delivery/index.ts";
import { crawlFeedObject } from "../../runner/report/crawlfeeds.ts";
import { kubectl } from "../platform/fixtures.ts";

const root = resolve(import.meta.dirname, "..", "..");
const G = { group: "feedcrawl.io", version: "v1alpha1" };

let crdsInstalled: Promise<void> | undefined;

/** Applies crds/*.yaml (server-side, idempotent) and waits until they are served. */
export function installCrds(): Promise<void> {
  crdsInstalled ??= (async () => {
    const files = ["crds/feedcrawl.io_crawljobs.yaml", "crds/feedcrawl.io_crawlfeeds.yaml"].map((f) =>
      resolve(root, f),
    );
    await kubectl([
      "apply",
      "--server-side",
      "--force-conflicts",
      "--field-manager=feedcrawl-tests",
      ...files.flatMap((f) => ["-f", f]),
    ]);
    await kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/crawljobs.feedcrawl.io",
      "crd/crawlfeeds.feedcrawl.io",
    ]);
  })();
  return crdsInstalled;
}

/** A Standard Webhooks secret (`whsec_` + base64 of 32 random bytes). */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

export async function createSecret(kc: KubeConfig, namespace: string, name: string, data: Record<string, string>) {
  await kc.makeApiClient(CoreV1Api).createNamespacedSecret({
    namespace,
    body: { metadata: { name, namespace }, stringData: data },
  });
}

type Webhook = NonNullable<NonNullable<CrawlJobSpec["ingest"]>["webhook"]>;

export async function createCrawlJob(
  kc: KubeConfig,
  namespace: string,
  name: string,
  webhook: Partial<Webhook> & { url: string },
): Promise<CrawlJob> {
  const body: CrawlJob = {
    apiVersion: "feedcrawl.io/v1alpha1",
    kind: "CrawlJob",
    metadata: { name, namespace },
    spec: {
      spider: { name: "books", startUrls: ["https://books.example/"] },
      feeds: { "s3://crawl-data/%(name)s/part-%(batch_id)05d.jsonl": { format: "jsonlines", batchItemCount: 100 } },
      ingest: {
        webhook: { signingSecretRef: { name: "ingest-webhook" }, allowPrivateNetworks: true, ...webhook } as Webhook,
      },
    },
  };
  return (await createObject(kc, namespace, "crawljobs", body)) as CrawlJob;
}

function createObject(kc: KubeConfig, namespace: string, plural: string, body: object): Promise<unknown> {
  return kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({ ...G, namespace, plural, body });
}

function getObject(kc: KubeConfig, namespace: string, plural: string, name: string): Promise<unknown> {
  return kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ ...G, namespace, plural, name });
}

export async function getJob(kc: KubeConfig, namespace: string, name: string): Promise<CrawlJob> {
  return (await getObject(kc, namespace, "crawljobs", name)) as CrawlJob;
}

export function feedEvent(uri: string, overrides: Partial<FeedClosed> = {}): FeedClosed {
  return {
    uri,
    feed: "s3://crawl-data/%(name)s/part-%(batch_id)05d.jsonl",
    batchId: Number(/(\d+)\.jsonl$/.exec(uri)?.[1] ?? 1),
    shard: 0,
    format: "jsonlines",
    items: 100,
    bytes: 12345,
    sha256: randomBytes(32).toString("hex"),
    closedAt: new Date().toISOString(),
    ...overrides,
  };
}

/** Creates a CrawlFeed exactly as `feedcrawl run` does (same builder). */
export async function createFeedAsRunner(kc: KubeConfig, job: CrawlJob, ev: FeedClosed): Promise<CrawlFeed> {
  const body = crawlFeedObject(
    { name: job.metadata.name!, namespace: job.metadata.namespace!, uid: job.metadata.uid! },
    ev.shard,
    ev,
  );
  return (await createObject(kc, job.metadata.namespace!, "crawlfeeds", body)) as CrawlFeed;
}

export async function getFeed(kc: KubeConfig, namespace: string, name: string): Promise<CrawlFeed> {
  return (await getObject(kc, namespace, "crawlfeeds", name)) as CrawlFeed;
}

export async function listFeeds(kc: KubeConfig, namespace: string): Promise<CrawlFeed[]> {
  const list = (await kc
    .makeApiClient(CustomObjectsApi)
    .listNamespacedCustomObject({ ...G, namespace, plural: "crawlfeeds" })) as { items: CrawlFeed[] };
  return list.items;
}

/** Writes a CrawlFeed's status as admin (to stage a state, e.g. a crashed `Sending`). */
export async function setFeedStatus(kc: KubeConfig, feed: CrawlFeed, status: CrawlFeed["status"]): Promise<CrawlFeed> {
  return (await kc.makeApiClient(CustomObjectsApi).replaceNamespacedCustomObjectStatus({
    ...G,
    namespace: feed.metadata.namespace!,
    plural: "crawlfeeds",
    name: feed.metadata.name!,
    body: { ...feed, status },
  })) as CrawlFeed;
}

export async function annotateFeed(kc: KubeConfig, feed: CrawlFeed, key: string, value: string): Promise<void> {
  await kubectl([
    "annotate",
    "-n",
    feed.metadata.namespace!,
    `crawlfeed/${feed.metadata.name}`,
    `${key}=${value}`,
    "--overwrite",
  ]);
  void kc;
}

export async function eventsFor(kc: KubeConfig, namespace: string, name: string) {
  const list = await kc
    .makeApiClient(CoreV1Api)
    .listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
  return list.items;
}

/**
 * Calls `reconcile` like the operator's work queue would (fresh object from
 * the API, requeue after the delay asked) until the feed is Delivered or
 * Failed; returns the settled feed.
 */
export async function driveFeed(
  kc: KubeConfig,
  reconciler: FeedDeliveryReconciler,
  namespace: string,
  name: string,
  timeoutMs = 30_000,
): Promise<CrawlFeed> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const feed = await getFeed(kc, namespace, name);
    const state = feed.status?.delivery?.state;
    if ((state === "Delivered" || state === "Failed") && !feed.metadata.annotations?.["feedcrawl.io/redeliver"])
      return feed;
    const jobName = feed.metadata.labels?.["feedcrawl.io/crawljob"];
    const job = jobName ? await getJob(kc, namespace, jobName).catch(() => undefined) : undefined;
    const result = await reconciler.reconcile(feed, job);
    if (Date.now() > deadline)
      throw new Error(
        `CrawlFeed ${namespace}/${name} did not settle in ${timeoutMs} ms: ${JSON.stringify(feed.status)}`,
      );
    if (result.requeueAfterMs !== undefined) await sleep(Math.min(result.requeueAfterMs, 5_000));
  }
}
