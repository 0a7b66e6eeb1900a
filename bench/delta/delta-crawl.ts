// Delta crawls (spider.settings.delta): what a recurring crawl costs the site.
// Four `feedcrawl crawl` runs of the fixture catalogue (product pages with
// ETag/Last-Modified and 304s) with one --delta-dir: the first (everything is
// new), the second over the unchanged site, the third after 1% of the product
// pages changed; and for comparison a run without delta over the same site.
// Per run: requests the site served, 304s, wire bytes the crawler received,
// feed files and items written.
//   node bench/delta/delta-crawl.ts [--products 2000]
// Not wired into bench/run.ts (see docs/runner.md "Delta crawls").
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parse, stringify } from "yaml";
import { createCatalogue } from "../../test/fixtures/catalogue.ts";

const { values } = parseArgs({ options: { products: { type: "string", default: "2000" } } });
const products = Number(values.products);
const root = new URL("../../", import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), "bench-delta-"));
const catalogue = createCatalogue({ products, perPage: 20, seed: 7 });
const site = await catalogue.listen({ traps: false, altHost: null, validators: true });

const example = parse(readFileSync(join(root, "examples/books-local.yaml"), "utf8"));
example.spec.spider.startUrls = [`${site.url}/`];
const manifest = join(tmp, "books-delta.yaml");
writeFileSync(manifest, stringify(example));

interface Row {
  run: string;
  requests: number;
  notModified: number;
  wireBytes: number;
  feedFiles: number;
  items: number;
  seconds: number;
}

async function run(name: string, delta: boolean): Promise<Row> {
  const out = join(tmp, name);
  const requests = site.counters.total();
  const notModified = site.notModified();
  const started = performance.now();
  const args = [
    join(root, "bin/feedcrawl.ts"),
    "crawl",
    manifest,
    "--out",
    out,
    "--no-progress",
    "--log-level",
    "warn",
  ];
  if (delta) args.push("--delta-dir", join(tmp, "delta"));
  const child = spawn(process.execPath, args, { cwd: tmp, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  if (code !== 0) throw new Error(`${name}: feedcrawl crawl exited ${code}\n${stderr}`);
  const summary = JSON.parse(stderr.trim().split("\n").pop() as string);
  return {
    run: name,
    requests: site.counters.total() - requests,
    notModified: site.notModified() - notModified,
    wireBytes: summary.stats.status.bytes,
    // The run's _manifest-<time>.json (a record of the run, files: [] when nothing was stored) is no feed file.
    feedFiles: existsSync(out) ? readdirSync(out).filter((f) => f.endsWith(".jsonl")).length : 0,
    items: summary.stats.status.items,
    seconds: Math.round((performance.now() - started) / 100) / 10,
  };
}

try {
  const rows: Row[] = [];
  rows.push(await run("first (delta, empty state)", true));
  rows.push(await run("second, unchanged site", true));
  const changed = Array.from({ length: Math.max(1, Math.round(products / 100)) }, (_, i) => 1 + i * 100);
  site.change(changed);
  rows.push(await run(`third, ${changed.length} pages (1%) changed`, true));
  rows.push(await run("full crawl without delta", false));
  console.log(`Delta crawl bench: ${products} products, ${catalogue.pages} listing pages`);
  console.table(rows);
} finally {
  await site.close();
  rmSync(tmp, { recursive: true, force: true });
}
