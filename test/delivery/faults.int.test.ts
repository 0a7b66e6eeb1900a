// Delivery fault tests: the operator process (the real delivery reconciler in
// a child process) is SIGKILLed between `Sending` and the POST (the POST held
// back by a toxiproxy latency toxic) and between the POST and `Delivered` (the
// receiver kills it on receipt, before answering). No feed is lost, and
// duplicates only ever repeat a webhook-id.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { eventually } from "../platform/fixtures.ts";
import { freePort } from "../platform/ports.ts";
import { sceneFactory, states, toxiproxy, type Worker } from "./fault-harness.ts";
import { listFeeds } from "./kube-helpers.ts";

describe("delivery faults: the operator SIGKILLed mid-delivery", () => {
  const scene = sceneFactory();

  it("SIGKILL between Sending and the POST: the held POST is sent again by the next operator", async () => {
    const proxyName = `delivery-${process.pid}-${Date.now()}`;
    let listen = "";
    const s = await scene("fault-sending", async (r, onCleanup) => {
      listen = `127.0.0.1:${await freePort()}`;
      await toxiproxy("POST", "/proxies", { name: proxyName, listen, upstream: new URL(r.url).host, enabled: true });
      onCleanup(async () => void (await toxiproxy("DELETE", `/proxies/${proxyName}`)));
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
    const next = s.startWorker("fault-sending-2", true);
    const first = s.startWorker("fault-sending-1");
    await first.started();
    await eventually(
      "a CrawlFeed in Sending",
      async () => states(await listFeeds(s.kc, s.namespace)).includes("Sending"),
      60_000,
    );
    assert.equal(s.receiver.received.length, 0, "the POST was held back: nothing reached the backend yet");
    await first.kill();
    const afterKill = await listFeeds(s.kc, s.namespace);
    assert.ok(states(afterKill).includes("Sending"), "the killed operator left Sending behind");

    await toxiproxy("DELETE", `/proxies/${proxyName}/toxics/hold`);
    next.go();
    const feeds = await s.assertAllDeliveredOnce();
    const resumed = feeds.filter(
      (f) => afterKill.find((a) => a.metadata.name === f.metadata.name)?.status?.delivery?.state === "Sending",
    );
    for (const feed of resumed) assert.ok(feed.status!.delivery!.attempts >= 2, "the interrupted attempt counted");
  });

  it("SIGKILL between the POST and Delivered: resent under the same webhook-id, nothing lost", async () => {
    let worker: Worker | undefined;
    const killedFor = new Set<string>();
    const s = await scene("fault-received");
    s.receiver.respond = async (r) => {
      if (killedFor.size === 0) {
        // First POST to arrive: the operator dies before it hears the answer.
        killedFor.add(r.id);
        await worker?.kill();
        return "destroy";
      }
      return { status: 202 };
    };
    const next = s.startWorker("fault-received-2", true);
    worker = s.startWorker("fault-received-1");
    // Start-up included: on a busy 2-core machine it can take a minute.
    await eventually(
      "the operator killed on receipt",
      () => killedFor.size === 1 && worker!.child.exitCode === null && worker!.child.signalCode !== null,
      150_000,
    );
    const killedId = [...killedFor][0]!;
    const sending = (await listFeeds(s.kc, s.namespace)).filter((f) => f.status?.delivery?.state === "Sending");
    assert.ok(sending.length >= 1, "the killed operator left its claim in Sending");

    next.go();
    await s.assertAllDeliveredOnce();
    const perId = new Map<string, number>();
    for (const r of s.receiver.received) perId.set(r.id, (perId.get(r.id) ?? 0) + 1);
    assert.ok((perId.get(killedId) ?? 0) >= 2, "the feed whose answer was lost was sent again, same webhook-id");
  });
});
