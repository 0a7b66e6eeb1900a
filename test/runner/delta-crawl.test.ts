// Delta crawls (spider.settings.delta) end to end with `feedcrawl crawl
// --delta-dir`: a real process crawling the fixture catalogue, whose product
// pages carry ETag/Last-Modified and answer 304. A second run over the
// unchanged site sends conditional requests, gets 304s and writes no feed file;
// after 5 pages change, the third run delivers exactly those 5 items; a run that
// does not finish (closeSpider) saves nothing, so its items come again.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { stringify } from "yaml";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import { type CatalogueServer, createCatalogue } from "../fixtures/catalogue.ts";
import { booksSpider } from "./helpers.ts";

const root = new URL("../../", import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), "delta-crawl-test-"));
const catalogue = createCatalogue({ products: 60, perPage: 20, seed: 4 });
let site: CatalogueServer;

before(async () => {
  site = await catalogue.listen({ traps: false, altHost: null, validators: true });
});
after(async () => {
  await site?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** One `feedcrawl crawl` run into `out`; its items (fields) from the feed files there (none: []). */
async function crawl(spider: SpiderSpec, deltaDir: string, out: string) {
  const file = join(tmp, `${spider.name}.yaml`);
  writeFileSync(
    file,
    stringify({
      apiVersion: "feedcrawl.io/v1alpha1",
      kind: "CrawlJob",
      metadata: { name: spider.name },
      spec: { spider },
    }),
  );
  const child = spawn(
    process.execPath,
    [join(root, "bin/feedcrawl.ts"), "crawl", file, "--out", out, "--delta-dir", deltaDir, "--no-progress"],
    { cwd: tmp, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  assert.equal(code, 0, stderr);
  const files = existsSync(out) ? readdirSync(out).filter((f) => f.endsWith(".jsonl")) : [];
  const items = files.flatMap((f) =>
    readFileSync(join(out, f), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { url: string; stock: number }),
  );
  return { files, items, stats: JSON.parse(stderr.trim().split("\n").pop() as string) };
}

const productRequests = () =>
  site.counters
    .paths()
    .reduce((n, p) => n + (p.endsWith("/index.html") && p !== "/index.html" ? site.counters.path(p) : 0), 0);

test("a second run over an unchanged site gets 304s and writes no feed; after 5 pages change, a third delivers exactly those", async () => {
  const spider = booksSpider(site.url);
  spider.name = "books-delta";
  const deltaDir = join(tmp, "delta");

  const first = await crawl(spider, deltaDir, join(tmp, "run1"));
  assert.equal(first.items.length, 60);
  assert.equal(site.notModified(), 0);

  const before2 = productRequests();
  const second = await crawl(spider, deltaDir, join(tmp, "run2"));
  assert.deepEqual(second.files, [], "no feed file when nothing is new");
  assert.equal(second.stats.stats.status.items ?? 0, 0);
  assert.equal(productRequests() - before2, 60, "every product page asked once");
  assert.equal(site.notModified(), 60, "and every one answered 304");

  const changed = [3, 17, 29, 41, 58];
  site.change(changed);
  const third = await crawl(spider, deltaDir, join(tmp, "run3"));
  assert.equal(site.notModified(), 60 + 55);
  const expected = changed.map((id) => {
    const item = catalogue.expectedItem(id, site.url).fields as { url: string; stock: number };
    return { url: item.url, stock: item.stock + 1 };
  });
  assert.deepEqual(
    third.items.map((i) => ({ url: i.url, stock: i.stock })).sort((a, b) => a.url.localeCompare(b.url)),
    expected.sort((a, b) => a.url.localeCompare(b.url)),
  );
});

test("a run that does not finish saves no delta state: the next run delivers everything", async () => {
  const spider = booksSpider(site.url, { settings: { closeSpider: { itemCount: 10 } } });
  spider.name = "books-delta-cut";
  const deltaDir = join(tmp, "delta-cut");
  const cut = await crawl(spider, deltaDir, join(tmp, "cut1"));
  assert.equal(cut.stats.reason, "closespider_itemcount");
  assert.equal(cut.items.length, 10);

  const whole = booksSpider(site.url);
  whole.name = "books-delta-cut";
  const next = await crawl(whole, deltaDir, join(tmp, "cut2"));
  assert.equal(next.items.length, 60, "the cut run's 10 items come again with the other 50");
});
