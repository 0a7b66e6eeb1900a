// lib/sleep.ts and lib/semaphore.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Semaphore } from "../../lib/semaphore.ts";
import { sleep } from "../../lib/sleep.ts";

describe("sleep", () => {
  it("waits about the time asked", async () => {
    const t0 = performance.now();
    await sleep(30);
    assert.ok(performance.now() - t0 >= 25);
  });

  it("wakes early on abort and leaves no listener behind", async () => {
    const ac = new AbortController();
    const t0 = performance.now();
    const done = sleep(10_000, ac.signal);
    setTimeout(() => ac.abort(), 10);
    await done;
    assert.ok(performance.now() - t0 < 1_000);

    const kept = new AbortController();
    let added = 0;
    let removed = 0;
    const { addEventListener, removeEventListener } = kept.signal;
    kept.signal.addEventListener = (...a: Parameters<typeof addEventListener>) => {
      added++;
      addEventListener.apply(kept.signal, a);
    };
    kept.signal.removeEventListener = (...a: Parameters<typeof removeEventListener>) => {
      removed++;
      removeEventListener.apply(kept.signal, a);
    };
    for (let i = 0; i < 5; i++) await sleep(1, kept.signal);
    assert.equal(added, 5);
    assert.equal(removed, 5, "every timed-out sleep removes its abort listener");
  });

  it("returns at once for an aborted signal", async () => {
    const t0 = performance.now();
    await sleep(10_000, AbortSignal.abort());
    assert.ok(performance.now() - t0 < 100);
  });
});

describe("Semaphore", () => {
  it("admits at most `size` holders, first in first out", async () => {
    const s = new Semaphore(2);
    const order: number[] = [];
    let active = 0;
    let peak = 0;
    const gates = new Map<number, () => void>();
    const tasks = [0, 1, 2, 3, 4].map((i) =>
      s.run(async () => {
        active++;
        peak = Math.max(peak, active);
        order.push(i);
        await new Promise<void>((r) => gates.set(i, r));
        active--;
      }),
    );
    await sleep(5);
    assert.deepEqual(order, [0, 1]);
    assert.equal(s.active, 2);
    assert.equal(s.waiting, 3);
    for (const i of [1, 0, 2, 3, 4]) {
      gates.get(i)?.();
      await sleep(5);
    }
    await Promise.all(tasks);
    assert.equal(peak, 2);
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
    assert.equal(s.active, 0);
  });

  it("frees the slot when the task throws", async () => {
    const s = new Semaphore(1);
    await assert.rejects(
      s.run(async () => {
        throw new Error("boom");
      }),
      /boom/,
    );
    assert.equal(s.active, 0);
    assert.equal(await s.run(async () => 7), 7);
  });

  it("refuses a size that is not a positive integer", () => {
    for (const n of [0, -1, 1.5, Number.NaN]) assert.throws(() => new Semaphore(n), /positive integer/);
  });
});
