// `feedcrawl crawl --jobdir`: SIGKILLed 10 times at seeded random moments, then
// run to its end, the union of every feed file written equals the fixture
// site's truth exactly (none missing, none twice), per feed; a rerun of the
// finished crawl says so, exits 0 and writes nothing. Pages yield several items
// (a listing page 20), batches are small (7 and 5 items), so kills land while
// a page's items are spread over open, storing and committed batches. Then the
// graceful stop: SIGTERM twice on a site where every page has links.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { stringify } from "yaml";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import { type CatalogueServer, createCatalogue } from "../fixtures/catalogue.ts";
import {
  canonical,
  catalogueSpider,
  catalogueTruth,
  feedLines,
  seeded,
  treeSite,
  treeSpider,
  treeTruth,
} from "./crawl-state-helpers.ts";

const root = new URL("../../", import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), "jobdir-kill-test-"));
const catalogue = createCatalogue({ products: 500, perPage: 20, seed: 12 });
let site: CatalogueServer;
const children = new Set<ChildProcess>();

before(async () => {
  site = await catalogue.listen({ traps: false, altHost: null });
});
after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  await site?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** A CrawlJob manifest for `spider` with `feeds`. */
function writeManifest(spider: SpiderSpec, feeds: Record<string, unknown>): string {
  const file = join(tmp, `${spider.name}.yaml`);
  const metadata = { name: spider.name };
  writeFileSync(
    file,
    stringify({ apiVersion: "feedcrawl.io/v1alpha1", kind: "CrawlJob", metadata, spec: { spider, feeds } }),
  );
  return file;
}

interface Run {
  child: ChildProcess;
  /** Resolves when the crawl logged its start (or the process ended). */
  started: Promise<void>;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

function crawl(manifest: string, jobdir: string, spider: string): Run {
  const child = spawn(
    process.execPath,
    [join(root, "bin/feedcrawl.ts"), "crawl", manifest, "--jobdir", jobdir, "--no-progress", "--log-level", "info"],
    { cwd: tmp, stdio: ["ignore", "ignore", "pipe"] },
  );
  children.add(child);
  let stderr = "";
  let markStarted: () => void = () => {};
  const started = new Promise<void>((resolve) => {
    markStarted = resolve;
  });
  child.stderr?.on("data", (d) => {
    stderr += d;
    if (stderr.includes(`Crawl of spider ${spider} started`)) markStarted();
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on("close", (code, signal) => {
      markStarted();
      resolve({ code, signal, stderr });
    }),
  );
  return { child, started, done };
}

/** Every item of every finished file of one feed, canonical (temp files and manifests excluded). */
function feedItems(out: string, prefix: string): string[] {
  return canonical(feedLines(out, prefix));
}

test("SIGKILLed 10 times at random moments, the --jobdir crawl delivers every item exactly once", async () => {
  const out = join(tmp, "out-killed");
  const manifest = writeManifest(catalogueSpider("jobdir-kill", site.url), {
    [`file://${out}/all-%(batch_id)05d.jsonl`]: { format: "jsonlines", batchItemCount: 7 },
    [`file://${out}/products-%(batch_id)05d.jsonl`]: { format: "jsonlines", batchItemCount: 5, itemTypes: ["product"] },
  });
  const jobdir = join(tmp, "state-killed");
  const random = seeded(20261201);
  let kills = 0;
  for (let i = 0; i < 10; i++) {
    const run = crawl(manifest, jobdir, "jobdir-kill");
    // Mostly mid-crawl; now and then during startup and recovery (before the crawl starts).
    if (random() < 0.8) await run.started;
    await new Promise((r) => setTimeout(r, Math.floor(random() * 1500)));
    if (run.child.exitCode === null && run.child.signalCode === null) {
      run.child.kill("SIGKILL");
      kills++;
    }
    const r = await run.done;
    if (r.signal !== "SIGKILL") assert.equal(r.code, 0, `run ${i} ended on its own but failed:\n${r.stderr}`);
  }
  assert.ok(kills >= 8, `only ${kills} of the 10 runs were killed: the crawl ended too soon to test anything`);

  const last = await crawl(manifest, jobdir, "jobdir-kill").done;
  assert.equal(last.code, 0, last.stderr);
  assert.match(last.stderr, /Crawl of spider jobdir-kill finished: finished/);

  const want = catalogueTruth(catalogue, site.url);
  const all = feedItems(out, "all-");
  const products = feedItems(out, "products-");
  assert.equal(all.length, want.all.length, "the all feed holds each item once");
  assert.deepEqual(all, want.all);
  assert.equal(products.length, want.products.length, "the products feed holds each product once");
  assert.deepEqual(products, want.products);

  // Finished: a rerun says so, exits 0 and writes nothing.
  const before = readdirSync(out).sort();
  const again = await crawl(manifest, jobdir, "jobdir-kill").done;
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /already finished \(finished\): nothing to do/);
  assert.deepEqual(readdirSync(out).sort(), before);
});

test("stopped by SIGTERM mid-crawl, twice, the --jobdir crawl resumes and delivers every item exactly once", async () => {
  // A graceful stop stores and commits the open batches; the links that pages
  // finishing during the stop found must still be queued for the resumed crawl.
  const pages = 400;
  const tree = await treeSite(pages);
  try {
    const out = join(tmp, "out-stopped");
    const manifest = writeManifest(treeSpider("jobdir-tree", tree.url), {
      [`file://${out}/tree-%(batch_id)05d.jsonl`]: { format: "jsonlines", batchItemCount: 3 },
    });
    const jobdir = join(tmp, "state-stopped");
    for (const waitMs of [800, 1500]) {
      const run = crawl(manifest, jobdir, "jobdir-tree");
      await run.started;
      await new Promise((r) => setTimeout(r, waitMs));
      run.child.kill("SIGTERM");
      const r = await run.done;
      assert.equal(r.code, 143, r.stderr);
    }
    const last = await crawl(manifest, jobdir, "jobdir-tree").done;
    assert.equal(last.code, 0, last.stderr);
    assert.deepEqual(feedItems(out, "tree-"), treeTruth(pages));
  } finally {
    await tree.close();
  }
});
