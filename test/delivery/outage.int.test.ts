// Delivery fault test: the backend answers 503 for a while and the operator
// is restarted meanwhile. The restarted operator waits for the persisted
// nextAttemptAt instead of starting the backoff over, and every feed is
// delivered once the backend recovers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { feedWebhookId } from "../../operator/delivery/index.ts";
import { eventually } from "../platform/fixtures.ts";
import { sceneFactory } from "./fault-harness.ts";
import { listFeeds } from "./kube-helpers.ts";

describe("delivery faults: a backend outage across an operator restart", () => {
  const scene = sceneFactory();

  it("503 for a while, then recovery, across an operator restart: nextAttemptAt honoured, all delivered", async () => {
    const s = await scene("fault-outage");
    // The backend is down (503, Retry-After: 5) until the test says it is back: the long
    // Retry-After keeps the feeds Pending most of the time, so the kill lands there.
    let down = true;
    s.receiver.respond = () => (down ? { status: 503, headers: { "retry-after": "5" } } : { status: 200 });
    const next = s.startWorker("fault-outage-2", true);
    const first = s.startWorker("fault-outage-1");
    await first.started();
    await eventually(
      "every CrawlFeed waiting for its retry",
      async () => {
        const list = await listFeeds(s.kc, s.namespace);
        return list.length === 3 && list.every((f) => f.status?.delivery?.state === "Pending");
      },
      60_000,
    );
    await first.kill();
    // What the restarted operator finds: the persisted retry times.
    const atRestart = await listFeeds(s.kc, s.namespace);
    const firstCount = s.receiver.received.length;
    down = false;
    next.go();
    const feeds = await s.assertAllDeliveredOnce();
    for (const feed of feeds) assert.ok(feed.status!.delivery!.attempts >= 2, "at least one 503, then the 200");
    // The restarted operator did not retry before the persisted nextAttemptAt.
    let checked = 0;
    for (const feed of atRestart) {
      const delivery = feed.status?.delivery;
      if (delivery?.state !== "Pending" || !delivery.nextAttemptAt) continue; // killed mid-attempt: resent at once
      const id = feedWebhookId(s.job.metadata.uid!, feed.spec.uri);
      const retry = s.receiver.received.slice(firstCount).find((r) => r.id === id);
      assert.ok(retry, `CrawlFeed ${feed.metadata.name} was retried by the restarted operator`);
      const due = Date.parse(delivery.nextAttemptAt);
      assert.ok(retry.at >= due - 50, `retry of ${feed.metadata.name} came ${due - retry.at} ms early`);
      checked++;
    }
    assert.ok(checked >= 1, "at least one feed was waiting for its persisted retry time at the restart");
  });
});
