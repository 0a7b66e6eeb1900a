// The Redis crawl state against a real redis-server on its own port: the
// atomic steps of types.ts's CrawlState shared by several workers, leases
// that come back when a worker dies, pages of a dead worker's pending batch
// that wait for it, fencing of a worker presumed dead, a resent dequeue, data
// loss detection, the end of the crawl and the keys' expiry.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fingerprintKey } from "../../runner/fingerprint.ts";
import { newRequest } from "../../runner/request.ts";
import { LuaScript } from "../../runner/state/redis-client.ts";
import { DEQUEUE } from "../../runner/state/redis-scripts.ts";
import { FrontierLostError, LeasesLostError, type RedisState } from "../../runner/state/redis-state.ts";
import type { EnqueueEntry } from "../../runner/state/types.ts";
import { redisStates } from "./redis-states.ts";

const makeState = redisStates("redis-state-test");
let jobSeq = 0;

function entry(path: string, priority = false): EnqueueEntry {
  const url = `http://site.test${path}`;
  return { key: fingerprintKey("GET", url), request: newRequest(url, 0), ...(priority ? { priority } : {}) };
}

function newState(job: string, id: string, leaseMs = 60_000): RedisState {
  return makeState({ job, worker: id, leaseMs });
}

async function worker(job: string, id: string, leaseMs = 60_000): Promise<RedisState> {
  const s = newState(job, id, leaseMs);
  await s.open();
  return s;
}

const paths = (leases: { request: { url: string } }[]) => leases.map((l) => new URL(l.request.url).pathname);

