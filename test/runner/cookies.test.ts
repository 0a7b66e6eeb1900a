// Cookies (settings.cookiesEnabled, a follow rule's `cookies: false`) against a
// loopback site of named hosts that all resolve to 127.0.0.1: a cookie set on
// one page is required on the next, one set on a redirect is kept, and RFC
// 6265's scoping holds (host-only cookies stay on their host, a Domain cookie
// reaches its subdomains, public-suffix and foreign Domain attributes are refused).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import type { ResolveAll } from "../../net/address-guard.ts";
import { Crawler } from "../../runner/crawler.ts";
import { captureLogger, MemorySink, startSite } from "./helpers.ts";

const HOSTS = ["www.example.co.uk", "shop.example.co.uk", "other.co.uk"];
const resolve: ResolveAll = (hostname, _options, callback) =>
  HOSTS.includes(hostname)
    ? callback(null, [{ address: "127.0.0.1", family: 4 }])
    : callback(Object.assign(new Error(`no test address for ${hostname}`), { code: "ENOTFOUND" }), []);

async function crawl(settings: SpiderSpec["settings"]) {
  const seen = new Map<string, string | undefined>(); // `host path` -> the Cookie header it received
  let port = 0;
  const site = await startSite((host, path, res, req) => {
    seen.set(`${host} ${path}`, req.headers.cookie);
    const cookie = req.headers.cookie ?? "";
    const h1 = (t: string) => `<h1>${t}</h1>`;
    if (host === "www.example.co.uk" && path === "/") {
      res.setHeader("set-cookie", [
        "session=s1; Path=/; HttpOnly",
        "site=w1; Domain=example.co.uk; Path=/",
        "tld=bad; Domain=co.uk; Path=/",
        "foreign=bad; Domain=other.co.uk; Path=/",
      ]);
      return (
        h1("home") +
        '<a href="/members">m</a><a href="/login">l</a><a class="anon" href="/anon">a</a>' +
        `<a href="http://shop.example.co.uk:${port}/">shop</a><a href="http://other.co.uk:${port}/">other</a>`
      );
    }
    if (path === "/members") {
      if (!/(^|; )session=s1(;|$)/.test(cookie)) res.statusCode = 403;
      return h1(res.statusCode === 403 ? "denied" : "members");
    }
    if (path === "/login") {
      res.statusCode = 302;
      res.setHeader("location", "/account");
      res.setHeader("set-cookie", "auth=ok; Path=/account");
      return "";
    }
    if (path === "/account") {
      if (!cookie.includes("auth=ok")) res.statusCode = 403;
      return h1(res.statusCode === 403 ? "denied" : "account");
    }
    if (path === "/anon") {
      res.setHeader("set-cookie", "anon=1; Path=/");
      return `${h1("anon")}<a href="/check">check</a>`;
    }
    return h1(`${host}${path}`);
  });
  port = site.port;
  try {
    const spider: SpiderSpec = {
      name: "cookies",
      startUrls: [`http://www.example.co.uk:${port}/`],
      follow: [{ selector: "a.anon", cookies: false }, { selector: "a" }],
      extract: [{ name: "page", fields: { title: { selector: "h1", text: true, required: true } } }],
      settings: { allowPrivateNetworks: ["127.0.0.0/8"], robotsTxtObey: false, ...settings },
    };
    const sink = new MemorySink();
    const r = await new Crawler({ spider, sink, logger: captureLogger("warn").logger, resolve }).run();
    assert.equal(r.reason, "finished");
    return { seen, titles: sink.items.map((i) => String(i.fields.title)).sort(), stats: r.stats };
  } finally {
    await site.close();
  }
}

describe("cookies (on by default, as Scrapy's COOKIES_ENABLED)", () => {
  test("a cookie set on one page opens the next; one set on a redirect is kept", async () => {
    const { seen, titles } = await crawl({});
    assert.ok(titles.includes("members"), `items: ${titles.join(", ")}`);
    assert.ok(titles.includes("account"), `items: ${titles.join(", ")}`);
    assert.ok(!titles.includes("denied"));
    assert.equal(seen.get("www.example.co.uk /"), undefined, "the first request has no cookie yet");
    assert.equal(seen.get("www.example.co.uk /members"), "session=s1; site=w1");
    // Path=/account: only sent below /account.
    assert.match(seen.get("www.example.co.uk /account") ?? "", /auth=ok/);
    assert.doesNotMatch(seen.get("www.example.co.uk /members") ?? "", /auth=/);
  });

  test("scoping: host-only stays home, Domain=example.co.uk reaches shop., co.uk and foreign domains refused", async () => {
    const { seen } = await crawl({});
    assert.ok(seen.has("shop.example.co.uk /") && seen.has("other.co.uk /"), "both other hosts were crawled");
    assert.equal(seen.get("shop.example.co.uk /"), "site=w1");
    assert.equal(seen.get("other.co.uk /"), undefined);
  });

  test("a follow rule with cookies: false neither sends nor stores them", async () => {
    const { seen } = await crawl({});
    assert.ok(seen.has("www.example.co.uk /anon"));
    assert.equal(seen.get("www.example.co.uk /anon"), undefined);
    // /check is found on /anon by the ordinary rule: it carries the jar, but not anon=1 (never stored).
    assert.equal(seen.get("www.example.co.uk /check"), "session=s1; site=w1");
  });

  test("cookiesEnabled: false sends no Cookie header at all", async () => {
    const { seen, titles } = await crawl({ cookiesEnabled: false });
    assert.ok(seen.size >= 7, `pages seen: ${[...seen.keys()].join(", ")}`);
    assert.deepEqual(
      [...seen].filter(([, c]) => c !== undefined),
      [],
    );
    assert.ok(!titles.includes("members") && !titles.includes("account"));
  });

  test("an explicit Cookie header is sent as written, the jar's other cookies after it", async () => {
    const { seen } = await crawl({ headers: { Cookie: "session=mine; pref=dark" } });
    assert.equal(seen.get("www.example.co.uk /"), "session=mine; pref=dark");
    assert.equal(seen.get("www.example.co.uk /check"), "session=mine; pref=dark; site=w1");
  });
});
