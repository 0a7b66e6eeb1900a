// Issue 13, item 4, through the real operator (Manager in this process, its
// informers and 4 CrawlFeed workers) on the real apiserver, with two webhook
// receivers on 127.0.0.1: one answers, one accepts and never answers. The
// hanging backend's feeds come first and outnumber the workers; the healthy
// backend's feeds are still all delivered promptly, and stopping the operator
// aborts the hanging POSTs instead of waiting out their 600 s timeout.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { KubeConfig } from "@kubernetes/client-node";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import { type RunningOperator, startOperator, tempDir } from "../operator/harness.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually } from "../platform/fixtures.ts";
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

const HANGING_FEEDS = 8;
const HEALTHY_FEEDS = 6;

const stateOf = (feeds: CrawlFeed[], job: string) =>
  feeds
    .filter((f) => f.metadata.labels?.["feedcrawl.io/crawljob"] === job)
    .map((f) => f.status?.delivery?.state ?? "none");
const count = (states: string[], state: string) => states.filter((s) => s === state).length;

describe("delivery dispatcher: a hanging backend cannot delay a healthy one", () => {
  let kc: KubeConfig;
  let ns: Disposable;
  let healthy: Receiver;
  let hanging: Receiver;
  let operator: RunningOperator | undefined;
  const secret = newSigningSecret();

  before(async () => {
    kc = adminKubeConfig();
    await installCrds();
    ns = await createNamespace("dispatcher");
    await createSecret(kc, ns.name, "ingest-webhook", { secret });
    healthy = await startReceiver(secret);
    hanging = await startReceiver(secret, () => new Promise(() => {}));
  });

  after(async () => {
    await operator?.stop();
    await healthy?.close();
    await hanging?.close();
    await ns?.cleanup();
  });

  it("delivers every feed to the healthy backend while the hanging one holds its own 4 slots", async () => {
    const hangs = await createCrawlJob(kc, ns.name, "hangs", { url: hanging.url, timeoutSeconds: 600 });
    const fine = await createCrawlJob(kc, ns.name, "fine", { url: healthy.url });
    operator = await startOperator(kc, { namespaces: [ns.name], workDir: tempDir("dispatcher") });

    for (let n = 1; n <= HANGING_FEEDS; n++) {
      await createFeedAsRunner(kc, hangs, feedEvent(`s3://crawl-data/books/part-0000${n}.jsonl`));
    }
    await eventually("the hanging backend to hold 4 POSTs", () => hanging.received.length >= 4);

    const started = Date.now();
    for (let n = 1; n <= HEALTHY_FEEDS; n++) {
      await createFeedAsRunner(kc, fine, feedEvent(`s3://crawl-data/books/part-0000${n}.jsonl`));
    }
    await eventually(
      "every feed of the healthy backend to be Delivered",
      async () => count(stateOf(await listFeeds(kc, ns.name), "fine"), "Delivered") === HEALTHY_FEEDS,
      60_000,
    );
    const healthyMs = Date.now() - started;
    assert.equal(new Set(healthy.received.map((r) => r.id)).size, HEALTHY_FEEDS);

    // The hanging backend: 4 claimed (its per-host slots), the rest queued and still unclaimed.
    const hangingStates = stateOf(await listFeeds(kc, ns.name), "hangs");
    assert.equal(hanging.received.length, 4, "never more than 4 POSTs to one host:port");
    assert.equal(count(hangingStates, "Sending"), 4, `states: ${hangingStates.join(", ")}`);
    const unclaimed = hangingStates.filter((s) => s === "none" || s === "Pending").length;
    assert.equal(unclaimed, HANGING_FEEDS - 4, `states: ${hangingStates.join(", ")}`);

    // Shutdown aborts the hanging POSTs (their timeout is 600 s); an interrupted attempt stays Sending.
    const stopping = Date.now();
    await operator.stop();
    operator = undefined;
    const stopMs = Date.now() - stopping;
    assert.ok(stopMs < 30_000, `the operator took ${stopMs} ms to stop`);
    const after = stateOf(await listFeeds(kc, ns.name), "hangs");
    assert.equal(count(after, "Sending"), 4, `states after stop: ${after.join(", ")}`);
    assert.equal(count(after, "Delivered") + count(after, "Failed"), 0);
    console.log(
      `healthy backend: ${HEALTHY_FEEDS} feeds delivered in ${healthyMs} ms; operator stopped in ${stopMs} ms`,
    );
  });
});
