// CompiledSelector answers from the page index what cheerio answers by
// walking the tree: the same elements, in the same order, page-wide and
// inside a scope, on well-formed, malformed and heavy pages.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Element } from "domhandler";
import { heavyPageHtml } from "../../bench/crawl/heavy-site.ts";
import { CompiledSelector, PARSE_LIMITS, pageIndexOf, parseHtml } from "../../runner/html.ts";
import { createCatalogue } from "../fixtures/catalogue.ts";

const SELECTORS = [
  "a",
  "a[href]",
  "a[href], area[href]",
  "ul.pager li.next a",
  "article.product_pod h3 a",
  "article.product_page",
  "h1",
  "p.price_color",
  "p.instock.availability",
  "table tr:first-child td",
  "tr:nth-child(2) > td",
  "img",
  "a.tag",
  ".price_color",
  "[class~=row] > div",
  "div p, h1, td",
  "li:not(.active) a",
  "div:has(> img)",
  "p + p",
  "h3 ~ div",
  "script[type='application/ld+json']",
  "*",
  "DIV.ROW",
  "a:first",
  "a:eq(2)",
  ":scope h1",
  "> div",
];

function pages(): string[] {
  const cat = createCatalogue({ products: 60, perPage: 20, seed: 3 });
  const out = [heavyPageHtml(cat, { listing: 1 }), heavyPageHtml(cat, { listing: 2 })];
  for (const id of [1, 2, 3, 6]) out.push(heavyPageHtml(cat, { product: id }));
  out.push(
    `<html><body><ul class=breadcrumb><li><a href=/>Home</a><li><a href=/b>Books</a></ul></span></div>
<article class=product_page><div class="row"><div class=item><img src=x.jpg></div>
<h1>T</h1><p class=price_color>£1.00<p class="instock availability"> In stock (3 available)
<p><p>two<table><tr><th>UPC<td>abc<tr><th>x<td>y</table></article><p>after`,
  );
  return out;
}

test("page-wide matches equal cheerio's, in document order", () => {
  for (const html of pages()) {
    const $ = parseHtml(html, "https://example.test/");
    assert.ok(pageIndexOf($));
    for (const sel of SELECTORS) {
      const want = $(sel).toArray();
      const got = new CompiledSelector(sel).select($);
      assert.equal(got.length, want.length, sel);
      assert.ok(
        got.every((el, i) => el === want[i]),
        sel,
      );
    }
  }
});

test("scoped matches equal cheerio's find(), for every kind of scope", () => {
  for (const html of pages()) {
    const $ = parseHtml(html, "https://example.test/");
    const scopes = ["article", "div.row", "html", "body", "li", "table", "tr"].flatMap(
      (s) => $(s).toArray().slice(0, 5) as Element[],
    );
    for (const scope of scopes) {
      for (const sel of SELECTORS) {
        const want = $(scope).find(sel).toArray();
        const got = new CompiledSelector(sel).select($, scope);
        assert.equal(got.length, want.length, `${sel} in <${scope.name}>`);
        assert.ok(
          got.every((el, i) => el === want[i]),
          `${sel} in <${scope.name}>`,
        );
      }
    }
  }
});

test("an invalid selector throws at select(), like cheerio", () => {
  const $ = parseHtml("<p>x</p>", "https://example.test/");
  assert.throws(() => new CompiledSelector("p[").select($));
});

test("the index covers the limits: a page at the node limit still indexes every element", () => {
  const html = `<div>${"<i></i>".repeat(1000)}</div>`;
  const $ = parseHtml(html, "https://example.test/", { ...PARSE_LIMITS, maxNodes: 5000 });
  assert.equal(pageIndexOf($)?.elements.length, $("*").length);
});

test("the page's $ is a full cheerio API on the parsed tree, made on first use", () => {
  const $ = parseHtml('<html><body><h1 id="t"> Title </h1><p class="x">a</p><p>b</p></body></html>', "https://e.test/");
  assert.equal(typeof $, "function");
  assert.equal($("h1").first().text().trim(), "Title");
  assert.equal($("p").length, 2);
  assert.equal($.root().find("p.x").text(), "a");
  assert.match($.html(), /<h1 id="t">/);
  // The index and cheerio see the same nodes.
  assert.equal(new CompiledSelector("h1").select($)[0], $("h1")[0]);
});
