// The engine's other paths against the fixture catalogue: no allowedDomains
// (the address guard is the only fence), sharding, the frontier spilling to
// disk, fields that break, and the spider.module escape hatch; and, on a small
// site of named hosts that all resolve to loopback, `restrict: sameDomain`.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import type { ResolveAll } from "../../net/address-guard.ts";
import { Crawler } from "../../runner/crawler.ts";
import { shardForHost } from "../../runner/shard.ts";
import { type CatalogueServer, createCatalogue, TRAPS } from "../fixtures/catalogue.ts";
import { booksSpider, captureLogger, itemKeys, MemorySink, startSite } from "./helpers.ts";

const catalogue = createCatalogue({ products: 40, perPage: 10, seed: 3 });
let site: CatalogueServer;
const quiet = () => captureLogger("warn").logger;

before(async () => {
  site = await catalogue.listen({ slowMs: 50, bombBytes: 4 * 1024 * 1024 });
  assert.ok(site.altUrl, "the fixture needs 127.0.0.2 (any Linux loopback has it)");
});
after(async () => {
  await site?.close();
});

describe("without allowedDomains", () => {
  test("crawls both loopback hosts, refuses 10.x and 169.254.169.254 before connecting", async () => {
    const sink = new MemorySink();
    const { logger, lines } = captureLogger("warn");
    const spider = booksSpider(site.url, {
      traps: true,
      settings: { maxResponseBytes: 256 * 1024, concurrentRequests: 16, concurrentRequestsPerDomain: 2 },
    });
    delete spider.allowedDomains;
    const r = await new Crawler({ spider, sink, logger }).run();
    assert.equal(r.reason, "finished");
    const expected = itemKeys([...catalogue.expectedItems(site.url), ...catalogue.expectedItems(site.altUrl)]);
    assert.deepEqual(itemKeys(sink.items), expected);
    // Both hosts' first listing page links the two private addresses.
    assert.equal(r.stats.requestsDropped.privateAddress, 4);
    assert.equal(r.stats.requestsDropped.offsite, undefined);
    const refusals = lines.filter((l) => /refused: address/.test(String(l.msg)));
    assert.deepEqual(refusals.map((l) => l.address).sort(), ["10.255.255.1", "169.254.169.254"]);
    assert.ok(refusals.every((l) => String(l.url).startsWith("http://")));
    assert.equal(site.counters.path(TRAPS.privatePage), 0);
    // Per-domain concurrency holds on each host, measured at the server.
    for (const host of [`127.0.0.1:${site.port}`, `127.0.0.2:${site.port}`]) {
      const max = site.counters.maxInFlightByHost.get(host) ?? 0;
      assert.ok(max >= 1 && max <= 2, `${host}: max in flight ${max}`);
    }
  });

  test("without allowPrivateNetworks even loopback is refused (the guard's default)", async () => {
    const sink = new MemorySink();
    const spider = booksSpider(site.url);
    delete spider.settings?.allowPrivateNetworks;
    const before = site.counters.total();
    const r = await new Crawler({ spider, sink, logger: quiet() }).run();
    assert.equal(r.reason, "finished");
    assert.equal(sink.items.length, 0);
    assert.equal(r.stats.requestsDropped.privateAddress, 1);
    assert.equal(site.counters.total(), before, "the server saw nothing");
  });
});

describe("sharding", () => {
  test("each shard crawls only its hosts; together they crawl everything once", async () => {
    const plain = createCatalogue({ products: 30, perPage: 10, seed: 5 });
    const s = await plain.listen({ traps: false });
    try {
      assert.ok(s.altUrl);
      const hosts = ["127.0.0.1", "127.0.0.2"];
      assert.notEqual(
        shardForHost(hosts[0] as string, 2),
        shardForHost(hosts[1] as string, 2),
        "the hosts land on different shards",
      );
      const results = [];
      const all: MemorySink["items"] = [];
      for (const index of [0, 1]) {
        const sink = new MemorySink();
        const spider = booksSpider(s.url);
        spider.startUrls = [`${s.url}/`, `${s.altUrl}/`];
        delete spider.allowedDomains;
        const r = await new Crawler({ spider, sink, logger: quiet(), shard: { index, count: 2 } }).run();
        results.push(r);
        all.push(...sink.items);
        const mine = hosts.find((h) => shardForHost(h, 2) === index) as string;
        assert.ok(sink.items.every((i) => String(i.fields.url).startsWith(`http://${mine}:`)));
        assert.equal(r.stats.requestsDropped.otherShard, 1);
      }
      assert.deepEqual(itemKeys(all), itemKeys([...plain.expectedItems(s.url), ...plain.expectedItems(s.altUrl)]));
    } finally {
      await s.close();
    }
  });
});

