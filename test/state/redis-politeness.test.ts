// The shared politeness gate (redis-politeness.ts) against a real
// redis-server: per-host slots over workers, the delay between request
// starts, slots that free themselves, a restarted worker's slots, AutoThrottle
// shared, and robots.txt fetched once for the job.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { RedisState } from "../../runner/state/redis-state.ts";
import { redisStates } from "./redis-states.ts";

const makeState = redisStates("redis-politeness-test");
let jobSeq = 0;

async function workers(n: number): Promise<RedisState[]> {
  const job = `gate-${++jobSeq}`;
  const out: RedisState[] = [];
  for (let i = 0; i < n; i++) {
    const s = makeState({ job, worker: `w${i}` });
    await s.open();
    out.push(s);
  }
  return out;
}

const limits = { perHost: 2, delayMs: 0, slotTtlMs: 30_000 };

describe("SharedPoliteness (real redis-server)", () => {
  test("at most perHost slots over workers; a freed slot lets the next one in", async () => {
    const [a, b, c] = await workers(3);
    assert.ok(a && b && c);
    const t1 = await a.politeness.acquire("h", limits);
    const t2 = await b.politeness.acquire("h", limits);
    assert.ok(t1 && t2);
    let third: string | undefined;
    const waiting = c.politeness.acquire("h", limits).then((t) => {
      third = t;
    });
    await sleep(150);
    assert.equal(third, undefined, "a third slot was granted");
    assert.ok(await c.politeness.acquire("other-host", limits), "another host is not limited");
    await a.politeness.release("h", t1);
    await waiting;
    assert.ok(third);
  });

  test("request starts to a host are spaced by the delay, over workers", async () => {
    const [a, b] = await workers(2);
    assert.ok(a && b);
    const spaced = { perHost: 8, delayMs: 200, slotTtlMs: 30_000 };
    const starts: number[] = [];
    await Promise.all(
      [a, b, a, b].map(async (w) => {
        await w.politeness.acquire("h", spaced);
        starts.push(performance.now());
      }),
    );
    starts.sort((x, y) => x - y);
    const gaps = starts.slice(1).map((t, i) => t - (starts[i] as number));
    for (const g of gaps) assert.ok(g >= 190, `gaps ${gaps.map(Math.round).join(", ")} ms`);
  });

  test("a slot never released frees itself after slotTtlMs; a worker's id opened again frees its slots at once", async () => {
    const [a, b] = await workers(2);
    assert.ok(a && b);
    const short = { perHost: 1, delayMs: 0, slotTtlMs: 300 };
    assert.ok(await a.politeness.acquire("h", short));
    const t0 = performance.now();
    assert.ok(await b.politeness.acquire("h", short));
    assert.ok(performance.now() - t0 >= 250, "the slot was free before its expiry");

    const long = { perHost: 1, delayMs: 0, slotTtlMs: 60_000 };
    assert.ok(await a.politeness.acquire("h2", long));
    // a's process "dies"; a new process opens id w0 and frees what the old one held.
    const again = makeState({ job: `gate-${jobSeq}`, worker: "w0" });
    await again.open();
    const stop = AbortSignal.timeout(2000);
    assert.ok(await b.politeness.acquire("h2", long, stop), "w0's old slot still held");
  });

  test("AutoThrottle's delay is shared: one worker's slow responses space every worker's requests", async () => {
    const [a, b] = await workers(2);
    assert.ok(a && b);
    const o = { startDelayMs: 0, targetConcurrency: 1, minDelayMs: 0, maxDelayMs: 60_000 };
    let delay = 0;
    for (let i = 0; i < 5; i++) delay = await a.politeness.observe("h", 400, 200, o);
    assert.ok(delay > 150, `delay ${delay}`);
    const free = { perHost: 8, delayMs: 0, slotTtlMs: 30_000 };
    await b.politeness.acquire("h", free);
    const t0 = performance.now();
    await b.politeness.acquire("h", free);
    assert.ok(performance.now() - t0 >= delay - 20, `waited ${Math.round(performance.now() - t0)} of ${delay} ms`);
  });

  test("robots.txt: the first worker fetches it, the others get its result", async () => {
    const ws = await workers(5);
    let fetches = 0;
    const results = await Promise.all(
      ws.map((w) =>
        w.politeness.robotsOnce("http://h", async () => {
          fetches++;
          await sleep(100);
          return "User-agent: *\nCrawl-delay: 1\n";
        }),
      ),
    );
    assert.equal(fetches, 1);
    assert.deepEqual(new Set(results), new Set(["User-agent: *\nCrawl-delay: 1\n"]));
  });
});
