// The delivery state machine on real CrawlFeed objects in the real apiserver,
// driven in-process the way the operator's work queue drives it, against a
// webhook receiver on 127.0.0.1 that verifies every signature with the
// standardwebhooks library. The receiver is a private address: the operator's
// private-network list (webhookPrivateNetworks) allows 127.0.0.0/8 here, and
// the CrawlJobs set allowPrivateNetworks: true (finding 7 of issue 14).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import {
  completionWebhookId,
  createFeedDeliveryReconciler,
  type FeedDeliveryReconciler,
  feedWebhookId,
} from "../../operator/delivery/index.ts";
import { DeliveryApi } from "../../operator/delivery/kube.ts";
import { webhookDeliveries } from "../../operator/metrics.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually } from "../platform/fixtures.ts";
import {
  annotateFeed,
  createCrawlJob,
  createFeedAsRunner,
  createSecret,
  driveFeed,
  eventsFor,
  feedEvent,
  getFeed,
  getJob,
  installCrds,
  newSigningSecret,
  setFeedStatus,
} from "./kube-helpers.ts";
import { type Receiver, startReceiver } from "./receiver.ts";

const logger = pino({ level: process.env.FEEDCRAWL_TEST_LOG ?? "silent" });
const fast = { baseMs: 200, capMs: 1_000, minMs: 50 };
/** The operator's webhook private networks in these tests: the receiver's loopback. */
const LOOPBACK = ["127.0.0.0/8"];

