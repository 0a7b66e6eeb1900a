// The crawl engine against the fixture catalogue on loopback, with every trap:
// exact items, robots.txt, offsite and private addresses, retries and
// Retry-After, redirects, the gzip bomb, non-HTML files, per-domain concurrency
// measured at the server, and the close conditions.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Crawler } from "../../runner/crawler.ts";
import { type CatalogueServer, createCatalogue, TRAPS } from "../fixtures/catalogue.ts";
import { booksSpider, captureLogger, itemKeys, MemorySink } from "./helpers.ts";

const catalogue = createCatalogue({ products: 100, perPage: 20 });
let site: CatalogueServer;

before(async () => {
  site = await catalogue.listen({ slowMs: 400, bombBytes: 16 * 1024 * 1024 });
});
after(async () => {
  await site?.close();
});

describe("a full crawl of the trap-laden catalogue", () => {
  const sink = new MemorySink();
  const { logger, lines } = captureLogger();
  let result: Awaited<ReturnType<Crawler["run"]>>;
  const perDomain = 3;

  before(async () => {
    const spider = booksSpider(site.url, {
      traps: true,
      settings: { concurrentRequests: 16, concurrentRequestsPerDomain: perDomain, maxResponseBytes: 1024 * 1024 },
    });
    result = await new Crawler({ spider, sink, logger }).run();
  });

  test("finishes and closes the sink once", () => {
    assert.equal(result.reason, "finished");
    assert.deepEqual(sink.closed, ["finished"]);
  });

  test("yields exactly the expected items: none missing, no duplicates", () => {
    const expected = itemKeys(catalogue.expectedItems(site.url));
    const got = itemKeys(sink.items);
    assert.equal(got.length, expected.length);
    assert.deepEqual(got, expected);
    assert.equal(new Set(got).size, got.length);
    assert.equal(result.stats.status.items, 100);
    assert.deepEqual(result.stats.itemsByType, { product: 100 });
  });

  test("includes the malformed pages' items", () => {
    const malformed = catalogue.product(3);
    assert.ok(malformed.malformed);
    assert.ok(sink.items.some((i) => i.fields.upc === malformed.upc && i.fields.title === malformed.title));
  });

  test("respects robots.txt: nothing under /private/ is fetched, robots.txt once", () => {
    assert.equal(site.counters.path(TRAPS.privatePage), 0);
    assert.equal(site.counters.path(TRAPS.privateDeep), 0);
    assert.equal(site.counters.path("/robots.txt"), 1);
    assert.equal(result.stats.requestsDropped.robotsTxt, 1);
  });

  test("refuses offsite and private-address links without touching them", () => {
    // 127.0.0.2 (the mirror), 10.255.255.1 and 169.254.169.254 are all outside allowedDomains.
    assert.equal(result.stats.requestsDropped.offsite, 3);
    const altRequests = [...site.counters.requests.keys()].filter((k) => k.startsWith("127.0.0.2"));
    assert.deepEqual(altRequests, []);
  });

  test("retries 503 twice then succeeds; honours Retry-After on 429", () => {
    assert.equal(site.counters.path(TRAPS.flaky503), 3);
    assert.equal(site.counters.path(TRAPS.retryAfter429), 2);
    const [first, second] = site.counters.times.get(TRAPS.retryAfter429) ?? [];
    assert.ok(first !== undefined && second !== undefined);
    assert.ok(second - first >= 950, `the retry came ${second - first} ms after a Retry-After: 1`);
    assert.equal(result.stats.retries, 3);
    assert.equal(result.stats.responsesByStatus["503"], 2);
    assert.equal(result.stats.responsesByStatus["429"], 1);
  });

  test("follows the redirect chain to an already-seen product and cuts the loop", () => {
    assert.equal(site.counters.path("/trap/redirect/3"), 1);
    assert.equal(site.counters.path("/trap/redirect/1"), 1);
    assert.equal(site.counters.path(TRAPS.loopA), 1);
    assert.equal(site.counters.path(TRAPS.loopB), 1);
    assert.equal(result.stats.requestsDropped.redirectLoop, 1);
    assert.equal(site.counters.path(catalogue.productPath(catalogue.product(1))), 1, "product 1 fetched once");
  });

  test("stops the gzip bomb at maxResponseBytes and counts it", () => {
    assert.equal(result.stats.errorsByKind.responseTooLarge, 1);
    assert.ok(lines.some((l) => String(l.msg).includes("maxResponseBytes") && String(l.url).endsWith(TRAPS.bomb)));
  });

  test("does not parse non-HTML files", () => {
    // The PDF is never fetched (Scrapy's ignored extensions); the JSON is fetched but not parsed.
    assert.equal(site.counters.path(TRAPS.pdf), 0);
    assert.equal(site.counters.path(TRAPS.json), 1);
    assert.equal(site.counters.path(TRAPS.fromNonHtml), 0);
    assert.equal(result.stats.nonHtml, 1);
  });

  test("never exceeds the per-domain concurrency (measured at the server)", () => {
    const max = site.counters.maxInFlightByHost.get(`127.0.0.1:${site.port}`) ?? 0;
    assert.ok(max >= 1 && max <= perDomain, `max in flight ${max}`);
  });

  test("waits for the slow page and counts what it saw", () => {
    assert.equal(site.counters.path(TRAPS.slow), 1);
    const s = result.stats;
    assert.equal(s.status.pages, s.depth ? Object.values(s.depth).reduce((a, b) => a + b, 0) : -1);
    assert.ok(s.status.bytes > 0);
    assert.equal(s.queued, 0);
    assert.equal(s.inFlight, 0);
  });

  test("logs a field problem once per rule, with the URL", () => {
    const stockLines = lines.filter((l) => l.rule === "product" && l.field === "stock");
    assert.equal(stockLines.length, 1);
    assert.match(String(stockLines[0]?.url), /^http:\/\/127\.0\.0\.1:\d+\/catalogue\//);
    const outOfStock = catalogue.expectedItems(site.url).filter((i) => i.fields.stock === 0).length;
    assert.equal(result.stats.fieldErrors.regexNoMatch, outOfStock);
  });
});

describe("close conditions and stopping", () => {
  const quiet = () => captureLogger("warn").logger;

  test("closeSpider.itemCount stops at exactly that many items", async () => {
    const sink = new MemorySink();
    const spider = booksSpider(site.url, { settings: { closeSpider: { itemCount: 7 } } });
    const r = await new Crawler({ spider, sink, logger: quiet() }).run();
    assert.equal(r.reason, "closespider_itemcount");
    assert.equal(sink.items.length, 7);
    assert.equal(r.stats.status.items, 7);
    assert.deepEqual(sink.closed, ["closespider_itemcount"]);
  });

  test("closeSpider.pageCount stops at exactly that many pages", async () => {
    const sink = new MemorySink();
    const spider = booksSpider(site.url, { settings: { closeSpider: { pageCount: 12 } } });
    const r = await new Crawler({ spider, sink, logger: quiet() }).run();
    assert.equal(r.reason, "closespider_pagecount");
    assert.equal(r.stats.status.pages, 12);
  });

  test("closeSpider.errorCount stops after that many errors", async () => {
    const sink = new MemorySink();
    const spider = booksSpider(site.url, { settings: { closeSpider: { errorCount: 1 }, concurrentRequests: 1 } });
    spider.startUrls = [`${site.url}/trap/bomb.html`, `${site.url}/`];
    spider.settings = { ...spider.settings, maxResponseBytes: 64 * 1024 };
    const r = await new Crawler({ spider, sink, logger: quiet() }).run();
    assert.equal(r.reason, "closespider_errorcount");
    assert.equal(r.stats.status.errors, 1);
  });

  test("closeSpider.timeoutSeconds stops a slow crawl", async () => {
    const sink = new MemorySink();
    const spider = booksSpider(site.url, {
      settings: { closeSpider: { timeoutSeconds: 1 }, downloadDelayMs: 300, randomizeDownloadDelay: false },
    });
    const r = await new Crawler({ spider, sink, logger: quiet() }).run();
    assert.equal(r.reason, "closespider_timeout");
    assert.ok(r.stats.status.pages < 10, `pages ${r.stats.status.pages}`);
    assert.deepEqual(sink.closed, ["closespider_timeout"]);
  });

  test("an aborted signal stops gracefully: in-flight pages finish, the sink closes", async () => {
    const sink = new MemorySink();
    sink.writeDelayMs = 5;
    const ac = new AbortController();
    const spider = booksSpider(site.url);
    // Abort from the sink, not from the throttled stats "change" event: on a
    // quiet machine the whole crawl can finish before that event first fires.
    const write = sink.write.bind(sink);
    sink.write = async (item) => {
      await write(item);
      if (sink.items.length === 5) ac.abort();
    };
    const crawler = new Crawler({ spider, sink, logger: quiet(), signal: ac.signal });
    const r = await crawler.run();
    assert.equal(r.reason, "shutdown");
    assert.ok(sink.items.length >= 5 && sink.items.length < 100, `items ${sink.items.length}`);
    assert.deepEqual(sink.closed, ["shutdown"]);
    assert.equal(r.stats.inFlight, 0);
  });

  test("depthLimit drops deeper links", async () => {
    const sink = new MemorySink();
    const spider = booksSpider(site.url, { settings: { depthLimit: 1 } });
    const r = await new Crawler({ spider, sink, logger: quiet() }).run();
    assert.equal(r.reason, "finished");
    assert.equal(sink.items.length, 20, "only the products linked from the first listing page");
    assert.ok((r.stats.requestsDropped.depthLimit ?? 0) > 0);
  });

  test("downloadDelayMs spaces requests to a host", async () => {
    const small = createCatalogue({ products: 6, perPage: 3, seed: 9 });
    const s = await small.listen({ traps: false, altHost: null });
    try {
      const spider = booksSpider(s.url, { settings: { downloadDelayMs: 120, randomizeDownloadDelay: false } });
      const r = await new Crawler({ spider, sink: new MemorySink(), logger: quiet() }).run();
      assert.equal(r.stats.status.items, 6);
      const times = [...s.counters.times.values()].flat().sort((a, b) => a - b);
      // robots.txt is fetched outside the slots; the pages follow one another by
      // the delay. The span (not each gap) is compared, so network jitter on one
      // request cannot make the test flaky.
      const pages = times.slice(1);
      const span = (pages[pages.length - 1] as number) - (pages[0] as number);
      assert.ok(pages.length >= 8, `pages ${pages.length}`);
      assert.ok(span >= (pages.length - 1) * 120 - 50, `${pages.length} requests in ${span} ms`);
      assert.equal(s.counters.maxInFlightByHost.get(`127.0.0.1:${s.port}`), 1);
    } finally {
      await s.close();
    }
  });
});
