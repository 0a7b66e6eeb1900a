// A stand-in operator process for the delivery fault tests: the real delivery
// reconciler (operator/delivery) in a loop over one namespace's CrawlFeeds,
// as the operator's CrawlFeed controller runs it, in a process the test can
// SIGKILL at the worst moments. Config from the environment:
//   KUBECONFIG                        admin kubeconfig of the test apiserver
//   FEEDCRAWL_TEST_WORKER_NAMESPACE   the namespace to deliver
//   FEEDCRAWL_TEST_WORKER_BASE_MS     backoff base (default 200)
//   FEEDCRAWL_TEST_WORKER_PAUSED=1    load everything, then wait for a line on stdin
//                                     (a standby "next operator" that takes over at once)
//   FEEDCRAWL_WEBHOOK_PRIVATE_NETWORKS the operator's webhook private networks (the harness: 127.0.0.0/8)
import { setTimeout as sleep } from "node:timers/promises";
import { CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { createFeedDeliveryReconciler } from "../../operator/delivery/index.ts";

const namespace = process.env.FEEDCRAWL_TEST_WORKER_NAMESPACE;
if (!namespace) throw new Error("FEEDCRAWL_TEST_WORKER_NAMESPACE is not set");
const baseMs = Number(process.env.FEEDCRAWL_TEST_WORKER_BASE_MS ?? 200);

const kc = new KubeConfig();
kc.loadFromDefault();
const api = kc.makeApiClient(CustomObjectsApi);
// Synchronous writes: the test SIGKILLs this process and still wants its last lines.
const logger = pino({ base: { worker: process.pid } }, pino.destination({ fd: 1, sync: true }));
const reconciler = createFeedDeliveryReconciler({ kc, logger, backoff: { baseMs, capMs: baseMs * 8, minMs: 50 } });
const G = { group: "feedcrawl.io", version: "v1alpha1", namespace };
/** Requeue times the reconciler asked for, per feed (in memory: lost on a kill, like the operator's queue). */
const notBefore = new Map<string, number>();

let stopping = false;
process.on("SIGTERM", () => {
  stopping = true;
});

if (process.env.FEEDCRAWL_TEST_WORKER_PAUSED === "1") {
  await new Promise<void>((resolve) => process.stdin.once("data", () => resolve()));
}
logger.info(`Delivery worker for namespace ${namespace} started`);
while (!stopping) {
  try {
    const feeds = ((await api.listNamespacedCustomObject({ ...G, plural: "crawlfeeds" })) as { items: CrawlFeed[] })
      .items;
    const jobs = ((await api.listNamespacedCustomObject({ ...G, plural: "crawljobs" })) as { items: CrawlJob[] }).items;
    await Promise.all(
      feeds.map(async (feed) => {
        const name = feed.metadata.name!;
        if ((notBefore.get(name) ?? 0) > Date.now()) return;
        const job = jobs.find((j) => j.metadata.name === feed.metadata.labels?.["feedcrawl.io/crawljob"]);
        const result = await reconciler.reconcile(feed, job);
        if (result.requeueAfterMs !== undefined) notBefore.set(name, Date.now() + result.requeueAfterMs);
        else notBefore.set(name, Date.now() + 60_000);
      }),
    );
  } catch (err) {
    logger.warn({ err: (err as Error).message }, "Delivery worker loop failed; retrying");
  }
  await sleep(100);
}
await reconciler.close();