describe("webhook delivery on the real apiserver", () => {
  let kc: KubeConfig;
  let ns: Disposable;
  let namespace: string;
  const secret = newSigningSecret();
  let receiver: Receiver;
  let reconciler: FeedDeliveryReconciler;
  let job: CrawlJob;
  let jobs = 0;

  /** A fresh CrawlJob in the test namespace, pointing at the receiver (or `url`). */
  async function newJob(webhook: Parameters<typeof createCrawlJob>[3] = { url: receiver.url }): Promise<CrawlJob> {
    jobs++;
    return createCrawlJob(kc, namespace, `books-${jobs}`, webhook);
  }

  before(async () => {
    kc = adminKubeConfig();
    await installCrds();
    ns = await createNamespace("delivery");
    namespace = ns.name;
    await createSecret(kc, namespace, "ingest-webhook", { secret });
    receiver = await startReceiver(secret);
    reconciler = createFeedDeliveryReconciler({ kc, logger, backoff: fast, webhookPrivateNetworks: LOOPBACK });
    job = await newJob();
  });

  after(async () => {
    await reconciler?.close();
    await receiver?.close();
    await ns?.cleanup();
  });

  it("delivers each CrawlFeed once, signed, with a stable webhook-id per feed", async () => {
    receiver.respond = () => ({ status: 202 });
    const uris = [1, 2, 3].map((n) => `s3://crawl-data/books/part-0000${n}.jsonl`);
    const feeds = [];
    for (const uri of uris) feeds.push(await createFeedAsRunner(kc, job, feedEvent(uri)));
    const before = receiver.received.length;
    const settled = await Promise.all(feeds.map((f) => driveFeed(kc, reconciler, namespace, f.metadata.name!)));
    for (const feed of settled) {
      const d = feed.status?.delivery;
      assert.equal(d?.state, "Delivered");
      assert.equal(d?.attempts, 1);
      assert.equal(d?.lastResponseCode, 202);
      assert.ok(d?.deliveredAt);
      assert.equal(d?.nextAttemptAt, undefined);
    }
    const got = receiver.received.slice(before);
    assert.equal(got.length, 3);
    assert.ok(
      got.every((r) => r.verified),
      "every signature verifies with standardwebhooks",
    );
    assert.deepEqual(new Set(got.map((r) => r.id)), new Set(uris.map((u) => feedWebhookId(job.metadata.uid!, u))));
    const body = got.find((r) => r.id === feedWebhookId(job.metadata.uid!, uris[0]!))?.body as Record<string, unknown>;
    assert.deepEqual(body.crawlJob, { namespace, name: job.metadata.name, uid: job.metadata.uid });
    assert.equal(body.type, "feed.closed");
    assert.equal((body.feed as Record<string, unknown>).bucket, "crawl-data");
    assert.equal((body.feed as Record<string, unknown>).key, "books/part-00001.jsonl");
    // Reconciling a Delivered feed again sends nothing.
    await reconciler.reconcile(settled[0]!, job);
    assert.equal(receiver.received.length, before + 3);
  });

  it("retries 503 honouring Retry-After, then delivers under the same webhook-id", async () => {
    const feed = await createFeedAsRunner(kc, job, feedEvent("s3://crawl-data/books/part-00010.jsonl"));
    const id = feedWebhookId(job.metadata.uid!, feed.spec.uri);
    let calls = 0;
    receiver.respond = (r) =>
      r.id === id && ++calls <= 2 ? { status: 503, headers: { "retry-after": "1" } } : { status: 200 };
    const seen: string[] = [];
    const watcher = setInterval(async () => {
      const f = await getFeed(kc, namespace, feed.metadata.name!).catch(() => undefined);
      const next = f?.status?.delivery?.nextAttemptAt;
      if (next && !seen.includes(next)) seen.push(next);
    }, 50);
    const retriesBefore = await webhookDeliveries.get();
    try {
      const settled = await driveFeed(kc, reconciler, namespace, feed.metadata.name!);
      assert.equal(settled.status?.delivery?.state, "Delivered");
      assert.equal(settled.status?.delivery?.attempts, 3);
      assert.equal(settled.status?.delivery?.lastResponseCode, 200);
    } finally {
      clearInterval(watcher);
    }
    const attempts = receiver.received.filter((r) => r.id === id);
    assert.equal(attempts.length, 3);
    // Retry-After: 1 → each retry came at least ~1 s (whole seconds in the header) after the previous answer.
    for (let i = 1; i < attempts.length; i++) {
      assert.ok(
        attempts[i]!.at - attempts[i - 1]!.at >= 900,
        `retry ${i} came after ${attempts[i]!.at - attempts[i - 1]!.at} ms`,
      );
    }
    assert.ok(seen.length >= 1, "nextAttemptAt was persisted in status while waiting");
    const retryCount = (await webhookDeliveries.get()).values.find((v) => v.labels.outcome === "retry")?.value ?? 0;
    const retryBefore = retriesBefore.values.find((v) => v.labels.outcome === "retry")?.value ?? 0;
    assert.equal(retryCount - retryBefore, 2, "the retry outcome metric counted both 503s");
  });

  it("a 400 fails at once with a Warning DeliveryFailed Event; the secret and a private answer appear nowhere", async () => {
    const feed = await createFeedAsRunner(kc, job, feedEvent("s3://crawl-data/books/part-00020.jsonl"));
    const id = feedWebhookId(job.metadata.uid!, feed.spec.uri);
    receiver.respond = (r) =>
      r.id === id ? { status: 400, body: "internal admin: db password hunter2" } : { status: 200 };
    const settled = await driveFeed(kc, reconciler, namespace, feed.metadata.name!);
    // The receiver is on a private address: its answer is not quoted into status the job author reads.
    assert.deepEqual(
      { ...settled.status?.delivery },
      {
        state: "Failed",
        attempts: 1,
        lastResponseCode: 400,
        lastError: "HTTP 400: (response body not recorded: the webhook may be on a private network)",
      },
    );
    assert.equal(receiver.received.filter((r) => r.id === id).length, 1);
    const events = await eventually("the DeliveryFailed Event", async () => {
      const list = await eventsFor(kc, namespace, feed.metadata.name!);
      return list.length > 0 ? list : undefined;
    });
    assert.equal(events[0]?.reason, "DeliveryFailed");
    assert.equal(events[0]?.type, "Warning");
    assert.equal(events[0]?.involvedObject.kind, "CrawlFeed");
    assert.match(events[0]?.message ?? "", /HTTP 400/);
    const secretBody = secret.slice("whsec_".length);
    for (const text of [JSON.stringify(settled), JSON.stringify(events)]) {
      assert.ok(!text.includes(secretBody), "the signing secret leaked");
      assert.ok(!text.includes("hunter2"), "the private backend's answer leaked");
    }
  });

  it("gives up after maxAttempts retryable failures", async () => {
    const limited = await newJob({ url: receiver.url, maxAttempts: 2 });
    const feed = await createFeedAsRunner(kc, limited, feedEvent("s3://crawl-data/books/part-00030.jsonl"));
    const id = feedWebhookId(limited.metadata.uid!, feed.spec.uri);
    receiver.respond = (r) => (r.id === id ? { status: 500, headers: { "retry-after": "0" } } : { status: 200 });
    const settled = await driveFeed(kc, reconciler, namespace, feed.metadata.name!);
    assert.equal(settled.status?.delivery?.state, "Failed");
    assert.equal(settled.status?.delivery?.attempts, 2);
    assert.match(settled.status?.delivery?.lastError ?? "", /^Gave up after 2 attempts: HTTP 500/);
    assert.equal(receiver.received.filter((r) => r.id === id).length, 2);
  });

  it("the redeliver annotation resends a Delivered feed and is removed", async () => {
    receiver.respond = () => ({ status: 200 });
    const feed = await createFeedAsRunner(kc, job, feedEvent("s3://crawl-data/books/part-00040.jsonl"));
    const id = feedWebhookId(job.metadata.uid!, feed.spec.uri);
    await driveFeed(kc, reconciler, namespace, feed.metadata.name!);
    const firstAt = (await getFeed(kc, namespace, feed.metadata.name!)).status?.delivery?.deliveredAt;
    await sleep(1100);
    await annotateFeed(kc, feed, "feedcrawl.io/redeliver", "please");
    const settled = await driveFeed(kc, reconciler, namespace, feed.metadata.name!);
    assert.equal(settled.metadata.annotations?.["feedcrawl.io/redeliver"], undefined);
    assert.equal(settled.status?.delivery?.state, "Delivered");
    assert.equal(settled.status?.delivery?.attempts, 1);
    assert.notEqual(settled.status?.delivery?.deliveredAt, firstAt);
    assert.equal(receiver.received.filter((r) => r.id === id).length, 2, "sent twice, both under the same webhook-id");
  });

  it("the redeliver annotation also restarts a Failed feed", async () => {
    const feed = await createFeedAsRunner(kc, job, feedEvent("s3://crawl-data/books/part-00041.jsonl"));
    const id = feedWebhookId(job.metadata.uid!, feed.spec.uri);
    receiver.respond = (r) => (r.id === id ? { status: 422 } : { status: 200 });
    assert.equal((await driveFeed(kc, reconciler, namespace, feed.metadata.name!)).status?.delivery?.state, "Failed");
    receiver.respond = () => ({ status: 200 });
    await annotateFeed(kc, feed, "feedcrawl.io/redeliver", "1");
    const settled = await driveFeed(kc, reconciler, namespace, feed.metadata.name!);
    assert.equal(settled.status?.delivery?.state, "Delivered");
    assert.equal(receiver.received.filter((r) => r.id === id).length, 2);
  });

  it("a feed left in Sending (the operator died) is sent again under the same webhook-id", async () => {
    receiver.respond = () => ({ status: 200 });
    let feed = await createFeedAsRunner(kc, job, feedEvent("s3://crawl-data/books/part-00050.jsonl"));
    feed = await setFeedStatus(kc, feed, { delivery: { state: "Sending", attempts: 1 } });
    const settled = await driveFeed(kc, reconciler, namespace, feed.metadata.name!);
    assert.equal(settled.status?.delivery?.state, "Delivered");
    assert.equal(settled.status?.delivery?.attempts, 2);
    const got = receiver.received.filter((r) => r.id === feedWebhookId(job.metadata.uid!, feed.spec.uri));
    assert.equal(got.length, 1);
  });

  it("a restarted operator honours the persisted nextAttemptAt instead of starting over", async () => {
    const feed = await createFeedAsRunner(kc, job, feedEvent("s3://crawl-data/books/part-00060.jsonl"));
    const id = feedWebhookId(job.metadata.uid!, feed.spec.uri);
    receiver.respond = (r) => (r.id === id ? { status: 503, headers: { "retry-after": "3" } } : { status: 200 });
    const first = createFeedDeliveryReconciler({ kc, logger, backoff: fast, webhookPrivateNetworks: LOOPBACK });
    // The reconcile hands the POST to the dispatcher; once it ran, the next reconcile sees the persisted retry time.
    await first.reconcile(await getFeed(kc, namespace, feed.metadata.name!), job);
    await first.idle();
    const r1 = await first.reconcile(await getFeed(kc, namespace, feed.metadata.name!), job);
    await first.close();
    assert.ok((r1.requeueAfterMs ?? 0) > 2_000);
    const waiting = await getFeed(kc, namespace, feed.metadata.name!);
    assert.equal(waiting.status?.delivery?.state, "Pending");
    const nextAt = Date.parse(waiting.status!.delivery!.nextAttemptAt!);

    // A new process (fresh in-memory state) looks at it right away: it must wait, not POST.
    receiver.respond = () => ({ status: 200 });
    const second = createFeedDeliveryReconciler({ kc, logger, backoff: fast, webhookPrivateNetworks: LOOPBACK });
    try {
      const r2 = await second.reconcile(waiting, job);
      assert.ok(r2.requeueAfterMs !== undefined && r2.requeueAfterMs > 0 && r2.requeueAfterMs <= 3_000);
      assert.equal(receiver.received.filter((r) => r.id === id).length, 1);
      const settled = await driveFeed(kc, second, namespace, feed.metadata.name!);
      assert.equal(settled.status?.delivery?.state, "Delivered");
      const retry = receiver.received.filter((r) => r.id === id)[1]!;
      assert.ok(retry.at >= nextAt - 50, "the retry did not come before nextAttemptAt");
    } finally {
      await second.close();
    }
  });

  it("rejects a CrawlFeed not controlled by its CrawlJob without sending it", async () => {
    const other = await newJob();
    const feed = await createFeedAsRunner(kc, other, feedEvent("s3://crawl-data/books/part-00070.jsonl"));
    const before = receiver.received.length;
    // The label says `job`, the owner is `other`.
    await reconciler.reconcile({ ...feed, metadata: { ...feed.metadata } }, job);
    const settled = await getFeed(kc, namespace, feed.metadata.name!);
    assert.equal(settled.status?.delivery?.state, "Failed");
    assert.match(settled.status?.delivery?.lastError ?? "", /does not name CrawlJob|not controlled by CrawlJob/);
    const orphan = await createFeedAsRunner(kc, other, feedEvent("s3://crawl-data/books/part-00071.jsonl"));
    await reconciler.reconcile(orphan, undefined);
    const orphanSettled = await getFeed(kc, namespace, orphan.metadata.name!);
    assert.equal(orphanSettled.status?.delivery?.state, "Failed");
    assert.match(orphanSettled.status?.delivery?.lastError ?? "", /does not exist/);
    assert.equal(receiver.received.length, before);
  });

  it("refuses a loopback backend unless allowPrivateNetworks (the address guard)", async () => {
    const guarded = await newJob({ url: receiver.url, allowPrivateNetworks: false });
    const feed = await createFeedAsRunner(kc, guarded, feedEvent("s3://crawl-data/books/part-00080.jsonl"));
    const before = receiver.received.length;
    const settled = await driveFeed(kc, reconciler, namespace, feed.metadata.name!);
    assert.equal(settled.status?.delivery?.state, "Failed");
    assert.match(settled.status?.delivery?.lastError ?? "", /127\.0\.0\.1.*not a public address/);
    assert.equal(receiver.received.length, before);
  });

  it("allowPrivateNetworks: true reaches no private address the operator does not allow (finding 7)", async () => {
    const privateJob = await newJob({ url: receiver.url, allowPrivateNetworks: true });
    const publicOnly = createFeedDeliveryReconciler({ kc, logger, backoff: fast, webhookPrivateNetworks: [] });
    try {
      const feed = await createFeedAsRunner(kc, privateJob, feedEvent("s3://crawl-data/books/part-00081.jsonl"));
      const before = receiver.received.length;
      const refused = await driveFeed(kc, publicOnly, namespace, feed.metadata.name!);
      assert.equal(refused.status?.delivery?.state, "Failed");
      const error = refused.status?.delivery?.lastError ?? "";
      assert.match(error, /127\.0\.0\.1.*not a public address/);
      assert.match(error, /--webhook-private-networks \(chart value webhook\.privateNetworks\) allows: none/);
      assert.equal(receiver.received.length, before, "nothing reached the receiver");

      // The same feed, redelivered by an operator that allows 127.0.0.0/8: delivered.
      receiver.respond = () => ({ status: 200 });
      await annotateFeed(kc, feed, "feedcrawl.io/redeliver", "1");
      const delivered = await driveFeed(kc, reconciler, namespace, feed.metadata.name!);
      assert.equal(delivered.status?.delivery?.state, "Delivered");
      assert.equal(receiver.received.length, before + 1);
    } finally {
      await publicOnly.close();
    }
  });

  it("waits for a missing signing Secret without using up attempts", async () => {
    const noSecret = await newJob({ url: receiver.url, signingSecretRef: { name: "later", key: "token" } });
    const feed = await createFeedAsRunner(kc, noSecret, feedEvent("s3://crawl-data/books/part-00090.jsonl"));
    const r = await reconciler.reconcile(feed, noSecret);
    assert.ok(r.requeueAfterMs !== undefined);
    const waiting = await getFeed(kc, namespace, feed.metadata.name!);
    assert.equal(waiting.status?.delivery?.state, "Pending");
    assert.equal(waiting.status?.delivery?.attempts, 0);
    assert.match(waiting.status?.delivery?.lastError ?? "", /Secret .*\/later not found/);
    receiver.respond = () => ({ status: 200 });
    await createSecret(kc, namespace, "later", { token: secret });
    const settled = await driveFeed(kc, reconciler, namespace, feed.metadata.name!);
    assert.equal(settled.status?.delivery?.state, "Delivered");
    assert.equal(settled.status?.delivery?.attempts, 1);
  });

  it("status writes carry the read resourceVersion: a stale copy gets a conflict", async () => {
    const feed = await createFeedAsRunner(kc, job, feedEvent("s3://crawl-data/books/part-00100.jsonl"));
    const api = new DeliveryApi(kc);
    const first = await api.writeFeedDelivery(feed, { state: "Pending", attempts: 0 });
    assert.ok(first.ok);
    const stale = await api.writeFeedDelivery(feed, { state: "Sending", attempts: 1 });
    assert.deepEqual(stale, { ok: false, reason: "conflict" });
    assert.equal((await getFeed(kc, namespace, feed.metadata.name!)).status?.delivery?.state, "Pending");
  });

  it("onCompletion: one crawl.completed event with every feed, state in status.completionDelivery", async () => {
    const completion = await newJob({ url: receiver.url, mode: "onCompletion" });
    const feeds: CrawlFeed[] = [];
    for (const n of [1, 2]) {
      feeds.push(await createFeedAsRunner(kc, completion, feedEvent(`s3://crawl-data/books/part-0020${n}.jsonl`)));
    }
    // Per feed, nothing is sent in this mode.
    const before = receiver.received.length;
    for (const f of feeds) await reconciler.reconcile(f, completion);
    assert.equal(receiver.received.length, before);

    let calls = 0;
    const id = completionWebhookId(completion.metadata.uid!);
    receiver.respond = (r) =>
      r.id === id && ++calls === 1 ? { status: 429, headers: { "retry-after": "1" } } : { status: 200 };
    const deliver = async () => {
      const result = await reconciler.deliverCompletion(await getJob(kc, namespace, completion.metadata.name!), feeds);
      await reconciler.idle(); // the POST runs in the dispatcher, not in this call
      return result;
    };
    assert.ok((await deliver()).requeueAfterMs !== undefined, "handed off: look again");
    const wait = await deliver(); // the 429's Retry-After, persisted
    assert.ok(wait.requeueAfterMs !== undefined && wait.requeueAfterMs > 0);
    await sleep(wait.requeueAfterMs);
    await deliver();
    assert.deepEqual(await deliver(), {});
    const settled = await getJob(kc, namespace, completion.metadata.name!);
    assert.equal(settled.status?.completionDelivery?.state, "Delivered");
    assert.equal(settled.status?.completionDelivery?.attempts, 2);
    const got = receiver.received.filter((r) => r.id === id);
    assert.equal(got.length, 2);
    const body = got[1]!.body as { type: string; feeds: { uri: string }[] };
    assert.equal(body.type, "crawl.completed");
    assert.deepEqual(
      body.feeds.map((f) => f.uri),
      feeds.map((f) => f.spec.uri),
    );
    assert.equal(JSON.stringify(got[0]!.body), JSON.stringify(got[1]!.body), "every attempt sends the same event");
  });

  it("the signing secret may be raw bytes instead of whsec_", async () => {
    const raw = randomBytes(32);
    const rawReceiver = await startReceiver(new Uint8Array(raw));
    try {
      await kc.makeApiClient((await import("@kubernetes/client-node")).CoreV1Api).createNamespacedSecret({
        namespace,
        body: { metadata: { name: "raw-secret" }, data: { secret: raw.toString("base64") } },
      });
      const rawJob = await newJob({ url: rawReceiver.url, signingSecretRef: { name: "raw-secret" } });
      const feed = await createFeedAsRunner(kc, rawJob, feedEvent("s3://crawl-data/books/part-00300.jsonl"));
      const settled = await driveFeed(kc, reconciler, namespace, feed.metadata.name!);
      assert.equal(settled.status?.delivery?.state, "Delivered");
      assert.equal(rawReceiver.received[0]?.verified, true);
    } finally {
      await rawReceiver.close();
    }
  });
});
