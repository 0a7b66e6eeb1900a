// A crawl state that fails after a batch was stored (a full disk, Redis that
// lost the job): the batch is a failed one of the exporter — not reported, not
// committed, later batches of the feed not reported either — and the process
// does not die of an unhandled rejection from the background store.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import { createFeedExporter } from "../../runner/feeds/exporter.ts";
import { SqliteState } from "../../runner/state/sqlite.ts";
import type { PageProgress } from "../../runner/state/types.ts";
import { makeItem, quietLogger } from "./helpers.ts";

const tmp = mkdtempSync(join(tmpdir(), "exactly-once-state-failure-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

class FailingState extends SqliteState {
  override async batchStored(): Promise<void> {
    throw new Error("disk full");
  }
}

test("the state fails at batchStored: the batch is failed and unreported, and nothing is thrown unhandled", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on("unhandledRejection", onUnhandled);
  try {
    const state = new FailingState({ dir: join(tmp, "state"), identity: "s" });
    await state.open();
    const reported: FeedClosed[] = [];
    const exporter = await createFeedExporter({
      feeds: { [`file://${tmp}/out/rows-%(batch_id)05d.jsonl`]: { format: "jsonlines", batchItemCount: 2 } },
      params: { name: "s", job: "j", shard: 0 },
      logger: quietLogger(),
      onFeedClosed: async (ev) => {
        reported.push(ev);
      },
      spool: { dir: join(tmp, "spool") },
      state,
    });
    const page: PageProgress = { key: "0000000000000001", committed: {}, produced: {} };
    for (let i = 0; i < 4; i++) await exporter.write(makeItem(i), page);
    await exporter.close("finished").catch(() => {});
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled, []);
    assert.deepEqual(reported, [], "no batch reported: the state never learned it was stored");
    assert.equal(exporter.failedFeeds.length, 1, "the first batch failed; the second is stored, not reported");
    assert.match(exporter.failedFeeds[0]?.error ?? "", /stored but not reported: the crawl state failed: disk full/);
    await state.close();
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});
