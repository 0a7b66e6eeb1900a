// The SQLite crawl state (runner/state/sqlite.ts) against its contract
// (runner/state/types.ts): insert-if-unseen, leases, what a reopen requeues and
// in which order, when a page is done, pending batches, one crawl per directory.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import { AdmissionFilter } from "../../runner/admission.ts";
import { newRequest } from "../../runner/request.ts";
import { SqliteState } from "../../runner/state/sqlite.ts";
import { resumeBatchIds } from "../../runner/state/types.ts";

const tmp = mkdtempSync(join(tmpdir(), "jobdir-state-test-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
async function fresh(name = `s${n++}`) {
  const dir = join(tmp, name);
  const state = new SqliteState({ dir, identity: "spider" });
  return { dir, state, opening: await state.open() };
}

const entry = (key: string, priority = false) => ({
  key,
  request: newRequest(`http://x.test/${key}`, 0),
  ...(priority ? { priority } : {}),
});
const keys = (leased: { key: string }[]) => leased.map((l) => l.key);

test("enqueue is insert-if-unseen: queued, in-flight and done keys are all refused", async () => {
  const { state, opening } = await fresh();
  assert.equal(opening.status, "new");
  assert.deepEqual(await state.enqueue([entry("a"), entry("b"), entry("a")]), [true, true, false]);
  assert.deepEqual(keys(await state.dequeue(1)), ["a"]);
  await state.pageProcessed("a", {});
  assert.deepEqual(await state.enqueue([entry("a"), entry("b"), entry("c")]), [false, false, true]);
  assert.equal(await state.queuedCount(), 2);
  await state.close();
});

test("priority entries come first; a reopen requeues in-flight and processed-not-done pages ahead of the rest", async () => {
  const { dir, state } = await fresh();
  await state.enqueue([entry("a"), entry("b"), entry("c"), entry("d")]);
  await state.enqueue([entry("r", true)]);
  assert.deepEqual(keys(await state.dequeue(3)), ["r", "a", "b"]);
  await state.pageProcessed("r", {}); // done: no items
  await state.pageProcessed("a", { f: 2 }); // processed, its items not committed
  await state.close(); // b stays in flight: "killed"

  const again = new SqliteState({ dir, identity: "spider" });
  const opening = await again.open();
  assert.equal(opening.status, "resumed");
  assert.equal(opening.requeued, 2);
  assert.equal(opening.done, 1);
  assert.deepEqual(keys(await again.dequeue(10)), ["a", "b", "c", "d"]);
  await again.close();
});

test("a page is done once processed and every feed's items are committed, in either order", async () => {
  const { dir, state } = await fresh();
  await state.enqueue([entry("p"), entry("q")]);
  await state.dequeue(2);
  // p: batch 1 of feed f holds 2 of its 3 items, batch 2 the last one.
  await state.beginBatch({
    feed: "f",
    batchId: 1,
    uri: "u1",
    pages: [
      ["p", 2],
      ["q", 1],
    ],
  });
  await state.commitBatch("f", 1);
  await state.pageProcessed("p", { f: 3 });
  await state.pageProcessed("q", { f: 1, g: 1 }); // g's item not committed yet
  await state.beginBatch({ feed: "f", batchId: 2, uri: "u2", pages: [["p", 1]] });
  await state.beginBatch({ feed: "g", batchId: 1, uri: "v1", pages: [["q", 1]] });
  await state.close();

  // Killed with both batches pending: p and q are redone with their committed counts.
  const again = new SqliteState({ dir, identity: "spider" });
  const opening = await again.open();
  assert.deepEqual(
    opening.pending.map((b) => [b.feed, b.batchId]),
    [
      ["f", 2],
      ["g", 1],
    ],
  );
  const leased = await again.dequeue(10);
  assert.deepEqual(
    leased.map((l) => [l.key, l.committed]),
    [
      ["p", { f: 2 }],
      ["q", { f: 1 }],
    ],
  );
  await again.commitBatch("g", 1); // q: now covered, but not processed in this run yet
  await again.pageProcessed("q", { f: 1, g: 1 });
  await again.commitBatch("f", 2);
  await again.pageProcessed("p", { f: 3 });
  assert.deepEqual(await again.enqueue([entry("p"), entry("q")]), [false, false]);
  assert.deepEqual(await again.lastBatchIds(), { f: 2, g: 1 });
  await again.close();
  const third = new SqliteState({ dir, identity: "spider" });
  const o3 = await third.open();
  assert.equal(o3.requeued, 0, "both pages are done");
  assert.equal(o3.done, 2);
  await third.close();
});

test("a stored pending batch keeps its event; numbering resumes past it; a discarded one gives its id back", async () => {
  const { dir, state } = await fresh();
  await state.beginBatch({ feed: "f", batchId: 4, uri: "u4", pages: [] });
  await state.beginBatch({ feed: "f", batchId: 5, uri: "u5", pages: [] });
  const closed = { uri: "u6", batchId: 6, feed: "f" } as FeedClosed; // stored under the next id after a conflict
  await state.batchStored("f", 4, closed);
  await state.close();
  const again = new SqliteState({ dir, identity: "spider" });
  const opening = await again.open();
  assert.deepEqual(
    opening.pending.map((b) => b.stored?.uri),
    ["u6", undefined],
  );
  assert.deepEqual(resumeBatchIds(await again.lastBatchIds(), opening.pending), { f: 6 });
  await again.commitBatch("f", 4);
  await again.discardBatch("f", 5);
  assert.deepEqual(await again.lastBatchIds(), { f: 6 });
  await again.close();
});

test("one crawl per directory, of one spider; a finished crawl opens as finished", async () => {
  const { dir, state } = await fresh();
  await assert.rejects(new SqliteState({ dir, identity: "spider" }).open(), /in use by another crawl/);
  await state.markFinished("finished");
  await state.close();
  await assert.rejects(new SqliteState({ dir, identity: "other" }).open(), /holds the crawl of "spider"/);
  const again = new SqliteState({ dir, identity: "spider" });
  assert.deepEqual(await again.open(), {
    status: "finished",
    finishReason: "finished",
    pending: [],
    requeued: 0,
    done: 0,
  });
  await again.close();
});

test("with a state the admission filter keeps no seen-set of its own", () => {
  const opts = { depthLimit: 0, shard: { index: 0, count: 1 }, addressAllowed: () => true };
  const req = newRequest("http://x.test/a", 0);
  const memory = new AdmissionFilter(opts);
  assert.equal(memory.admit(req).ok, true);
  assert.equal(memory.admit(req).ok, false);
  const durable = new AdmissionFilter({ ...opts, dedupe: false });
  assert.equal(durable.admit(req).ok, true);
  assert.equal(durable.admit(req).ok, true);
});
