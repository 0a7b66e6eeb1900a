// Structured data (issue 16, feature 6) against a real site on 127.0.0.1: fields
// from a page's JSON-LD (`jsonld: "Product.offers.price"`) beside CSS selectors,
// items from JSON responses (`itemPath` + `json` JSONPath fields), and the
// validation of both, by field path.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import { Crawler } from "../../runner/crawler.ts";
import { validateCrawlJobSpec } from "../../spec/validate.ts";
import { captureLogger, MemorySink, startSite, type TestSite } from "./helpers.ts";

const PRODUCT_LD = {
  "@context": "https://schema.org",
  "@graph": [
    { "@type": "BreadcrumbList", itemListElement: [{ "@type": "ListItem", position: 1, name: "Books" }] },
    {
      "@type": "schema:Product",
      name: "A Light in the Attic",
      sku: "a897fe39b1053632",
      image: ["/img/1.jpg", "/img/1b.jpg"],
      brand: { "@type": "Brand", name: "Sheldon" },
      offers: [
        { "@type": "Offer", price: "51.77", priceCurrency: "GBP" },
        { "@type": "Offer", price: 49, priceCurrency: "GBP" },
      ],
    },
  ],
};
const ARTICLE_LD = {
  "@context": "https://schema.org",
  "@type": ["Article", "NewsArticle"],
  headline: "Feeds, batched",
};

let site: TestSite;
before(async () => {
  site = await startSite((_host, path, res) => {
    if (path === "/robots.txt") return "";
    if (path === "/product")
      return `<h1>Attic</h1><script type="application/ld+json">${JSON.stringify(PRODUCT_LD)}</script>
        <script type="application/ld+json">{ broken json</script>
        <script type="application/ld+json">${JSON.stringify(ARTICLE_LD)}</script>`;
    if (path === "/api/products") {
      res.setHeader("content-type", "application/json; charset=utf-8");
      res.writeHead(200);
      res.end(
        JSON.stringify({
          page: 1,
          next: "/api/products/2",
          products: [
            { name: "Tipping the Velvet", price: 53.74, tags: ["fiction", "historical"], url: "/p/tipping" },
            { name: "Soumission", price: null, tags: [], url: "/p/soumission" },
            { price: 1 },
          ],
        }),
      );
      return "";
    }
    if (path === "/api/products/2") {
      res.setHeader("content-type", "application/vnd.shop+json");
      res.writeHead(200);
      res.end(JSON.stringify({ page: 2, next: null, products: [{ name: "Sharp Objects", price: 47.82 }] }));
      return "";
    }
    return undefined;
  });
});
after(() => site.close());

const spider = (): SpiderSpec => ({
  name: "structured",
  startUrls: [`${site.url}/product`, `${site.url}/api/products`],
  follow: [{ json: "$.next" }],
  extract: [
    {
      name: "product",
      urlPattern: "/product$",
      fields: {
        title: { selector: "h1", text: true },
        name: { jsonld: "Product.name", required: true },
        sku: { jsonld: "Product.sku" },
        price: { jsonld: "Product.offers.price", type: "number" },
        prices: { jsonld: "Product.offers.price", all: true },
        brand: { jsonld: "Product.brand.name" },
        images: { jsonld: "Product.image", all: true, absolute: true },
        headline: { jsonld: "Article.headline" },
        crumb: { jsonld: "*.itemListElement[0].name" },
      },
    },
    {
      name: "apiProduct",
      itemPath: "$.products[*]",
      fields: {
        name: { json: "$.name", required: true },
        price: { json: "$.price" },
        tags: { json: "$.tags[*]", all: true },
        url: { json: "$.url", absolute: true },
        source: { meta: "url" },
      },
    },
  ],
  settings: { allowPrivateNetworks: ["127.0.0.0/8"] },
});

test("JSON-LD fields beside CSS selectors, and items from a JSON response", async () => {
  assert.deepEqual(await validateCrawlJobSpec({ spider: spider() }), []);
  const sink = new MemorySink();
  const { logger } = captureLogger("info");
  const r = await new Crawler({ spider: spider(), sink, logger }).run();
  assert.equal(r.reason, "finished");
  const products = sink.items.filter((i) => i.type === "product");
  assert.deepEqual(products[0]?.fields, {
    title: "Attic",
    name: "A Light in the Attic",
    sku: "a897fe39b1053632",
    price: 51.77,
    prices: ["51.77", 49],
    brand: "Sheldon",
    images: [`${site.url}/img/1.jpg`, `${site.url}/img/1b.jpg`],
    headline: "Feeds, batched",
    crumb: "Books",
  });
  const api = sink.items.filter((i) => i.type === "apiProduct").map((i) => i.fields);
  assert.deepEqual(api, [
    {
      name: "Tipping the Velvet",
      price: 53.74,
      tags: ["fiction", "historical"],
      url: `${site.url}/p/tipping`,
      source: `${site.url}/api/products`,
    },
    { name: "Soumission", tags: [], url: `${site.url}/p/soumission`, source: `${site.url}/api/products` },
    { name: "Sharp Objects", price: 47.82, tags: [], source: `${site.url}/api/products/2` },
  ]);
  assert.equal(sink.items.length, 4, "the JSON item without its required name is dropped; page 2 came from $.next");
  assert.equal(r.stats.itemsDroppedByReason.missingRequired, 1);
});

test("bad paths and contradictions are named by field path", async () => {
  const bad = spider();
  const [html, json] = bad.extract ?? [];
  Object.assign(html?.fields ?? {}, {
    a: { jsonld: "Product..price" },
    b: { jsonld: "Product.name", selector: "h1" },
  });
  Object.assign(json?.fields ?? {}, { c: { json: "items[*]" }, d: { json: "$.a[?@.x > 1]" }, e: { selector: "h1" } });
  if (json) json.itemSelector = "div";
  bad.follow = [{ json: "$.next", selector: "a" }, { json: "next" }];
  const errors = (await validateCrawlJobSpec({ spider: bad })).map((e) => `${e.path}: ${e.message}`);
  const expect = [
    /^spec\.spider\.extract\[0\]\.fields\.a\.jsonld: invalid JSON-LD path: /,
    /^spec\.spider\.extract\[0\]\.fields\.b\.selector: jsonld takes the value from the page's JSON-LD/,
    /^spec\.spider\.extract\[1\]\.fields\.c\.json: invalid JSONPath: a JSONPath starts with "\$"/,
    /^spec\.spider\.extract\[1\]\.fields\.d\.json: invalid JSONPath: filter expressions/,
    /^spec\.spider\.extract\[1\]\.fields\.e: this rule reads JSON responses/,
    /^spec\.spider\.extract\[1\]\.itemSelector: itemPath \(JSON responses\) and itemSelector \(HTML\) are contradictory/,
    /^spec\.spider\.follow\[0\]\.selector: json \(JSON responses\) and selector \(HTML\) are contradictory/,
    /^spec\.spider\.follow\[1\]\.json: invalid JSONPath/,
  ];
  for (const re of expect)
    assert.ok(
      errors.some((e) => re.test(e)),
      `${re} in\n${errors.join("\n")}`,
    );
  assert.equal(errors.length, expect.length, errors.join("\n"));
});
