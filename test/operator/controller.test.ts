// The controller's reconcile contract (no cluster): each reconcile gets an
// AbortSignal, why its key was queued and its attempt number; a
// TerminalError is logged once and not retried; stop() is bounded even when
// a reconcile hangs, and abort() fires the signals at once.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { registry } from "../../operator/metrics.ts";
import { Controller, type ReconcileRequest } from "../../operator/runtime/controller.ts";
import { TerminalError } from "../../operator/runtime/errors.ts";

/** A pino logger whose lines the test can read. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: "debug" }, stream), lines };
}

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function reconcileCount(controller: string, result: string): Promise<number> {
  const metric = await registry.getSingleMetric("feedcrawl_reconcile_total")?.get();
  return metric?.values.find((v) => v.labels.controller === controller && v.labels.result === result)?.value ?? 0;
}

test("a reconcile sees why its key was queued and how often it failed before", async () => {
  const { logger } = capturingLogger();
  const seen: Pick<ReconcileRequest, "reason" | "attempt">[] = [];
  const c = new Controller({
    name: "ctx",
    logger,
    workers: 1,
    reconcile: async ({ reason, attempt, signal }) => {
      assert.ok(signal instanceof AbortSignal && !signal.aborted);
      seen.push({ reason, attempt });
      if (seen.length <= 2) throw new Error("not yet");
      return seen.length === 3 ? { requeueAfterMs: 1 } : undefined;
    },
  });
  c.queue.add("ns/a", "event");
  c.start();
  await until("four reconciles", () => seen.length >= 4);
  await c.stop();
  assert.deepEqual(seen, [
    { reason: "event", attempt: 0 },
    { reason: "retry", attempt: 1 },
    { reason: "retry", attempt: 2 },
    { reason: "requeue", attempt: 0 },
  ]);
});

test("enqueue says event unless told; a re-add while processing keeps its own reason", async () => {
  const { logger } = capturingLogger();
  const reasons: string[] = [];
  let release: () => void = () => {};
  const c = new Controller({
    name: "reasons",
    logger,
    workers: 1,
    reconcile: async ({ reason }) => {
      reasons.push(reason);
      if (reasons.length === 1) await new Promise<void>((r) => (release = r));
      return undefined;
    },
  });
  c.enqueue("ns", "a");
  c.start();
  await until("the first reconcile", () => reasons.length === 1);
  c.enqueue("ns", "a", "resync");
  release();
  await until("the second reconcile", () => reasons.length === 2);
  await c.stop();
  assert.deepEqual(reasons, ["event", "resync"]);
});

test("a TerminalError is logged once, counted as terminal, not retried, and reaches onTerminal", async () => {
  const { logger, lines } = capturingLogger();
  let calls = 0;
  const terminal: string[] = [];
  const before = await reconcileCount("terminal", "terminal");
  const c = new Controller({
    name: "terminal",
    logger,
    workers: 1,
    reconcile: async () => {
      calls += 1;
      throw new TerminalError("Job ns/a-runner exists and is not owned by CrawlJob a", { reason: "NotOwned" });
    },
    onTerminal: (req, err) => {
      terminal.push(`${req.key} ${err.reason}`);
    },
  });
  c.queue.add("ns/a", "event");
  c.start();
  await until("the reconcile", () => calls === 1 && terminal.length === 1);
  await sleep(200); // a retry would come after 5 ms
  await c.stop();
  assert.equal(calls, 1, "not retried");
  assert.equal(c.queue.failures("ns/a"), 0, "failures forgotten");
  assert.deepEqual(terminal, ["ns/a NotOwned"]);
  const logged = lines.filter((l) => String(l.msg).includes("will not be retried"));
  assert.equal(logged.length, 1);
  assert.equal(logged[0]?.level, 50, "logged at error");
  assert.equal((await reconcileCount("terminal", "terminal")) - before, 1);
});

test("stop() gives in-flight reconciles the grace, then aborts their signal", async () => {
  const { logger } = capturingLogger();
  let abortedAfterMs: number | undefined;
  const startedAt = Date.now();
  const c = new Controller({
    name: "grace",
    logger,
    workers: 1,
    reconcile: ({ signal }) =>
      new Promise((_, reject) => {
        signal.addEventListener("abort", () => {
          abortedAfterMs = Date.now() - startedAt;
          reject(signal.reason);
        });
      }),
  });
  c.queue.add("ns/hang");
  c.start();
  await until("the reconcile", () => c.inFlight.length === 1);
  const outcome = await c.stop({ graceMs: 300, unwindMs: 1_000 });
  assert.deepEqual(outcome.abandoned, []);
  assert.ok(abortedAfterMs !== undefined && abortedAfterMs >= 290, `aborted after the grace (${abortedAfterMs} ms)`);
  assert.equal(c.queue.depth, 0, "an aborted reconcile is not requeued");
});

test("stop() is bounded even when a reconcile ignores its signal", async () => {
  const { logger } = capturingLogger();
  const c = new Controller({
    name: "ignore",
    logger,
    workers: 1,
    reconcile: () => new Promise(() => {}), // never settles, never looks at the signal
  });
  c.queue.add("ns/stuck");
  c.start();
  await until("the reconcile", () => c.inFlight.length === 1);
  const t0 = Date.now();
  const outcome = await c.stop({ graceMs: 100, unwindMs: 100 });
  const took = Date.now() - t0;
  assert.deepEqual(outcome.abandoned, ["ns/stuck"]);
  assert.ok(took < 2_000, `stop() returned after ${took} ms`);
});

test("abort() fires every in-flight signal synchronously and takes no more keys", async () => {
  const { logger } = capturingLogger();
  const signals: AbortSignal[] = [];
  let calls = 0;
  const c = new Controller({
    name: "abort",
    logger,
    workers: 2,
    reconcile: ({ signal }) => {
      calls += 1;
      signals.push(signal);
      return new Promise((resolve) => signal.addEventListener("abort", () => resolve(undefined)));
    },
  });
  c.queue.add("ns/a");
  c.queue.add("ns/b");
  c.start();
  await until("two reconciles", () => signals.length === 2);
  c.abort("Lost the leader Lease");
  assert.ok(
    signals.every((s) => s.aborted),
    "aborted before abort() returned",
  );
  assert.match(String(signals[0]?.reason?.message), /Lost the leader Lease/);
  c.queue.add("ns/c");
  await c.stop();
  assert.equal(calls, 2, "no key taken after abort()");
});
