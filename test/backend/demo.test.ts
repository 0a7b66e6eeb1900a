// The one-command demo (`npm run demo` = node examples/demo.ts) as a new user
// runs it: crawl the fixture site, batched gzip feeds into a local folder, one
// signed webhook per file, the reference backend loading into node:sqlite.
// `npm run demo -- --cluster` starts a node of its own (one per machine), so
// no test run can host it: it is run by hand (docs in README.md, "Quick start").
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

describe("demo", () => {
  it("crawls, exports, delivers and loads every item once, and prints the summary", async () => {
    const env = { ...process.env };
    delete env.DATABASE_URL; // the embedded default
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ["examples/demo.ts", "--products", "240", "--batch", "50"],
        { cwd: root, env, timeout: 60_000 },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
      );
    });
    assert.equal(code, 0, stdout + stderr);
    assert.match(stdout, /^pages crawled\s+\d+$/m);
    assert.match(stdout, /^items scraped\s+240$/m);
    assert.match(stdout, /^feed files\s+5 \(gzip jsonlines, 50 items each\)$/m);
    assert.match(stdout, /^webhook calls\s+5 \(5 × 200\)$/m);
    assert.match(stdout, /^rows in the table\s+240 \(sqlite, table items\)$/m);
    assert.match(stdout, /✓ no loss, no duplicates/);
    assert.match(stdout, /^time taken\s+[\d.]+ s$/m);
    assert.equal((stdout.match(/→ webhook 200/g) ?? []).length, 5);
  });

  it("lists --cluster in its usage", async () => {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ["examples/demo.ts", "--help"], { cwd: root, timeout: 30_000 }, (err, out) =>
        err ? reject(err) : resolve(out),
      );
    });
    assert.match(stdout, /^ {2}--cluster {6}run it on a real Kubernetes node/m);
  });
});
