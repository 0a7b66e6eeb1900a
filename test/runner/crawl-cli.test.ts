// `feedcrawl crawl` end to end: a real process crawling the fixture catalogue
// into the default JSON-lines feed through the feed exporter; invalid manifests
// exit 2 before any request; SIGINT stops gracefully with the feed closed; stdout
// holds only a stdout: feed's items; a taken target fails before the crawl;
// cluster-only fields are named once.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { stringify } from "yaml";
import { type CatalogueServer, createCatalogue } from "../fixtures/catalogue.ts";
import { booksSpider, itemKeys } from "./helpers.ts";

const root = new URL("../../", import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), "crawl-cli-test-"));
const catalogue = createCatalogue({ products: 60, perPage: 20, seed: 4 });
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

function crawl(args: string[]): {
  child: ChildProcess;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
} {
  const child = spawn(process.execPath, [join(root, "bin/feedcrawl.ts"), "crawl", ...args], {
    cwd: tmp,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d) => {
    stdout += d;
  });
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on("close", (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

function manifest(name: string, spider: ReturnType<typeof booksSpider>, spec: Record<string, unknown> = {}): string {
  const file = join(tmp, `${name}.yaml`);
  writeFileSync(
    file,
    stringify({ apiVersion: "feedcrawl.io/v1alpha1", kind: "CrawlJob", metadata: { name }, spec: { spider, ...spec } }),
  );
  return file;
}

/** The final stats: the last line of stderr (never stdout, which belongs to stdout: feeds). */
function finalStats(stderr: string) {
  return JSON.parse(stderr.trim().split("\n").pop() as string);
}

test("crawls the fixture site into ./feeds/<name>-<time>.jsonl with exactly the expected items", async () => {
  // The manifest does not allow loopback: --allow-private-networks does (without
  // it the guard refuses loopback; see crawler-spider.test.ts).
  const spider = booksSpider(site.url);
  delete spider.settings?.allowPrivateNetworks;
  const out = join(tmp, "out");
  const { done } = crawl([manifest("books-local", spider), "--out", out, "--allow-private-networks"]);
  const r = await done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "", "nothing on stdout without a stdout: feed");
  const summary = finalStats(r.stderr);
  assert.equal(summary.reason, "finished");
  assert.equal(summary.stats.status.items, 60);
  const files = readdirSync(out).filter((f) => f.endsWith(".jsonl"));
  assert.equal(files.length, 1);
  assert.match(files[0] as string, /^books-local-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.jsonl$/);
  assert.deepEqual(summary.feeds, [
    { uri: `file://${join(out, files[0] as string)}`, items: 60, bytes: summary.feeds[0].bytes },
  ]);
  const rows = readFileSync(join(out, files[0] as string), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  // The exporter writes the fields of each item as one JSON object.
  const asItems = rows.map((fields) => ({ type: "product", fields }));
  assert.deepEqual(itemKeys(asItems), itemKeys(catalogue.expectedItems(site.url)));
  assert.match(r.stderr, /"level":30/, "pino JSON logs on stderr when not a TTY");
});

test("an invalid manifest exits 2 with every error by path and crawls nothing", async () => {
  const spider = booksSpider(site.url);
  spider.startUrls = ["gopher://old.example/"];
  (spider.settings as Record<string, unknown>).concurrentRequestsPerDomain = 99;
  const before = site.counters.total();
  const { done } = crawl([manifest("bad", spider)]);
  const r = await done;
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^spec\.spider\.startUrls\[0\]: /m);
  assert.match(r.stderr, /^spec\.spider\.settings\.concurrentRequestsPerDomain: /m);
  assert.equal(site.counters.total(), before);
});

test("SIGINT stops gracefully: exit 130, the feed file is closed and valid", async () => {
  const out = join(tmp, "interrupted");
  const spider = booksSpider(site.url, { settings: { downloadDelayMs: 150, randomizeDownloadDelay: false } });
  const { child, done } = crawl([manifest("slow", spider), "--out", out]);
  // Interrupt once the server has answered a few product pages: their items are
  // written even so (in-flight pages finish), so the feed cannot be empty.
  const productRequests = () =>
    [...site.counters.requests].filter(([k]) => /_\d+\/index\.html$/.test(k)).reduce((n, [, v]) => n + v, 0);
  const already = productRequests();
  const deadline = Date.now() + 60_000;
  while (productRequests() < already + 3) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error("the crawl never reached the product pages");
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGINT");
  const r = await done;
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT, stopping/);
  const summary = finalStats(r.stderr);
  assert.equal(summary.reason, "shutdown");
  const files = readdirSync(out).filter((f) => f.endsWith(".jsonl"));
  assert.equal(files.length, 1);
  const rows = readFileSync(join(out, files[0] as string), "utf8")
    .trim()
    .split("\n")
    .filter(Boolean);
  assert.equal(rows.length, summary.stats.status.items);
  assert.ok(rows.length >= 3 && rows.length < 60, `interrupted crawl wrote ${rows.length} items`);
  for (const row of rows) JSON.parse(row);
});

test("a stdout: feed owns stdout: every line is an item, the stats and logs go to stderr", async () => {
  const spider = booksSpider(site.url);
  const { done } = crawl([manifest("piped", spider, { feeds: { "stdout:": { format: "jsonlines" } } })]);
  const r = await done;
  assert.equal(r.code, 0, r.stderr);
  const rows = r.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(rows.length, 60, "exactly the items, no stats line after them");
  assert.deepEqual(
    itemKeys(rows.map((fields) => ({ type: "product", fields }))),
    itemKeys(catalogue.expectedItems(site.url)),
  );
  const summary = finalStats(r.stderr);
  assert.equal(summary.stats.status.items, 60);
  assert.deepEqual(summary.feeds, [{ uri: "stdout:", items: 60, bytes: summary.feeds[0].bytes }]);
});

test("an unbatched file feed whose target exists fails before the first request, naming the file", async () => {
  const out = join(tmp, "taken");
  mkdirSync(out, { recursive: true });
  const target = join(out, "items.jsonl");
  writeFileSync(target, "precious\n");
  const before = site.counters.total();
  const spider = booksSpider(site.url);
  const { done } = crawl([manifest("taken", spider, { feeds: { [`file://${target}`]: { format: "jsonlines" } } })]);
  const r = await done;
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.stderr.includes(`cannot open the feeds: Feed "file://${target}": ${target} already exists`), r.stderr);
  assert.equal(site.counters.total(), before, "nothing was crawled");
  assert.equal(readFileSync(target, "utf8"), "precious\n");
});

test("spec.ingest and spec.runner are named in one warning: they apply on a cluster only", async () => {
  const spider = booksSpider(site.url);
  const out = join(tmp, "cluster-only");
  const file = manifest("cluster-only", spider, {
    ingest: { webhook: { url: "https://backend.example/ingest", signingSecretRef: { name: "hook", key: "secret" } } },
    runner: { parallelism: 2 },
  });
  const { done } = crawl([file, "--out", out]);
  const r = await done;
  assert.equal(r.code, 0, r.stderr);
  const warnings = r.stderr
    .split("\n")
    .filter((l) => l.startsWith("{") && l.includes('"level":40'))
    .map((l) => JSON.parse(l))
    .filter((l) => /ignored/.test(l.msg));
  assert.equal(warnings.length, 1, r.stderr);
  assert.deepEqual(warnings[0].fields, ["spec.ingest", "spec.runner"]);
  assert.match(warnings[0].msg, /^CrawlJob cluster-only: spec\.ingest, spec\.runner ignored by feedcrawl crawl/);
  assert.equal(finalStats(r.stderr).stats.status.items, 60, "the crawl itself runs as usual");
});
