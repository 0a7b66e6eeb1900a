// The commit protocol of a crawl with a state, window by window: a real
// process (exactly-once-driver.ts) is SIGKILLed while stopped dead at one step
// of the third batch's commit, then the crawl is resumed to its end. Every
// time, the union of the feed files equals the truth (each item once), and
// the reports (the CrawlFeed stand-in) name exactly the files that exist.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { type DriverConfig, type HangPoint, killAt, runDriver, truth } from "./exactly-once-driver.ts";

const tmp = mkdtempSync(join(tmpdir(), "exactly-once-test-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function config(name: string, at: HangPoint): DriverConfig {
  const dir = join(tmp, name);
  return {
    dir,
    feed: `file://${join(dir, "out")}/rows-%(batch_id)05d.jsonl`,
    pages: 12,
    itemsPerPage: 5,
    batchItemCount: 4,
    hang: { at, nth: 3 },
  };
}

function finalFiles(cfg: DriverConfig): string[] {
  const out = join(cfg.dir, "out");
  return readdirSync(out)
    .filter((f) => f.endsWith(".jsonl"))
    .map((f) => `file://${join(out, f)}`)
    .sort();
}

function delivered(cfg: DriverConfig): string[] {
  return finalFiles(cfg)
    .flatMap((uri) => readFileSync(uri.slice("file://".length), "utf8").split("\n").filter(Boolean))
    .sort();
}

function reportedUris(cfg: DriverConfig): string[] {
  const lines = readFileSync(join(cfg.dir, "reports.jsonl"), "utf8").split("\n").filter(Boolean);
  return [...new Set(lines.map((l) => (JSON.parse(l) as { uri: string }).uri))].sort();
}

async function killThenResume(name: string, at: HangPoint) {
  const cfg = config(name, at);
  await killAt(cfg);
  const third = join(cfg.dir, "out", "rows-00003.jsonl");
  const thirdAtKill = existsSync(third);
  const { hang: _, ...resume } = cfg;
  const result = await runDriver(resume);
  assert.equal(result.status, "resumed");
  assert.deepEqual(delivered(cfg), truth(cfg), "each item in exactly one delivered file");
  assert.deepEqual(reportedUris(cfg), finalFiles(cfg), "every file reported, and only those");
  return { cfg, result, thirdAtKill };
}

test("killed before the pending row: the batch was never stored; its pages are redone", async () => {
  const { result, thirdAtKill } = await killThenResume("before-pending", "beginBatch");
  assert.equal(thirdAtKill, false);
  assert.equal(result.recovered.has(3), false, "no pending row for batch 3");
});

test("killed after the upload, before it was marked stored: the unreported file is removed, its pages redone", async () => {
  const { result, thirdAtKill } = await killThenResume("after-upload", "batchStored");
  assert.equal(thirdAtKill, true, "the window is real: the file was in place, unreported, at the kill");
  assert.equal(result.recovered.get(3), false, "batch 3 pending, not marked stored");
});

test("killed after it was marked stored, before the report: reported on resume, its items not redone", async () => {
  const { cfg, result } = await killThenResume("before-report", "report");
  assert.equal(result.recovered.get(3), true, "batch 3 pending, marked stored");
  assert.ok(reportedUris(cfg).includes(`file://${join(cfg.dir, "out", "rows-00003.jsonl")}`));
});

test("killed after the report, before the commit: reported again (idempotent), committed, not redone", async () => {
  const { cfg, result } = await killThenResume("after-report", "commitBatch");
  assert.equal(result.recovered.get(3), true, "batch 3 pending, marked stored");
  const lines = readFileSync(join(cfg.dir, "reports.jsonl"), "utf8").split("\n").filter(Boolean);
  const third = lines.filter((l) => l.includes("rows-00003.jsonl"));
  assert.equal(third.length, 2, "batch 3 was reported before the kill and once more on resume");
});

test("a finished crawl opens as finished and writes nothing", async () => {
  const cfg = config("finished", "beginBatch");
  const { hang: _, ...plain } = cfg;
  assert.equal((await runDriver(plain)).status, "new");
  const files = readdirSync(join(cfg.dir, "out")).sort();
  assert.equal((await runDriver(plain)).status, "finished");
  assert.deepEqual(readdirSync(join(cfg.dir, "out")).sort(), files);
  assert.deepEqual(delivered(cfg), truth(cfg));
});
