// Delivery fault tests: the operator process (the delivery reconciler in a
// child process) is SIGKILLed between `Sending` and the POST (the POST held
// back by a toxiproxy latency toxic) and between the POST and `Delivered` (the
// receiver kills it on receipt, before answering); the backend answers 503 for
// a while across a restart. No feed is lost, duplicates only ever repeat a
// webhook-id, and the persisted nextAttemptAt is honoured after a restart.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import type { KubeConfig } from "@kubernetes/client-node";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { feedWebhookId } from "../../operator/delivery/index.ts";
import { adminKubeConfig, platform } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually } from "../platform/fixtures.ts";
import { freePort } from "../platform/ports.ts";
import {
  createCrawlJob,
  createFeedAsRunner,
  createSecret,
  feedEvent,
  installCrds,
  listFeeds,
  newSigningSecret,
} from "./kube-helpers.ts";
import { type Receiver, startReceiver } from "./receiver.ts";

const root = resolve(import.meta.dirname, "..", "..");

/** The stand-in operator process; killed (SIGKILL) at the end whatever happens. */
class Worker {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly logFile: string;
  /** `paused`: loads and waits for `go()` (process start-up is seconds on a busy machine). */
  constructor(namespace: string, logName: string, paused = false) {
    this.logFile = join(platform().workDir, `${logName}-${process.pid}-${Date.now()}.log`);
    const log = openSync(this.logFile, "a");
    this.child = spawn(process.execPath, [join(root, "test/delivery/delivery-worker.ts")], {
      env: {
        ...process.env,
        KUBECONFIG: platform().kubeconfig,
        FEEDCRAWL_TEST_WORKER_NAMESPACE: namespace,
        FEEDCRAWL_TEST_WORKER_PAUSED: paused ? "1" : "0",
      },
      stdio: ["pipe", log, log],
    });
    closeSync(log);
    this.exited = new Promise((done) => this.child.once("exit", () => done()));
  }
  /**
   * Waits until the process has loaded and started its loop. Start-up is not
   * what the tests measure, and on a busy 2-core machine it can take a minute.
   */
  async started(): Promise<void> {
    await eventually(
      `delivery worker ${this.child.pid} to start (log ${this.logFile})`,
      () => existsSync(this.logFile) && readFileSync(this.logFile, "utf8").includes("Delivery worker for namespace"),
      150_000,
    );
  }
  go(): void {
    this.child.stdin?.write("go\n");
  }
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    await this.exited;
  }
}

