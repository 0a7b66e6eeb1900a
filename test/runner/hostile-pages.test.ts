// Whole crawls against a hostile site on loopback (issue 14, findings 1 and 3):
// a page with an unknown or too many Content-Encodings and a gzip bomb each
// fail their own request, counted in stats; the other pages are crawled, the
// sink is closed, and nothing escapes as an uncaught exception — also when the
// bad page is the last one fetched.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import { Crawler } from "../../runner/crawler.ts";
import { DEFAULT_MAX_RESPONSE_BYTES, inFlightBudget } from "../../runner/downloader.ts";
import { captureLogger, MemorySink } from "./helpers.ts";
import { gzipBomb } from "./hostile-site.ts";

const escaped: unknown[] = [];
const record = (e: unknown) => escaped.push(e);
const bomb = gzipBomb(160);
const seen: string[] = [];
let server: http.Server;
let base = "";

const page = (title: string, links: string[]) =>
  `<html><body><h1>${title}</h1>${links.map((l) => `<a href="${l}">${l}</a>`).join("")}</body></html>`;

before(async () => {
  process.on("uncaughtException", record);
  process.on("unhandledRejection", record);
  server = http.createServer((req, res) => {
    const path = req.url ?? "/";
    seen.push(path);
    const html = (body: string) => res.writeHead(200, { "content-type": "text/html" }).end(body);
    if (path === "/") return html(page("Index", ["/p/1", "/enc/evil", "/enc/many", "/bomb", "/p/2", "/p/3"]));
    if (path.startsWith("/p/")) return html(page(`Page ${path.slice(3)}`, []));
    // A chain that ends on the bad page: with one request at a time it is fetched last.
    const chain = /^\/chain\/(\d)$/.exec(path);
    if (chain)
      return html(page(`Chain ${chain[1]}`, [Number(chain[1]) < 2 ? `/chain/${Number(chain[1]) + 1}` : "/enc/evil"]));
    if (path === "/bomb") {
      res.writeHead(200, { "content-type": "text/html", "content-encoding": "gzip" });
      return res.end(bomb);
    }
    const encoding = path === "/enc/many" ? "gzip, gzip, gzip, gzip, gzip, gzip" : "evil";
    res.writeHead(200, { "content-type": "text/html", "content-encoding": encoding });
    res.end(page("Never parsed", ["/p/never"]));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  process.off("uncaughtException", record);
  process.off("unhandledRejection", record);
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

function spider(start: string, concurrentRequests: number): SpiderSpec {
  return {
    name: "hostile",
    startUrls: [`${base}${start}`],
    allowedDomains: ["127.0.0.1"],
    follow: [{ selector: "a" }],
    extract: [
      { name: "page", fields: { url: { meta: "url" }, title: { selector: "h1", text: true, required: true } } },
    ],
    settings: {
      concurrentRequests,
      robotsTxtObey: false,
      allowPrivateNetworks: ["127.0.0.0/8"],
      // No maxResponseBytes: the bomb must be stopped by the default.
    },
  };
}

const titles = (sink: MemorySink) => sink.items.map((i) => String(i.fields.title)).sort();

describe("a crawl with bad encodings and a gzip bomb among good pages", () => {
  const sink = new MemorySink();
  const { logger, lines } = captureLogger("warn");
  let result: Awaited<ReturnType<Crawler["run"]>>;
  let rssGrowthMiB = 0;

  before(async () => {
    seen.length = 0;
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 5);
    try {
      result = await new Crawler({ spider: spider("/", 4), sink, logger }).run();
    } finally {
      clearInterval(sampler);
    }
    rssGrowthMiB = (peak - rss0) / (1024 * 1024);
    await new Promise((r) => setTimeout(r, 50));
  });

  test("finishes, closes the sink and keeps every good page's item", () => {
    assert.equal(result.reason, "finished");
    assert.deepEqual(sink.closed, ["finished"]);
    assert.deepEqual(titles(sink), ["Index", "Page 1", "Page 2", "Page 3"]);
  });

  test("counts each bad page as one error of its kind, without retrying it", () => {
    assert.deepEqual(result.stats.errorsByKind, { decoding: 2, responseTooLarge: 1 });
    assert.equal(result.stats.status.errors, 3);
    for (const p of ["/enc/evil", "/enc/many", "/bomb"]) assert.equal(seen.filter((s) => s === p).length, 1, p);
    assert.ok(!seen.includes("/p/never"), "a body that could not be decoded is never parsed");
  });

  test("logs each failure naming the URL and the encoding", () => {
    const msgs = lines.map((l) => String(l.msg));
    assert.ok(msgs.some((m) => m.includes(`${base}/enc/evil`) && m.includes("Unsupported content-encoding 'evil'")));
    assert.ok(msgs.some((m) => m.includes(`${base}/enc/many`) && m.includes("Too many content-encodings (6")));
    assert.equal(DEFAULT_MAX_RESPONSE_BYTES, 33554432);
    assert.ok(msgs.some((m) => m.includes(`${base}/bomb`) && m.includes("maxResponseBytes 33554432")));
  });

  test("holds memory well below the bomb's 160 MiB and gives the budget back", (t) => {
    t.diagnostic(`RSS grew ${rssGrowthMiB.toFixed(1)} MiB during the crawl`);
    assert.ok(rssGrowthMiB < 100, `RSS grew ${rssGrowthMiB.toFixed(1)} MiB`);
    assert.equal(inFlightBudget.used, 0);
  });

  test("nothing escapes as an uncaught exception or unhandled rejection", () => {
    assert.deepEqual(escaped, []);
  });
});

describe("a crawl whose last fetched page has a bad encoding", () => {
  const sink = new MemorySink();
  let result: Awaited<ReturnType<Crawler["run"]>>;

  before(async () => {
    seen.length = 0;
    result = await new Crawler({ spider: spider("/chain/0", 1), sink, logger: captureLogger("warn").logger }).run();
    await new Promise((r) => setTimeout(r, 50));
  });

  test("the bad page was the last request", () => {
    assert.deepEqual(seen, ["/chain/0", "/chain/1", "/chain/2", "/enc/evil"]);
  });

  test("still finishes, closes the sink once and keeps the items", () => {
    assert.equal(result.reason, "finished");
    assert.deepEqual(sink.closed, ["finished"]);
    assert.deepEqual(titles(sink), ["Chain 0", "Chain 1", "Chain 2"]);
    assert.deepEqual(result.stats.errorsByKind, { decoding: 1 });
    assert.deepEqual(escaped, []);
  });
});