describe("RedisState (real redis-server)", () => {
  test("enqueue-if-unseen over workers, priority first, FIFO, each page handed to one worker", async () => {
    const job = `j${++jobSeq}`;
    const a = await worker(job, "a");
    const b = await worker(job, "b");
    assert.deepEqual(await a.enqueue([entry("/1"), entry("/2"), entry("/1")]), [true, true, false]);
    assert.deepEqual(await b.enqueue([entry("/2"), entry("/3"), entry("/r", true)]), [false, true, true]);
    assert.deepEqual(paths(await a.dequeue(2)), ["/r", "/1"]);
    // A page handed out or done is still seen.
    assert.deepEqual(await b.enqueue([entry("/1"), entry("/r")]), [false, false]);
    const many = Array.from({ length: 200 }, (_, i) => entry(`/m${i}`));
    await a.enqueue(many);
    const got = await Promise.all([a, b, a, b].map((s) => s.dequeue(60)));
    const all = got.flatMap(paths);
    assert.equal(new Set(all).size, all.length, "a page was handed out twice");
    assert.deepEqual(new Set(all), new Set(["/2", "/3", ...many.map((e) => new URL(e.request.url).pathname)]));
    const p = await a.progress();
    assert.deepEqual(
      { queued: p.queued, inFlight: p.inFlight, unfinished: p.unfinished },
      {
        queued: 0,
        inFlight: 204,
        unfinished: 204,
      },
    );
  });

  test("a page is done when processed and its items committed; batch ids are per worker", async () => {
    const job = `j${++jobSeq}`;
    const a = await worker(job, "a");
    await a.enqueue([entry("/1"), entry("/2")]);
    const [p1, p2] = await a.dequeue(2);
    assert.ok(p1 && p2);
    await a.pageProcessed(p1.key, {}); // no items: done at once
    await a.pageProcessed(p2.key, { f: 3 });
    assert.deepEqual(await a.progress(), { queued: 0, inFlight: 0, unfinished: 1, done: 1 });
    await a.beginBatch({ feed: "f", batchId: 1, uri: "s3://b/1", pages: [[p2.key, 2]] });
    await a.commitBatch("f", 1);
    assert.equal((await a.progress()).done, 1, "2 of 3 items committed: not done");
    await a.beginBatch({ feed: "f", batchId: 2, uri: "s3://b/2", pages: [[p2.key, 1]] });
    await a.batchStored("f", 2, { feed: "f", batchId: 7, uri: "s3://b/7", items: 1, bytes: 10 } as never);
    await a.commitBatch("f", 2);
    await a.commitBatch("f", 2); // unknown now: no-op
    assert.deepEqual(await a.progress(), { queued: 0, inFlight: 0, unfinished: 0, done: 2 });
    assert.deepEqual(await a.lastBatchIds(), { f: 7 }, "the stored batch id wins");
    const b = await worker(job, "b");
    assert.deepEqual(await b.lastBatchIds(), {});
  });

  test("a dead worker's pages come back after its lease, ahead of new ones, with their committed counts", async () => {
    const job = `j${++jobSeq}`;
    const a = await worker(job, "a", 400);
    const b = await worker(job, "b", 400);
    await a.enqueue([entry("/1"), entry("/2"), entry("/3")]);
    const [p1] = await a.dequeue(1);
    assert.ok(p1);
    await a.pageProcessed(p1.key, { f: 2 });
    await a.beginBatch({ feed: "f", batchId: 1, uri: "u1", pages: [[p1.key, 1]] });
    await a.commitBatch("f", 1);
    await a.close(); // no more heartbeats: "killed"
    assert.deepEqual(paths(await b.dequeue(1)), ["/2"], "the lease has not expired yet");
    await sleep(600);
    const back = await b.dequeue(5);
    assert.deepEqual(paths(back), ["/1", "/3"]);
    assert.deepEqual(back[0]?.committed, { f: 1 });
  });

  test("a worker's id opened again: its pages come back at once, its pending batches are returned, the old process is fenced off", async () => {
    const job = `j${++jobSeq}`;
    const a = await worker(job, "a");
    const b = await worker(job, "b");
    await a.enqueue([entry("/1"), entry("/2"), entry("/3")]);
    const [p1, p2, p3] = await a.dequeue(3);
    assert.ok(p1 && p2 && p3);
    await a.pageProcessed(p1.key, { f: 1 });
    await a.pageProcessed(p2.key, { f: 1 });
    // Batch 1 got to the storage (stored), batch 2 did not.
    await a.beginBatch({ feed: "f", batchId: 1, uri: "u1", pages: [[p1.key, 1]] });
    await a.batchStored("f", 1, { feed: "f", batchId: 1, uri: "u1", items: 1, bytes: 5 } as never);
    await a.beginBatch({ feed: "f", batchId: 2, uri: "u2", pages: [[p2.key, 1]] });

    const a2 = newState(job, "a");
    const opening = await a2.open();
    assert.equal(opening.status, "resumed");
    assert.deepEqual(
      opening.pending.map((p) => [p.feed, p.batchId, p.stored?.uri]),
      [
        ["f", 1, "u1"],
        ["f", 2, undefined],
      ],
    );
    // /3 was only in flight: back now. /1 and /2 wait for their batches.
    assert.deepEqual(paths(await b.dequeue(5)), ["/3"]);
    await a2.commitBatch("f", 1); // reported again, committed: /1 is done
    await a2.discardBatch("f", 2); // never reported: /2 is crawled again
    const again = await b.dequeue(5);
    assert.deepEqual(paths(again), ["/2"]);
    assert.deepEqual(again[0]?.committed, {});
    assert.equal((await b.progress()).done, 1);

    // The old process: its generation is gone.
    await assert.rejects(a.beginBatch({ feed: "f", batchId: 3, uri: "u3", pages: [] }), LeasesLostError);
    await assert.rejects(a.dequeue(1), LeasesLostError);
  });

  test("the old process of a reopened worker id can neither store, commit nor end a page of the new one", async () => {
    const job = `j${++jobSeq}`;
    const a = await worker(job, "a");
    await a.enqueue([entry("/1"), entry("/2")]);
    const [p1] = await a.dequeue(1);
    assert.ok(p1);
    await a.pageProcessed(p1.key, { f: 1 });
    await a.beginBatch({ feed: "f", batchId: 1, uri: "u1", pages: [[p1.key, 1]] });
    // A new process of "a" while the old one still uploads batch 1: it finds the batch unstored (and deletes its object).
    const a2 = newState(job, "a");
    const opening = await a2.open();
    assert.equal(opening.pending[0]?.stored, undefined);
    const closed = { feed: "f", batchId: 1, uri: "u1", items: 1, bytes: 5 } as never;
    await assert.rejects(a.batchStored("f", 1, closed), LeasesLostError, "the old process must not go on to report it");
    await assert.rejects(a.commitBatch("f", 1), LeasesLostError);
    // The new process holds /2 under the same id: the old one's end of it does not count.
    const [p2] = await a2.dequeue(1);
    assert.ok(p2);
    await assert.rejects(a.pageProcessed(p2.key, {}), LeasesLostError);
    assert.equal((await a2.progress()).done, 0);
    await a2.discardBatch("f", 1);
    assert.deepEqual(paths(await a2.dequeue(5)), ["/1"]);
  });

  test("a page handed to another worker cannot go into the old holder's batch", async () => {
    const job = `j${++jobSeq}`;
    const a = await worker(job, "a", 300);
    const b = await worker(job, "b", 300);
    await a.enqueue([entry("/1")]);
    const [p1] = await a.dequeue(1);
    assert.ok(p1);
    // a stalls (no heartbeat) past its lease; b takes the page.
    await a.close();
    await sleep(500);
    assert.deepEqual(paths(await b.dequeue(1)), ["/1"]);
    const stale = newState(job, "a", 300);
    await a.pageProcessed(p1.key, { f: 1 }).catch(() => {}); // closed client: whatever it does, b owns /1
    await stale.open();
    await assert.rejects(
      stale.beginBatch({ feed: "f", batchId: 1, uri: "u", pages: [[p1.key, 1]] }),
      LeasesLostError,
      "a page it does not hold",
    );
  });

  test("without an id a worker claims the lowest free wN: a dead worker's id, and its pending batches, first", async () => {
    const job = `j${++jobSeq}`;
    const auto = () => makeState({ job, leaseMs: 300 });
    const a = auto();
    await a.open();
    const b = auto();
    await b.open();
    assert.deepEqual([a.worker, b.worker], ["w0", "w1"]);
    await a.enqueue([entry("/1")]);
    const [p1] = await a.dequeue(1);
    assert.ok(p1);
    await a.pageProcessed(p1.key, { f: 1 });
    await a.beginBatch({ feed: "f", batchId: 4, uri: "u4", pages: [[p1.key, 1]] });
    await a.close(); // dies with a pending batch
    const c = auto();
    await c.open();
    assert.equal(c.worker, "w2", "w0's lease has not expired yet");
    await sleep(500);
    const d = auto();
    const opening = await d.open();
    assert.equal(d.worker, "w0");
    assert.deepEqual(
      opening.pending.map((p) => p.batchId),
      [4],
    );
  });

  test("a dequeue resent after a lost reply gets the same pages, not more", async () => {
    const job = `j${++jobSeq}`;
    const a = await worker(job, "a");
    await a.enqueue([entry("/1"), entry("/2"), entry("/3")]);
    // Run the script the way RedisState does, twice with one call id, as a reconnect would.
    const script = new LuaScript(DEQUEUE);
    const gen = (await a.client.get(`${a.prefix}gen:a`)) as string;
    const args = [a.prefix, a.epoch, "a", gen, "call-1", 2, 60_000];
    const first = (await script.run(a.client, [], args)) as string[];
    const second = (await script.run(a.client, [], args)) as string[];
    assert.deepEqual(second, first);
    assert.equal((await a.progress()).queued, 1);
  });

  test("Redis that lost the job's data: the next step fails with FrontierLostError", async () => {
    const job = `j${++jobSeq}`;
    const a = await worker(job, "a");
    await a.enqueue([entry("/1")]);
    await a.client.del(`${a.prefix}epoch`, `${a.prefix}seen`, `${a.prefix}queue`);
    await assert.rejects(a.dequeue(1), FrontierLostError);
    await assert.rejects(a.enqueue([entry("/2")]), /lost the crawl state/);
  });

  test("the crawl finishes only when no worker has anything left; then its keys expire and a rerun is told", async () => {
    const job = `j${++jobSeq}`;
    const a = await worker(job, "a");
    const b = await worker(job, "b");
    await a.enqueue([entry("/1")]);
    const [p1] = await b.dequeue(1);
    assert.ok(p1);
    await a.markFinished("finished");
    assert.equal((await a.progress()).finishReason, undefined, "b holds a page");
    await b.pageProcessed(p1.key, { f: 1 });
    await b.beginBatch({ feed: "f", batchId: 1, uri: "u", pages: [[p1.key, 1]] });
    await a.markFinished("finished");
    assert.equal((await a.progress()).finishReason, undefined, "b's batch is pending");
    await b.commitBatch("f", 1);
    await a.markFinished("finished");
    assert.equal((await a.progress()).finishReason, "finished");
    const ttl = await a.client.ttl(`${a.prefix}seen`);
    assert.ok(ttl > 0 && ttl <= 7 * 86_400, `seen-set TTL ${ttl}`);
    assert.ok((await a.client.ttl(`${a.prefix}lastbatch:b`)) > 0);
    const opening = await newState(job, "c").open();
    assert.equal(opening.status, "finished");
    assert.equal(opening.finishReason, "finished");
  });
});