/** toxiproxy's admin API (the platform's server). */
async function toxiproxy(method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${platform().toxiproxyUrl}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok && res.status !== 404) throw new Error(`toxiproxy ${method} ${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? undefined : res.json().catch(() => undefined);
}

function states(feeds: CrawlFeed[]): string[] {
  return feeds.map((f) => f.status?.delivery?.state ?? "none");
}

describe("delivery faults (operator SIGKILLed, backend outage)", () => {
  let kc: KubeConfig;
  const secret = newSigningSecret();
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    kc = adminKubeConfig();
    await installCrds();
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  /** A namespace with the signing Secret, a receiver, and a CrawlJob whose webhook is `url(receiver)`. */
  async function setup(
    name: string,
    url: (receiver: Receiver) => Promise<string> | string = (r) => r.url,
  ): Promise<{ namespace: string; receiver: Receiver; job: CrawlJob; feeds: CrawlFeed[]; ids: Set<string> }> {
    const ns: Disposable = await createNamespace(name);
    cleanups.push(() => ns.cleanup());
    await createSecret(kc, ns.name, "ingest-webhook", { secret });
    const receiver = await startReceiver(secret);
    cleanups.push(() => receiver.close());
    const job = await createCrawlJob(kc, ns.name, "books", { url: await url(receiver) });
    const feeds: CrawlFeed[] = [];
    for (const n of [1, 2, 3])
      feeds.push(await createFeedAsRunner(kc, job, feedEvent(`s3://crawl-data/books/part-0000${n}.jsonl`)));
    const ids = new Set(feeds.map((f) => feedWebhookId(job.metadata.uid!, f.spec.uri)));
    return { namespace: ns.name, receiver, job, feeds, ids };
  }

  function startWorker(namespace: string, logName: string, paused = false): Worker {
    const worker = new Worker(namespace, logName, paused);
    cleanups.push(() => worker.kill());
    return worker;
  }

  /** Every feed Delivered, every received request verified, ids = exactly the feeds' ids. */
  async function assertAllDeliveredOnce(namespace: string, receiver: Receiver, ids: Set<string>): Promise<CrawlFeed[]> {
    const feeds = await eventually(
      "every CrawlFeed Delivered",
      async () => {
        const list = await listFeeds(kc, namespace);
        return list.length === ids.size && list.every((f) => f.status?.delivery?.state === "Delivered")
          ? list
          : undefined;
      },
      60_000,
    );
    assert.ok(
      receiver.received.every((r) => r.verified),
      "every request carried a valid signature",
    );
    assert.deepEqual(receiver.distinctIds(), ids, "distinct webhook-ids = the CrawlFeeds, no stranger");
    return feeds;
  }

  it("SIGKILL between Sending and the POST: the held POST is sent again by the next operator", async () => {
    const proxyName = `delivery-${process.pid}-${Date.now()}`;
    let listen = "";
    const { namespace, receiver, ids } = await setup("fault-sending", async (r) => {
      listen = `127.0.0.1:${await freePort()}`;
      await toxiproxy("POST", "/proxies", { name: proxyName, listen, upstream: new URL(r.url).host, enabled: true });
      cleanups.push(async () => void (await toxiproxy("DELETE", `/proxies/${proxyName}`)));
      return `http://${listen}/bulk-ingest`;
    });
    // Hold every request on its way to the backend for 60 s.
    await toxiproxy("POST", `/proxies/${proxyName}/toxics`, {
      name: "hold",
      type: "latency",
      stream: "upstream",
      toxicity: 1,
      attributes: { latency: 60_000 },
    });
    const next = startWorker(namespace, "fault-sending-2", true);
    const first = startWorker(namespace, "fault-sending-1");
    await first.started();
    await eventually(
      "a CrawlFeed in Sending",
      async () => states(await listFeeds(kc, namespace)).includes("Sending"),
      60_000,
    );
    assert.equal(receiver.received.length, 0, "the POST was held back: nothing reached the backend yet");
    await first.kill();
    const afterKill = await listFeeds(kc, namespace);
    assert.ok(states(afterKill).includes("Sending"), "the killed operator left Sending behind");

    await toxiproxy("DELETE", `/proxies/${proxyName}/toxics/hold`);
    next.go();
    const feeds = await assertAllDeliveredOnce(namespace, receiver, ids);
    const resumed = feeds.filter(
      (f) => afterKill.find((a) => a.metadata.name === f.metadata.name)?.status?.delivery?.state === "Sending",
    );
    for (const feed of resumed) assert.ok(feed.status!.delivery!.attempts >= 2, "the interrupted attempt counted");
  });

  it("SIGKILL between the POST and Delivered: resent under the same webhook-id, nothing lost", async () => {
    let worker: Worker | undefined;
    const killedFor = new Set<string>();
    const { namespace, receiver, ids } = await setup("fault-received");
    receiver.respond = async (r) => {
      if (killedFor.size === 0) {
        // First POST to arrive: the operator dies before it hears the answer.
        killedFor.add(r.id);
        await worker?.kill();
        return "destroy";
      }
      return { status: 202 };
    };
    const next = startWorker(namespace, "fault-received-2", true);
    worker = startWorker(namespace, "fault-received-1");
    // Start-up included: on a busy 2-core machine it can take a minute.
    await eventually(
      "the operator killed on receipt",
      () => killedFor.size === 1 && worker!.child.exitCode === null && worker!.child.signalCode !== null,
      150_000,
    );
    const killedId = [...killedFor][0]!;
    const sending = (await listFeeds(kc, namespace)).filter((f) => f.status?.delivery?.state === "Sending");
    assert.ok(sending.length >= 1, "the killed operator left its claim in Sending");

    next.go();
    await assertAllDeliveredOnce(namespace, receiver, ids);
    const perId = new Map<string, number>();
    for (const r of receiver.received) perId.set(r.id, (perId.get(r.id) ?? 0) + 1);
    assert.ok((perId.get(killedId) ?? 0) >= 2, "the feed whose answer was lost was sent again, same webhook-id");
  });

  it("503 for a while, then recovery, across an operator restart: nextAttemptAt honoured, all delivered", async () => {
    const { namespace, receiver, ids, job } = await setup("fault-outage");
    // The backend is down (503, Retry-After: 5) until the test says it is back: the long
    // Retry-After keeps the feeds Pending most of the time, so the kill lands there.
    let down = true;
    receiver.respond = () => (down ? { status: 503, headers: { "retry-after": "5" } } : { status: 200 });
    const next = startWorker(namespace, "fault-outage-2", true);
    const first = startWorker(namespace, "fault-outage-1");
    await first.started();
    await eventually(
      "every CrawlFeed waiting for its retry",
      async () => {
        const list = await listFeeds(kc, namespace);
        return list.length === 3 && list.every((f) => f.status?.delivery?.state === "Pending");
      },
      60_000,
    );
    await first.kill();
    // What the restarted operator finds: the persisted retry times.
    const atRestart = await listFeeds(kc, namespace);
    const firstCount = receiver.received.length;
    down = false;
    next.go();
    const feeds = await assertAllDeliveredOnce(namespace, receiver, ids);
    for (const feed of feeds) assert.ok(feed.status!.delivery!.attempts >= 2, "at least one 503, then the 200");
    // The restarted operator did not retry before the persisted nextAttemptAt.
    let checked = 0;
    for (const feed of atRestart) {
      const delivery = feed.status?.delivery;
      if (delivery?.state !== "Pending" || !delivery.nextAttemptAt) continue; // killed mid-attempt: resent at once
      const id = feedWebhookId(job.metadata.uid!, feed.spec.uri);
      const retry = receiver.received.slice(firstCount).find((r) => r.id === id);
      assert.ok(retry, `CrawlFeed ${feed.metadata.name} was retried by the restarted operator`);
      const due = Date.parse(delivery.nextAttemptAt);
      assert.ok(retry.at >= due - 50, `retry of ${feed.metadata.name} came ${due - retry.at} ms early`);
      checked++;
    }
    assert.ok(checked >= 1, "at least one feed was waiting for its persisted retry time at the restart");
  });
});
