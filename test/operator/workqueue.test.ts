import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { WorkQueue } from "../../operator/runtime/workqueue.ts";

test("a key added many times while waiting is handed out once", async () => {
  const q = new WorkQueue("t1");
  q.add("a");
  q.add("a");
  q.add("b");
  q.add("a");
  assert.equal(q.depth, 2);
  assert.equal(await q.get(), "a");
  assert.equal(await q.get(), "b");
  q.shutdown();
});

test("a key being processed is never handed out again until done; a re-add meanwhile comes after done", async () => {
  const q = new WorkQueue("t2");
  q.add("a");
  const first = await q.get();
  assert.equal(first, "a");
  q.add("a"); // changed while processing
  assert.equal(q.depth, 0, "not queued while processing");
  let second: string | undefined;
  const waiting = q.get().then((k) => {
    second = k;
  });
  await sleep(10);
  assert.equal(second, undefined, "no concurrent hand-out of the same key");
  q.done("a");
  await waiting;
  assert.equal(second, "a");
  q.done("a");
  q.shutdown();
});

test("rate-limited retries back off exponentially per key and forget resets", () => {
  const q = new WorkQueue("t3", { baseDelayMs: 5, maxDelayMs: 1000, qps: 1e9, burst: 1e9 });
  assert.deepEqual([q.when("k"), q.when("k"), q.when("k"), q.when("k")], [5, 10, 20, 40]);
  assert.equal(q.when("other"), 5, "per key");
  for (let i = 0; i < 20; i++) q.when("k");
  assert.equal(q.when("k"), 1000, "capped");
  q.forget("k");
  assert.equal(q.when("k"), 5);
  q.shutdown();
});

test("the token bucket limits the overall retry rate", () => {
  let now = 0;
  const q = new WorkQueue("t4", { baseDelayMs: 1, qps: 10, burst: 2, now: () => now });
  assert.equal(q.when("a"), 1);
  assert.equal(q.when("b"), 1);
  assert.equal(q.when("c"), 100, "bucket empty: 1/qps");
  now += 1000;
  assert.equal(q.when("d"), 1);
  q.shutdown();
});

test("addAfter delivers later; the earliest pending delay wins", async () => {
  const q = new WorkQueue("t5");
  q.addAfter("x", 200);
  q.addAfter("x", 20);
  q.addAfter("x", 500);
  assert.equal(q.depth, 1);
  const started = Date.now();
  assert.equal(await q.get(), "x");
  assert.ok(Date.now() - started < 200, "the 20 ms delay won");
  q.shutdown();
});

test("shutdown releases waiting workers", async () => {
  const q = new WorkQueue("t6");
  const pending = q.get();
  q.shutdown();
  assert.equal(await pending, undefined);
  q.add("late");
  assert.equal(await q.get(), undefined);
});
