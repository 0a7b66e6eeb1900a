// spider.sitemapUrls against a loopback site with a real sitemap tree: robots.txt
// Sitemap lines → a sitemap index → a gzipped urlset; sitemapFollow,
// sitemapRules mapping URLs to extract rules, sitemapModifiedSince on both
// levels, alternate links, a gzip bomb refused at the decoded-size cap, and
// sitemaps read by every shard. Plus the XML reader on its own.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import zlib from "node:zlib";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import { Crawler } from "../../runner/crawler.ts";
import { readSitemap, type SitemapEntry, SitemapError } from "../../runner/sitemap.ts";
import { captureLogger, MemorySink } from "./helpers.ts";

const urlset = (entries: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:xhtml="http://www.w3.org/1999/xhtml">${entries}</urlset>`;
const url = (loc: string, extra = "") => `<url><loc>${loc}</loc>${extra}</url>`;

let base = "";
const hits = new Map<string, number>();
let server: http.Server;

function files(): Record<string, { type: string; body: Buffer | string }> {
  const xml = "application/xml";
  return {
    "/robots.txt": { type: "text/plain", body: `User-agent: *\nAllow: /\nSitemap: ${base}/sitemap_index.xml\n` },
    "/sitemap_index.xml": {
      type: xml,
      body:
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">' +
        `<sitemap><loc>${base}/sitemap-products.xml.gz</loc><lastmod>2030-01-01</lastmod></sitemap>` +
        `<sitemap><loc>${base}/sitemap-blog.xml</loc></sitemap>` +
        `<sitemap><loc>${base}/sitemap-products-old.xml</loc><lastmod>2001-05-01T10:00:00+00:00</lastmod></sitemap>` +
        "</sitemapindex>",
    },
    "/sitemap-products.xml.gz": {
      type: "application/gzip",
      body: zlib.gzipSync(
        urlset(
          url(
            `${base}/product/1`,
            `<lastmod>2030-01-01</lastmod><xhtml:link rel="alternate" hreflang="de" href="${base}/de/product/1"/>`,
          ) +
            url(`${base}/product/2`, "<lastmod>2030-01-01T00:00:00Z</lastmod>") +
            url(`${base}/product/3?a=1&amp;b=2`) +
            url(`${base}/product/4`, "<lastmod>2000-01-01</lastmod>") +
            url(`${base}/about`),
        ),
      ),
    },
    "/sitemap-blog.xml": { type: xml, body: urlset(url(`${base}/blog/1`)) },
    "/sitemap-products-old.xml": { type: xml, body: urlset(url(`${base}/product/9`)) },
    // 64 MiB of XML in ~64 KiB of gzip: refused at the 50 MB cap.
    "/bomb.xml.gz": {
      type: "application/gzip",
      body: zlib.gzipSync(Buffer.concat([Buffer.from(urlset("")), Buffer.alloc(64 * 1024 * 1024, 0x20)]), { level: 9 }),
    },
  };
}

let served: ReturnType<typeof files>;
before(async () => {
  server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const f = served[path];
    if (f) return res.writeHead(200, { "content-type": f.type }).end(f.body);
    const m = /^\/(de\/)?(product|blog)\/(\d+)$|^\/about$/.exec(path);
    if (!m) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": "text/html" }).end(`<h1>${path}</h1>`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  served = files();
});
after(() => new Promise((r) => server.close(r)));

function spider(extra: Partial<SpiderSpec>): SpiderSpec {
  return {
    name: "sitemaps",
    startUrls: [],
    extract: [
      { name: "product", fields: { url: { meta: "url" }, title: { selector: "h1", required: true } } },
      { name: "other", fields: { url: { meta: "url" }, title: { selector: "h1", required: true } } },
    ],
    settings: { allowPrivateNetworks: ["127.0.0.0/8"] },
    ...extra,
  };
}

describe("spider.sitemapUrls (Scrapy's SitemapSpider, declaratively)", () => {
  test("robots.txt → index → gzipped urlset; follow, rules, lastmod and alternates decide; the bomb is refused", async () => {
    hits.clear();
    const sink = new MemorySink();
    const { logger, lines } = captureLogger("info");
    const r = await new Crawler({
      spider: spider({
        sitemapUrls: [`${base}/robots.txt`, `${base}/bomb.xml.gz`],
        sitemapFollow: ["products"],
        // The first matching rule decides: /de/product/1 takes the first, which names no extract rules.
        sitemapRules: [{ pattern: "/de/" }, { pattern: "/product/", extract: ["product"] }],
        sitemapModifiedSince: "2020-01-01",
        sitemapAlternateLinks: true,
      }),
      sink,
      logger,
    }).run();
    assert.equal(r.reason, "finished");
    const got = sink.items.map((i) => `${i.type} ${String(i.fields.title)}`).sort();
    assert.deepEqual(got, [
      "other /de/product/1",
      "product /de/product/1",
      "product /product/1",
      "product /product/2",
      "product /product/3",
    ]);
    for (const p of ["/sitemap-blog.xml", "/sitemap-products-old.xml", "/blog/1", "/product/4", "/product/9", "/about"])
      assert.equal(hits.get(p) ?? 0, 0, `${p} was fetched`);
    assert.equal(r.stats.sitemaps, 2);
    assert.equal(r.stats.requestsDropped.sitemapFollow, 1);
    assert.equal(r.stats.requestsDropped.sitemapLastmod, 2);
    assert.equal(r.stats.requestsDropped.sitemapRules, 1);
    assert.equal(r.stats.errorsByKind.sitemap, 1);
    const bomb = lines.find((l) => String(l.msg).includes("bomb.xml.gz"));
    assert.match(String(bomb?.msg), /decoded size passed 52428800 bytes/);
  });

  test("without sitemapAlternateLinks or rules: every <loc>, every extract rule; robots.txt read even when not obeyed", async () => {
    const sink = new MemorySink();
    const r = await new Crawler({
      spider: spider({
        sitemapUrls: [`${base}/robots.txt`],
        sitemapFollow: ["products\\.xml"],
        settings: { allowPrivateNetworks: ["127.0.0.0/8"], robotsTxtObey: false },
      }),
      sink,
      logger: captureLogger("warn").logger,
    }).run();
    assert.equal(r.reason, "finished");
    const titles = new Set(sink.items.map((i) => String(i.fields.title)));
    assert.deepEqual([...titles].sort(), ["/about", "/product/1", "/product/2", "/product/3", "/product/4"]);
    assert.equal(sink.items.length, 10, "both extract rules on every page");
  });

  test("every shard reads the sitemap and keeps only its own hosts' pages", async () => {
    const perShard = [];
    for (const index of [0, 1]) {
      const sink = new MemorySink();
      await new Crawler({
        spider: spider({ sitemapUrls: [`${base}/sitemap-blog.xml`] }),
        sink,
        logger: captureLogger("warn").logger,
        shard: { index, count: 2 },
      }).run();
      perShard.push(sink.items.length);
    }
    // One host (127.0.0.1): one shard crawls /blog/1 (two rules → 2 items), the other reads the sitemap only.
    assert.deepEqual(perShard.sort(), [0, 2]);
  });
});

describe("readSitemap", () => {
  test("namespaced names, CDATA, entities; the root decides the kind; non-sitemaps are refused", async () => {
    const seen: SitemapEntry[] = [];
    const kind = await readSitemap(
      "http://x/s.xml",
      Buffer.from(
        '<ns:urlset xmlns:ns="http://www.sitemaps.org/schemas/sitemap/0.9"><ns:url><ns:loc><![CDATA[http://x/a?b=1&c=2]]></ns:loc></ns:url>' +
          "<ns:url><ns:loc> http://x/b?d=1&amp;e=2 </ns:loc><ns:lastmod>2024-02-03</ns:lastmod></ns:url><ns:url></ns:url></ns:urlset>",
      ),
      (_k, e) => seen.push(e),
    );
    assert.equal(kind, "urlset");
    assert.deepEqual(
      seen.map((e) => [e.loc, e.lastmod]),
      [
        ["http://x/a?b=1&c=2", undefined],
        ["http://x/b?d=1&e=2", "2024-02-03"],
      ],
    );
    await assert.rejects(
      readSitemap("http://x/page", Buffer.from("<html><body>hi</body></html>"), () => {}),
      (err) => {
        assert.ok(err instanceof SitemapError);
        assert.match(err.message, /http:\/\/x\/page: not a sitemap: the root element is <html>/);
        return true;
      },
    );
    await assert.rejects(
      readSitemap("http://x/s.xml.gz", Buffer.from([0x1f, 0x8b, 1, 2, 3]), () => {}),
      /http:\/\/x\/s\.xml\.gz: not valid gzip/,
    );
  });
});
