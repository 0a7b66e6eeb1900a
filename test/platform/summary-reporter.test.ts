// The closing `N passed, N failed` line counts leaf tests, not suites or parents.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { summaryLine } from "./summary-reporter.ts";

const here = import.meta.dirname;
// Without NODE_TEST_CONTEXT the nested `node --test` acts as a top-level run.
const { NODE_TEST_CONTEXT: _, ...childEnv } = process.env;

test("summaryLine adds skipped only when there are some", () => {
  assert.equal(summaryLine({ passed: 42, failed: 0, skipped: 0 }), "42 passed, 0 failed");
  assert.equal(summaryLine({ passed: 1, failed: 2, skipped: 3 }), "1 passed, 2 failed, 3 skipped");
});

test("node --test with the reporter counts leaves, failures, skips and a file that cannot load", async () => {
  const dir = mkdtempSync(join(tmpdir(), "feedcrawl-reporter-"));
  const out = join(dir, "summary.txt");
  try {
    const run = promisify(execFile)(
      process.execPath,
      [
        "--test",
        `--test-reporter=${join(here, "summary-reporter.ts")}`,
        `--test-reporter-destination=${out}`,
        join(here, "fixtures", "mixed.fixture.ts"),
        join(here, "fixtures", "throws.fixture.ts"),
      ],
      { env: childEnv },
    );
    // The fixtures fail on purpose, so node --test exits non-zero.
    await assert.rejects(run, (err: { code?: number }) => err.code === 1);
    assert.equal(readFileSync(out, "utf8"), "4 passed, 3 failed, 2 skipped\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
