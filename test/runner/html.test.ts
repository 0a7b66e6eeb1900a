// Page parsing: htmlparser2 builds the tree in linear time, a page nested
// deeper or holding more nodes than the limits fails fast with an error naming
// its URL, and bodies are decoded with the right charset.
import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeBody, looksLikeHtml, PARSE_LIMITS, ParseError, parseHtml } from "../../runner/html.ts";

const nested = (n: number) => `<html><body>${"<div>".repeat(n)}<a href="/x">x</a>${"</div>".repeat(n)}</body></html>`;

test("malformed HTML still gives its fields (implied closes, unquoted attributes, stray end tags)", () => {
  const $ = parseHtml(
    `<html><head><title>T</title><body><ul class=crumbs><li><a href=/>Home</a><li>Books</ul></span></div>
<article class=product_page><h1>A &amp; B</h1><p class=price_color>£12.50<p class="instock">In stock
<table><tr><th>UPC<td>abc123<tr><th>Type<td>Books & more</table></article>`,
    "http://a.example/p",
  );
  assert.equal($("article.product_page h1").text(), "A & B");
  assert.equal($("p.price_color").text().trim(), "£12.50");
  assert.equal($("table tr:first-child td").text().trim(), "abc123");
  assert.deepEqual(
    $("ul.crumbs li")
      .toArray()
      .map((li) => $(li).text()),
    ["Home", "Books"],
  );
  // Like lxml (Scrapy), and unlike a browser, no <tbody> is made up.
  assert.equal($("table > tr").length, 2);
});

test("a page nested deeper than the limit fails fast, naming the URL and the limit", () => {
  assert.equal(parseHtml(nested(PARSE_LIMITS.maxDepth - 3), "http://a.example/ok")("a").length, 1);
  const started = performance.now();
  assert.throws(
    () => parseHtml(nested(200_000), "http://a.example/deep"),
    (err: unknown) =>
      err instanceof ParseError &&
      err.url === "http://a.example/deep" &&
      /http:\/\/a\.example\/deep/.test(err.message) &&
      err.message.includes(`nested more than ${PARSE_LIMITS.maxDepth} deep`),
  );
  assert.ok(performance.now() - started < 2000, "refused within the first tags, not after parsing 200k levels");
});

test("depth counts open elements: closed siblings and implied closes do not add up", () => {
  const limits = { maxDepth: 4, maxNodes: 1000 };
  const siblings = `<html><body>${"<div><p>x</p></div>".repeat(100)}</body></html>`;
  assert.equal(parseHtml(siblings, "http://a.example/s", limits)("p").length, 100);
  const unclosedParagraphs = `<html><body>${"<p>x".repeat(100)}</body></html>`;
  assert.equal(parseHtml(unclosedParagraphs, "http://a.example/p", limits)("p").length, 100);
  assert.throws(() => parseHtml(nested(4), "http://a.example/d", limits), /nested more than 4 deep/);
});

test("a page with more nodes than the limit fails", () => {
  const limits = { maxDepth: 512, maxNodes: 1000 };
  const wide = `<html><body>${"<br>".repeat(2000)}</body></html>`;
  assert.throws(
    () => parseHtml(wide, "http://a.example/wide", limits),
    /http:\/\/a\.example\/wide: more than 1000 nodes/,
  );
  assert.equal(parseHtml(`<html><body>${"<br>".repeat(900)}</body></html>`, "u", limits)("br").length, 900);
});

test("decodeBody: Content-Type charset, else <meta charset>, else UTF-8; looksLikeHtml sniffs the start", () => {
  const latin1 = Buffer.from("<p>caf\xe9</p>", "latin1");
  assert.equal(decodeBody(latin1, "text/html; charset=ISO-8859-1"), "<p>café</p>");
  const meta = Buffer.concat([Buffer.from('<meta charset="windows-1252">'), Buffer.from([0x80])]);
  assert.equal(decodeBody(meta, "text/html").slice(-1), "€");
  assert.equal(decodeBody(Buffer.from("<p>é</p>"), "text/html; charset=nonsense"), "<p>é</p>");
  assert.ok(looksLikeHtml(Buffer.from("  <!DOCTYPE html><html>")));
  assert.ok(!looksLikeHtml(Buffer.from('{"html": "<html>"}')));
});