describe("a bounded frontier", () => {
  test("spills to disk, keeps breadth-first order and loses nothing", async (t) => {
    const tmp = mkdtempSync(join(tmpdir(), "crawl-spill-"));
    t.after(() => rmSync(tmp, { recursive: true, force: true }));
    const plain = createCatalogue({ products: 200, perPage: 50, seed: 8 });
    const s = await plain.listen({ traps: false, altHost: null });
    try {
      const sink = new MemorySink();
      const spider = booksSpider(s.url, { settings: { concurrentRequests: 4 } });
      const r = await new Crawler({ spider, sink, logger: quiet(), frontierMemoryLimit: 5, tmpDir: tmp }).run();
      assert.equal(r.reason, "finished");
      assert.ok(r.stats.frontierSpilled > 0, "the frontier spilled");
      assert.deepEqual(itemKeys(sink.items), itemKeys(plain.expectedItems(s.url)));
      assert.deepEqual(readdirSync(tmp), [], "spill files are removed at the end");
    } finally {
      await s.close();
    }
  });
});

describe("fields that break", () => {
  test("a failed conversion drops the field, a missing required field drops the item, never the crawl", async () => {
    const sink = new MemorySink();
    const { logger, lines } = captureLogger("warn");
    const spider = booksSpider(site.url);
    spider.extract = [
      {
        name: "product",
        itemSelector: "article.product_page",
        urlPattern: "/catalogue/[^/]+_[0-9]+/index\\.html$",
        fields: {
          title: { selector: "h1", text: true, type: "number" }, // never a number
          upc: { selector: "table tr:first-child td", text: true },
          tagCount: { selector: "a.tag", text: true, all: true, type: "integer" },
        },
      },
      {
        name: "needsTag",
        itemSelector: "article.product_page",
        fields: { tag: { selector: "a.tag", text: true, required: true }, upc: { selector: "table td", text: true } },
      },
    ];
    const r = await new Crawler({ spider, sink, logger }).run();
    assert.equal(r.reason, "finished");
    const products = sink.items.filter((i) => i.type === "product");
    assert.equal(products.length, 40);
    assert.ok(products.every((i) => !("title" in i.fields) && typeof i.fields.upc === "string"));
    assert.equal(
      r.stats.fieldErrors.typeConversion,
      40 + catalogue.expectedItems().reduce((n, i) => n + (i.fields.tags as string[]).length, 0),
    );
    const withTags = catalogue.expectedItems().filter((i) => (i.fields.tags as string[]).length > 0).length;
    assert.equal(sink.items.filter((i) => i.type === "needsTag").length, withTags);
    assert.equal(r.stats.itemsDroppedByReason.missingRequired, 40 - withTags);
    assert.equal(r.stats.status.itemsDropped, 40 - withTags);
    // Logged once per rule and field, with the URL.
    const titleLogs = lines.filter((l) => l.rule === "product" && l.field === "title");
    assert.equal(titleLogs.length, 1);
    assert.match(String(titleLogs[0]?.url), /\/catalogue\/.+\/index\.html$/);
    assert.equal(lines.filter((l) => l.rule === "needsTag" && l.reason === "missingRequired").length, 1);
  });
});

describe("spider.module", () => {
  test("parse(response, ctx) yields items and requests next to the declarative rules", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "spider-module-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      join(dir, "listing.mjs"),
      `export async function* parse(response, ctx) {
  if (!response.$) return;
  const h1 = response.$("h1").first().text();
  if (response.url.endsWith("/")) {
    yield ctx.item("listing", { url: response.url, heading: h1, depth: response.depth, meta: response.request.meta });
    yield ctx.follow("/files/data", { meta: { from: "module" } });
  }
}
`,
    );
    const sink = new MemorySink();
    const spider = booksSpider(site.url, { settings: { closeSpider: { itemCount: 0 } } });
    spider.module = "./listing.mjs";
    const r = await new Crawler({ spider, sink, logger: quiet(), moduleBaseDir: dir }).run();
    assert.equal(r.reason, "finished");
    const listing = sink.items.filter((i) => i.type === "listing");
    assert.deepEqual(listing, [
      { type: "listing", fields: { url: `${site.url}/`, heading: "All products", depth: 0, meta: {} } },
    ]);
    assert.equal(sink.items.filter((i) => i.type === "product").length, 40);
    assert.equal(r.stats.itemsByType.listing, 1);
  });

  test("a module that throws counts a spider error and the crawl goes on", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "spider-module-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      join(dir, "boom.mjs"),
      "export function parse(response) { if (response.url.endsWith('/')) throw new Error('boom'); return []; }\n",
    );
    const sink = new MemorySink();
    const spider = booksSpider(site.url);
    spider.module = join(dir, "boom.mjs");
    const r = await new Crawler({ spider, sink, logger: quiet() }).run();
    assert.equal(r.reason, "finished");
    assert.equal(r.stats.errorsByKind.spiderError, 1);
    assert.equal(sink.items.length, 40);
  });

  test("a module without parse() fails run() with a message naming it", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "spider-module-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, "empty.mjs"), "export const nothing = 1;\n");
    const spider = booksSpider(site.url);
    spider.module = join(dir, "empty.mjs");
    await assert.rejects(new Crawler({ spider, sink: new MemorySink(), logger: quiet() }).run(), /empty\.mjs.*parse/);
  });
});

