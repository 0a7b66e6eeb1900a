// The delivery through the real `feedcrawl operator` process (its CrawlFeed
// informer + work queue calling operator/delivery): CrawlFeeds created as the
// runner creates them are delivered; the operator SIGKILLed when the backend
// receives a POST (before it answers) loses nothing after a restart, and
// duplicates only repeat a webhook-id; /metrics counts the outcomes.
import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import type { KubeConfig } from "@kubernetes/client-node";
import { PRIVATE_NETWORKS_ENV } from "../../operator/delivery/dispatchers.ts";
import { feedWebhookId } from "../../operator/delivery/index.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually } from "../platform/fixtures.ts";
import { freePort } from "../platform/ports.ts";
import { LoggedProcess } from "./fault-harness.ts";
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

class Operator extends LoggedProcess {
  readonly metricsPort: number;
  constructor(namespace: string, metricsPort: number, logName: string) {
    const args = ["--namespace", namespace, "--metrics-addr", `127.0.0.1:${metricsPort}`, "--health-addr", "0"];
    // The receiver is on loopback: the operator's webhook private networks must allow it
    // (read from the environment until the chart/flag wiring passes it explicitly).
    super(
      logName,
      [join(root, "bin/feedcrawl.ts"), "operator", ...args],
      { [PRIVATE_NETWORKS_ENV]: "127.0.0.0/8" },
      "ignore",
    );
    this.metricsPort = metricsPort;
  }
  /** Waits for "Operator started". */
  started(): Promise<void> {
    return this.logged("feedcrawl operator", '"Operator started"');
  }
  async metric(name: string): Promise<number | undefined> {
    const text = await (await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(name));
    return line ? Number(line.split(" ").at(-1)) : undefined;
  }
}

describe("delivery through `feedcrawl operator`", () => {
  let kc: KubeConfig;
  let ns: Disposable;
  let receiver: Receiver;
  const secret = newSigningSecret();
  const operators: Operator[] = [];

  before(async () => {
    kc = adminKubeConfig();
    await installCrds();
    ns = await createNamespace("operator-delivery");
    await createSecret(kc, ns.name, "ingest-webhook", { secret });
    receiver = await startReceiver(secret);
  });

  after(async () => {
    for (const op of operators) await op.kill();
    await receiver?.close();
    await ns?.cleanup();
  });

  it("delivers every CrawlFeed; a SIGKILL on receipt loses none and repeats only a webhook-id", async () => {
    const job = await createCrawlJob(kc, ns.name, "books", { url: receiver.url });
    const feeds = [];
    for (const n of [1, 2, 3, 4]) {
      feeds.push(await createFeedAsRunner(kc, job, feedEvent(`s3://crawl-data/books/part-0000${n}.jsonl`)));
    }
    const ids = new Set(feeds.map((f) => feedWebhookId(job.metadata.uid!, f.spec.uri)));

    let first: Operator | undefined;
    let killedFor: string | undefined;
    receiver.respond = async (r) => {
      if (!killedFor) {
        killedFor = r.id;
        await first?.kill();
        return "destroy";
      }
      return { status: 202 };
    };
    first = new Operator(ns.name, await freePort(), "operator-delivery-1");
    operators.push(first);
    // Start-up included: on a busy 2-core machine it can take a minute.
    await eventually("the operator killed on its first POST", () => first!.child.signalCode === "SIGKILL", 150_000);

    const second = new Operator(ns.name, await freePort(), "operator-delivery-2");
    operators.push(second);
    await second.started();
    const delivered = await eventually(
      "every CrawlFeed Delivered by the restarted operator",
      async () => {
        const list = await listFeeds(kc, ns.name);
        return list.length === 4 && list.every((f) => f.status?.delivery?.state === "Delivered") ? list : undefined;
      },
      60_000,
    );
    assert.ok(receiver.received.every((r) => r.verified));
    assert.deepEqual(receiver.distinctIds(), ids);
    assert.ok(receiver.received.filter((r) => r.id === killedFor).length >= 2, "the lost answer's feed was sent again");
    const resent = delivered.find((f) => feedWebhookId(job.metadata.uid!, f.spec.uri) === killedFor);
    assert.ok((resent?.status?.delivery?.attempts ?? 0) >= 2);
    const count = await second.metric('feedcrawl_webhook_deliveries_total{outcome="delivered"}');
    assert.ok(count !== undefined && count >= 1, `delivered outcomes counted on /metrics (got ${count})`);
  });
});
