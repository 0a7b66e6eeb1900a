// settings.httpCache (issue 16, feature 5) against a real site on 127.0.0.1: a
// second run of the same crawl makes zero requests to the site (pages and
// robots.txt replayed from disk), skips the download delay, and yields the same
// items; expiration and ignored status codes send requests again; without the
// CLI's permission (the runner pod) the setting is ignored with a warning.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { stringify } from "yaml";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import { Crawler } from "../../runner/crawler.ts";
import { captureLogger, itemKeys, MemorySink, startSite, type TestSite } from "./helpers.ts";

const ROOT_CLI = new URL("../../bin/feedcrawl.ts", import.meta.url).pathname;
let dir: string;
let site: TestSite;
let requests = 0;
const PAGES = ["/p1", "/p2", "/p3"];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "feedcrawl-httpcache-"));
  site = await startSite((_host, p, res) => {
    requests++;
    if (p === "/robots.txt") return "User-agent: *\nCrawl-delay: 0.2\nDisallow: /private\n";
    if (p === "/") return `<h1>home</h1>${[...PAGES, "/gone", "/private"].map((x) => `<a href="${x}">x</a>`).join("")}`;
    if (p === "/gone") {
      res.statusCode = 410;
      return "<h1>gone</h1>";
    }
    return PAGES.includes(p) ? `<h1>page ${p}</h1>` : undefined;
  });
});
after(async () => {
  await site.close();
  await rm(dir, { recursive: true, force: true });
});

function spider(cache: NonNullable<SpiderSpec["settings"]>["httpCache"]): SpiderSpec {
  return {
    name: "cached",
    startUrls: [`${site.url}/`],
    follow: [{}],
    extract: [{ name: "page", fields: { title: { selector: "h1", text: true, required: true } } }],
    settings: {
      allowPrivateNetworks: ["127.0.0.0/8"],
      downloadDelayMs: 200,
      randomizeDownloadDelay: false,
      retryTimes: 0,
      httpCache: cache,
    },
  };
}

async function crawl(cache: NonNullable<SpiderSpec["settings"]>["httpCache"], baseDir: string | null = dir) {
  const { logger, lines } = captureLogger("info");
  const sink = new MemorySink();
  const before = requests;
  const started = performance.now();
  const crawler = new Crawler({
    spider: spider(cache),
    sink,
    logger,
    ...(baseDir ? { httpCache: { baseDir } } : {}),
  });
  const r = await crawler.run();
  assert.equal(r.reason, "finished");
  return { requests: requests - before, items: sink.items, ms: performance.now() - started, lines };
}

describe("settings.httpCache", () => {
  test("the second run makes zero requests to the site, skips the delays and yields the same items", async () => {
    const cache = { enabled: true, dir: "cache-a" };
    const first = await crawl(cache);
    // robots.txt, /, 3 pages, /gone (410, cached too: Scrapy caches every status by default); /private disallowed.
    assert.equal(first.requests, 6);
    assert.equal(first.items.length, 4);
    assert.ok(first.ms >= 4 * 200 - 50, `the first run is spaced by the delay: ${Math.round(first.ms)} ms`);
    const files = await readdir(path.join(dir, "cache-a", "cached"), { recursive: true });
    assert.equal(files.filter((f) => f.endsWith(".json")).length, 6, files.join(", "));

    const second = await crawl(cache);
    assert.equal(second.requests, 0, "nothing reached the site");
    assert.deepEqual(itemKeys(second.items), itemKeys(first.items));
    assert.ok(second.ms < 400, `cache hits skip the 200 ms download delay / Crawl-delay: ${Math.round(second.ms)} ms`);
    assert.ok(second.lines.some((l) => /HTTP cache: 6 hits, 0 misses/.test(String(l.msg))));
  });

  test("ignoreHttpCodes are never cached; an expired entry is fetched again", async () => {
    const ignoring = { enabled: true, dir: "cache-b", ignoreHttpCodes: [410] };
    assert.equal((await crawl(ignoring)).requests, 6);
    assert.equal((await crawl(ignoring)).requests, 1, "only /gone (410) goes to the site again");
    const expiring = { enabled: true, dir: "cache-c", expirationSeconds: 1 };
    assert.equal((await crawl(expiring)).requests, 6);
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await crawl(expiring)).requests, 6, "every entry expired");
  });

  test("in the runner pod (no CLI permission) the setting is ignored with a warning", async () => {
    const cache = { enabled: true, dir: "cache-d" };
    const run = await crawl(cache, null);
    assert.equal(run.requests, 6);
    assert.ok(
      run.lines.some((l) => /httpCache is for developing spiders.*ignored in the runner pod/.test(String(l.msg))),
    );
    await assert.rejects(readdir(path.join(dir, "cache-d")), /ENOENT/);
  });
});

test("`feedcrawl crawl` twice: the second process makes zero requests (cache under its working directory)", async () => {
  const cwd = await mkdtemp(path.join(dir, "cli-"));
  const file = path.join(cwd, "job.yaml");
  const spec = { spider: spider({ enabled: true }) };
  await writeFile(
    file,
    stringify({ apiVersion: "feedcrawl.io/v1alpha1", kind: "CrawlJob", metadata: { name: "cli" }, spec }),
  );
  const run = () =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [ROOT_CLI, "crawl", file], { cwd, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr?.on("data", (d) => {
        stderr += d;
      });
      child.on("close", (code) => resolve({ code, stderr }));
    });
  const before = requests;
  const first = await run();
  assert.equal(first.code, 0, first.stderr);
  assert.equal(requests - before, 6);
  const second = await run();
  assert.equal(second.code, 0, second.stderr);
  assert.equal(requests - before, 6, "the second process made no request");
  const cached = await readdir(path.join(cwd, ".feedcrawl", "httpcache", "cached"), { recursive: true });
  assert.equal(cached.filter((f) => f.endsWith(".json")).length, 6);
  const feeds = (await readdir(path.join(cwd, "feeds"))).filter((f) => f.endsWith(".jsonl"));
  assert.equal(feeds.length, 2, "both runs wrote their items");
});