describe("spider.moduleConfigMapRef: the module from a ConfigMap key, mounted into the runner pod", () => {
  /** A directory laid out as the kubelet lays out a configMap volume: key -> ..data/key -> ..<timestamp>/key. */
  function configMapVolume(files: Record<string, string>): string {
    const dir = mkdtempSync(join(tmpdir(), "module-cm-"));
    const version = join(dir, "..2026_12_01_00_00_00.000000001");
    mkdirSync(version);
    for (const [key, text] of Object.entries(files)) writeFileSync(join(version, key), text, { mode: 0o444 });
    symlinkSync("..2026_12_01_00_00_00.000000001", join(dir, "..data"));
    for (const key of Object.keys(files)) symlinkSync(join("..data", key), join(dir, key));
    return dir;
  }

  test("a TypeScript module from the mounted key runs (the runner pod's moduleConfigMapDir)", async (t) => {
    const dir = configMapVolume({
      "headings.ts": `interface Ctx { item(type: string, fields: Record<string, unknown>): unknown }
export function parse(response: { url: string; $?: (s: string) => { first(): { text(): string } } }, ctx: Ctx) {
  if (!response.$ || !response.url.endsWith("/")) return [];
  return [ctx.item("heading", { text: response.$("h1").first().text() })];
}
`,
    });
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const sink = new MemorySink();
    const spider = booksSpider(site.url);
    spider.moduleConfigMapRef = { name: "books-module", key: "headings.ts" };
    const r = await new Crawler({ spider, sink, logger: quiet(), moduleConfigMapDir: dir }).run();
    assert.equal(r.reason, "finished");
    assert.deepEqual(
      sink.items.filter((i) => i.type === "heading"),
      [{ type: "heading", fields: { text: "All products" } }],
    );
    assert.equal(sink.items.filter((i) => i.type === "product").length, 40);
  });

  test("without a mount (feedcrawl crawl: no cluster) run() refuses it, saying what to write instead", async () => {
    const spider = booksSpider(site.url);
    spider.moduleConfigMapRef = { name: "books-module", key: "headings.ts" };
    await assert.rejects(
      new Crawler({ spider, sink: new MemorySink(), logger: quiet() }).run(),
      /moduleConfigMapRef \(ConfigMap books-module, key headings\.ts\) is read in runner pods only.*spider\.module/,
    );
  });
});

describe("restrict: sameDomain (the Public Suffix List, private suffixes included)", () => {
  const hosts = ["news.example.co.uk", "shop.example.co.uk", "other.co.uk", "alice.github.io", "bob.github.io"];
  // Every test host is 127.0.0.1; the address guard still checks that answer.
  const resolve: ResolveAll = (hostname, _options, callback) =>
    hosts.includes(hostname)
      ? callback(null, [{ address: "127.0.0.1", family: 4 }])
      : callback(Object.assign(new Error(`no test address for ${hostname}`), { code: "ENOTFOUND" }), []);

  async function crawl(restrict: "sameDomain" | "sameHost") {
    let port = 0;
    const link = (host: string, path = "/") => `<a href="http://${host}:${port}${path}">${host}</a>`;
    const s = await startSite((host, path) => {
      if (!hosts.includes(host)) return undefined;
      const h1 = `<h1>${host}${path}</h1>`;
      if (host === "news.example.co.uk" && path === "/") return h1 + link("shop.example.co.uk") + link("other.co.uk");
      if (host === "alice.github.io" && path === "/") return h1 + link("bob.github.io") + '<a href="/about">about</a>';
      return h1;
    });
    port = s.port;
    try {
      const spider: SpiderSpec = {
        name: "domains",
        startUrls: [`http://news.example.co.uk:${port}/`, `http://alice.github.io:${port}/`],
        follow: [{ restrict }],
        extract: [{ name: "page", fields: { title: { selector: "h1", text: true, required: true } } }],
        settings: { allowPrivateNetworks: ["127.0.0.0/8"], robotsTxtObey: false },
      };
      const sink = new MemorySink();
      const r = await new Crawler({ spider, sink, logger: quiet(), resolve }).run();
      assert.equal(r.reason, "finished");
      assert.equal(r.stats.status.errors, 0);
      return { titles: sink.items.map((i) => String(i.fields.title)).sort(), site: s };
    } finally {
      await s.close();
    }
  }

  test("follows shop.<site> from news.<site>, not another site under co.uk or github.io", async () => {
    const { titles, site: s } = await crawl("sameDomain");
    assert.deepEqual(titles, [
      "alice.github.io/",
      "alice.github.io/about",
      "news.example.co.uk/",
      "shop.example.co.uk/",
    ]);
    assert.equal(s.hits("bob.github.io", "/"), 0);
    assert.equal(s.hits("other.co.uk", "/"), 0);
  });

  test("sameHost stays on the page's own host", async () => {
    const { titles } = await crawl("sameHost");
    assert.deepEqual(titles, ["alice.github.io/", "alice.github.io/about", "news.example.co.uk/"]);
  });
});
