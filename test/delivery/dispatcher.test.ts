// The delivery dispatcher with real POSTs to two receivers on 127.0.0.1: per
// host:port at most perHostConcurrency at once, a hanging backend holds only
// its own queue, and close(grace) drops the queue, lets the POSTs in flight
// finish within the grace and aborts the rest.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { Agent } from "undici";
import { DeliveryDispatcher } from "../../operator/delivery/delivery-dispatcher.ts";
import { WebhookSender } from "../../operator/delivery/sender.ts";
import { signatureHeaders, webhookSigner } from "../../operator/delivery/signing.ts";
import type { AttemptOutcome } from "../../operator/delivery/state.ts";
import { type Receiver, startReceiver } from "./receiver.ts";

const SECRET = `whsec_${randomBytes(32).toString("base64")}`;
const logger = pino({ level: "silent" });

describe("DeliveryDispatcher", () => {
  const agent = new Agent();
  const sender = new WebhookSender();
  let healthy: Receiver;
  let hanging: Receiver;
  before(async () => {
    healthy = await startReceiver(
      SECRET,
      () => new Promise((resolve) => setTimeout(() => resolve({ status: 202 }), 50)),
    );
    // Accepts every request and never answers.
    hanging = await startReceiver(SECRET, () => new Promise(() => {}));
  });
  after(async () => {
    await healthy.close();
    await hanging.close();
    await agent.close();
  });

  /** A task that POSTs once to `url` (as the driver does in its host slot) and records the outcome. */
  function postTask(url: string, id: string, outcomes: AttemptOutcome[], timeoutMs = 60_000) {
    const body = JSON.stringify({ id });
    const headers = signatureHeaders(webhookSigner(Buffer.from(SECRET)), id, new Date(), body);
    return async (signal: AbortSignal) => {
      outcomes.push(await sender.post({ url, body, headers, timeoutMs, dispatcher: agent, quoteBody: true, signal }));
    };
  }

  it("never runs more than perHostConcurrency POSTs to one host", async () => {
    const dispatcher = new DeliveryDispatcher({ perHostConcurrency: 2, logger });
    const outcomes: AttemptOutcome[] = [];
    const before = healthy.received.length;
    healthy.maxConcurrent = 0;
    for (let i = 0; i < 8; i++)
      assert.ok(dispatcher.enqueue(`k${i}`, healthy.url, postTask(healthy.url, `c${i}`, outcomes)));
    await dispatcher.idle();
    assert.equal(outcomes.length, 8);
    assert.ok(outcomes.every((o) => o.kind === "delivered"));
    assert.equal(healthy.received.length - before, 8);
    assert.equal(healthy.maxConcurrent, 2);
    await dispatcher.close();
  });

  it("takes one delivery per key: a key queued or in flight is busy, and free again once done", async () => {
    const dispatcher = new DeliveryDispatcher({ perHostConcurrency: 1, logger });
    const outcomes: AttemptOutcome[] = [];
    assert.ok(dispatcher.enqueue("same", healthy.url, postTask(healthy.url, "s1", outcomes)));
    assert.equal(dispatcher.enqueue("same", healthy.url, postTask(healthy.url, "s2", outcomes)), false);
    assert.ok(dispatcher.busy("same"));
    const first = dispatcher.recheckMs("same");
    assert.ok(dispatcher.recheckMs("same") > first, "rechecks of a busy key back off");
    await dispatcher.idle();
    assert.equal(dispatcher.busy("same"), false);
    assert.equal(outcomes.length, 1);
    await dispatcher.close();
  });

  it("a hanging backend holds only its own queue: the healthy one's deliveries all go through", async () => {
    const dispatcher = new DeliveryDispatcher({ perHostConcurrency: 4, logger });
    const stuck: AttemptOutcome[] = [];
    const done: AttemptOutcome[] = [];
    const hangingBefore = hanging.received.length;
    // The hanging backend's deliveries first: more than its slots.
    for (let i = 0; i < 10; i++) dispatcher.enqueue(`h${i}`, hanging.url, postTask(hanging.url, `h${i}`, stuck));
    for (let i = 0; i < 12; i++) dispatcher.enqueue(`ok${i}`, healthy.url, postTask(healthy.url, `ok${i}`, done));
    const started = Date.now();
    while (done.length < 12 && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 20));
    const tookMs = Date.now() - started;
    assert.equal(done.length, 12, "every delivery to the healthy backend finished");
    assert.ok(done.every((o) => o.kind === "delivered"));
    assert.equal(stuck.length, 0, "nothing to the hanging backend finished");
    assert.equal(hanging.received.length - hangingBefore, 4, "the hanging backend got its 4 slots, no more");
    assert.ok(dispatcher.busy("h9"), "the hanging backend's queue still holds its rest");

    // close(): the hanging POSTs are aborted (not waited out: their timeout is 60 s), the queued ones never run.
    const closing = Date.now();
    await dispatcher.close();
    const closeMs = Date.now() - closing;
    assert.ok(closeMs < 10_000, `close() took ${closeMs} ms`);
    assert.equal(stuck.length, 4, "only the 4 POSTs in flight ended (aborted); the 6 queued never ran");
    assert.ok(stuck.every((o) => o.kind === "retry"));
    assert.equal(hanging.received.length - hangingBefore, 4);
    assert.equal(dispatcher.enqueue("late", healthy.url, postTask(healthy.url, "late", done)), false);
    console.log(`healthy deliveries done in ${tookMs} ms; close() in ${closeMs} ms`);
  });

  it("close(grace): a POST in flight that answers within the grace finishes; a hanging one is aborted after it", async () => {
    const dispatcher = new DeliveryDispatcher({ perHostConcurrency: 1, logger });
    const answered: AttemptOutcome[] = [];
    const stuck: AttemptOutcome[] = [];
    const queued: AttemptOutcome[] = [];
    dispatcher.enqueue("a", healthy.url, postTask(healthy.url, "grace-a", answered)); // answers after 50 ms
    dispatcher.enqueue("q", healthy.url, postTask(healthy.url, "grace-q", queued)); // behind it: never starts
    dispatcher.enqueue("h", hanging.url, postTask(hanging.url, "grace-h", stuck));
    await new Promise((r) => setTimeout(r, 10)); // both POSTs on the wire
    const closing = Date.now();
    await dispatcher.close(1_000);
    const closeMs = Date.now() - closing;
    assert.deepEqual(
      answered.map((o) => o.kind),
      ["delivered"],
      "the answering POST was not cut off",
    );
    assert.deepEqual(
      stuck.map((o) => o.kind),
      ["retry"],
      "the hanging POST was aborted",
    );
    assert.equal(queued.length, 0, "a delivery still queued when close began does not start");
    assert.ok(closeMs >= 900 && closeMs < 10_000, `close(1000) took ${closeMs} ms`);
  });
});
