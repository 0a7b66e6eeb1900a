// settings.proxy against a real forward proxy on loopback (forward-proxy.ts)
// that counts what it forwarded: pages and robots.txt go through it, the site
// sees nothing else; credentials from the URL; rotation per request and per
// host; noProxy; and the address guard still judging the *target* (while the
// proxy itself may sit on a private address). NO_PROXY parsing as a unit.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import type { ResolveAll } from "../../net/address-guard.ts";
import { Crawler } from "../../runner/crawler.ts";
import { NoProxyList, proxyPlanFromEnv, proxyPlanFromSettings } from "../../runner/proxy.ts";
import { type ForwardProxy, startForwardProxy, VIA } from "./forward-proxy.ts";
import { captureLogger, MemorySink, startSite, type TestSite } from "./helpers.ts";

// Test names: what the crawler's resolver answers (the guard judges these) …
const ANSWERS: Record<string, string> = {
  "a.test": "127.0.0.1",
  "b.test": "127.0.0.1",
  "direct.test": "127.0.0.1",
  "inside.test": "10.1.2.3",
  "public.test": "93.184.216.34",
};
const resolve: ResolveAll = (hostname, _o, cb) =>
  ANSWERS[hostname]
    ? cb(null, [{ address: ANSWERS[hostname] as string, family: 4 }])
    : cb(Object.assign(new Error(`no test address for ${hostname}`), { code: "ENOTFOUND" }), []);
// … while the proxy sends every name to the loopback site.
const toLoopback = () => "127.0.0.1";

let site: TestSite;
const direct: string[] = []; // requests that reached the site without the proxy's via header
before(async () => {
  site = await startSite((host, path, _res, req) => {
    if (req.headers.via !== VIA) direct.push(`${host}${path}`);
    if (path === "/robots.txt") return "User-agent: *\nAllow: /\n";
    if (path === "/") return `<h1>${host} home</h1><a href="/p1">1</a><a href="/p2">2</a><a href="/p3">3</a>`;
    return /^\/p\d$/.test(path) ? `<h1>${host}${path}</h1>` : undefined;
  });
});
after(() => site?.close());

async function crawl(hosts: string[], settings: SpiderSpec["settings"]) {
  const spider: SpiderSpec = {
    name: "proxied",
    startUrls: hosts.map((h) => `http://${h}:${site.port}/`),
    follow: [{}],
    extract: [{ name: "page", fields: { title: { selector: "h1", text: true, required: true } } }],
    settings: { allowPrivateNetworks: ["127.0.0.0/8"], ...settings },
  };
  const sink = new MemorySink();
  const r = await new Crawler({ spider, sink, logger: captureLogger("warn").logger, resolve }).run();
  return { r, titles: sink.items.map((i) => String(i.fields.title)).sort() };
}

describe("settings.proxy: a forward proxy on loopback", () => {
  let p1: ForwardProxy;
  let p2: ForwardProxy;
  before(async () => {
    p1 = await startForwardProxy({ address: toLoopback });
    p2 = await startForwardProxy({ address: toLoopback });
  });
  after(async () => {
    await p1?.close();
    await p2?.close();
  });

  test("every request, robots.txt included, goes through the proxy in absolute form", async () => {
    direct.length = 0;
    p1.forwarded.length = 0;
    const { r, titles } = await crawl(["a.test"], { proxy: { urls: [p1.url] } });
    assert.equal(r.reason, "finished");
    assert.deepEqual(titles, ["a.test home", "a.test/p1", "a.test/p2", "a.test/p3"]);
    const port = site.port;
    assert.deepEqual(
      [...p1.forwarded].sort(),
      ["/", "/p1", "/p2", "/p3", "/robots.txt"].map((p) => `GET a.test:${port}${p}`).sort(),
    );
    assert.deepEqual(direct, [], "the site saw no request that bypassed the proxy");
  });

  test("rotation perRequest spreads requests over the proxies; perHost pins each host to one", async () => {
    p1.forwarded.length = 0;
    p2.forwarded.length = 0;
    await crawl(["a.test", "b.test"], { proxy: { urls: [p1.url, p2.url] } });
    assert.equal(p1.forwarded.length + p2.forwarded.length, 10);
    assert.ok(p1.forwarded.length >= 3 && p2.forwarded.length >= 3, `${p1.forwarded.length} / ${p2.forwarded.length}`);

    p1.forwarded.length = 0;
    p2.forwarded.length = 0;
    await crawl(["a.test", "b.test"], { proxy: { urls: [p1.url, p2.url], rotation: "perHost" } });
    for (const host of ["a.test", "b.test"]) {
      const via1 = p1.forwarded.filter((f) => f.includes(host)).length;
      const via2 = p2.forwarded.filter((f) => f.includes(host)).length;
      assert.equal(via1 + via2, 5, host);
      assert.ok(via1 === 0 || via2 === 0, `${host} went through both proxies (${via1} / ${via2})`);
    }
  });

  test("noProxy hosts go direct (still through the address guard)", async () => {
    direct.length = 0;
    p1.forwarded.length = 0;
    const { titles } = await crawl(["a.test", "direct.test"], { proxy: { urls: [p1.url], noProxy: [".direct.test"] } });
    assert.equal(titles.length, 8);
    assert.equal(p1.forwarded.filter((f) => f.includes("direct.test")).length, 0);
    assert.equal(direct.filter((d) => d.startsWith("direct.test")).length, 5);
    assert.equal(direct.filter((d) => d.startsWith("a.test")).length, 0);
  });

  test("the guard judges the target before the proxy sees it; the proxy itself may be private", async () => {
    p1.forwarded.length = 0;
    // Only 127.0.0.1 is allowed: inside.test (10.1.2.3) is refused, public.test passes, and the
    // proxy on loopback is used although loopback is not in the list for targets.
    const { r, titles } = await crawl(["inside.test", "public.test"], {
      allowPrivateNetworks: false,
      robotsTxtObey: false,
      proxy: { urls: [p1.url] },
    });
    assert.deepEqual(titles, ["public.test home", "public.test/p1", "public.test/p2", "public.test/p3"]);
    assert.equal(p1.forwarded.filter((f) => f.includes("inside.test")).length, 0);
    assert.equal(r.stats.errorsByKind.addressBlocked, 1);
  });
});

describe("proxy credentials from the URL", () => {
  let p: ForwardProxy;
  before(async () => {
    p = await startForwardProxy({ credentials: "crawler:s3cr%t", address: toLoopback });
  });
  after(() => p?.close());

  test("user:password@ is sent as Proxy-Authorization (percent-decoded)", async () => {
    const { r, titles } = await crawl(["a.test"], {
      robotsTxtObey: false,
      proxy: { urls: [`http://crawler:s3cr%25t@127.0.0.1:${p.port}`] },
    });
    assert.equal(r.stats.status.errors, 0);
    assert.equal(titles.length, 4);
    assert.equal(p.refused, 0);
  });

  test("wrong credentials: a proxy error naming the URL, retried, and nothing reaches the site", async () => {
    const before = p.forwarded.length;
    const { r } = await crawl(["a.test"], {
      robotsTxtObey: false,
      retryTimes: 1,
      proxy: { urls: [`http://crawler:wrong@127.0.0.1:${p.port}`] },
    });
    assert.equal(r.stats.errorsByKind.proxy, 1);
    assert.equal(r.stats.retries, 1);
    assert.equal(p.forwarded.length, before);
    assert.ok(p.refused >= 2);
  });
});

describe("proxy credentials from a Secret: settings.proxy.credentialsSecretRef, read from the env the operator sets", () => {
  const PASSWORD = "pr0xy-pa55word-never-logged";
  let p: ForwardProxy;
  const saved = { ...process.env };
  before(async () => {
    p = await startForwardProxy({ credentials: `crawler:${PASSWORD}`, address: toLoopback });
  });
  after(async () => {
    for (const k of ["FEEDCRAWL_PROXY_USERNAME", "FEEDCRAWL_PROXY_PASSWORD", "FEEDCRAWL_PROXY_CREDENTIALS"])
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    await p?.close();
  });

  /** A crawl through `p` with a debug logger: every line it wrote comes back. */
  async function crawlWithSecret(
    ref: NonNullable<NonNullable<SpiderSpec["settings"]>["proxy"]>["credentialsSecretRef"],
  ) {
    const spider: SpiderSpec = {
      name: "proxied",
      startUrls: [`http://a.test:${site.port}/`],
      follow: [{}],
      extract: [{ name: "page", fields: { title: { selector: "h1", text: true, required: true } } }],
      settings: {
        allowPrivateNetworks: ["127.0.0.0/8"],
        proxy: { urls: [`http://127.0.0.1:${p.port}`], ...(ref ? { credentialsSecretRef: ref } : {}) },
      },
    };
    const sink = new MemorySink();
    const { logger, lines } = captureLogger("debug");
    const r = await new Crawler({ spider, sink, logger, resolve }).run();
    return { r, items: sink.items.length, log: JSON.stringify(lines) };
  }

  test("username and password keys: Proxy-Authorization reaches the proxy; the password is never logged", async () => {
    process.env.FEEDCRAWL_PROXY_USERNAME = "crawler";
    process.env.FEEDCRAWL_PROXY_PASSWORD = PASSWORD;
    const before = p.forwarded.length;
    const { r, items, log } = await crawlWithSecret({ name: "proxy-auth" });
    assert.equal(r.stats.status.errors, 0);
    assert.equal(items, 4);
    assert.equal(p.refused, 0);
    assert.equal(p.forwarded.length - before, 5, "robots.txt and 4 pages, all through the proxy");
    assert.ok(!log.includes(PASSWORD) && !log.includes(Buffer.from(`crawler:${PASSWORD}`).toString("base64")));
  });

  test("one key holding user:password (FEEDCRAWL_PROXY_CREDENTIALS) works the same; wrong ones get 407s", async () => {
    delete process.env.FEEDCRAWL_PROXY_USERNAME;
    delete process.env.FEEDCRAWL_PROXY_PASSWORD;
    process.env.FEEDCRAWL_PROXY_CREDENTIALS = `crawler:${PASSWORD}`;
    const ok = await crawlWithSecret({ name: "proxy-auth", key: "credentials" });
    assert.equal(ok.items, 4);
    assert.equal(p.refused, 0);
    process.env.FEEDCRAWL_PROXY_CREDENTIALS = "crawler:wrong";
    const bad = await crawlWithSecret({ name: "proxy-auth", key: "credentials" });
    assert.equal(bad.items, 0);
    assert.ok(p.refused > 0);
    delete process.env.FEEDCRAWL_PROXY_CREDENTIALS;
  });

  test("credentials missing from the env: the crawl fails naming the variables, not guessing", async () => {
    await assert.rejects(
      crawlWithSecret({ name: "proxy-auth" }),
      /FEEDCRAWL_PROXY_USERNAME and FEEDCRAWL_PROXY_PASSWORD/,
    );
    assert.throws(
      () =>
        proxyPlanFromSettings(
          { urls: ["http://p:1"], credentialsSecretRef: { name: "s", key: "k" } },
          {
            FEEDCRAWL_PROXY_CREDENTIALS: "no-colon",
          },
        ),
      /is not user:password/,
    );
    const plan = proxyPlanFromSettings(
      { urls: ["http://p:1"], credentialsSecretRef: { name: "s" } },
      {
        FEEDCRAWL_PROXY_USERNAME: "u",
        FEEDCRAWL_PROXY_PASSWORD: "p:w",
      },
    );
    assert.deepEqual(plan.credentials, { username: "u", password: "p:w" });
  });
});

describe("NO_PROXY and the proxy environment", () => {
  test("NoProxyList: names with their subdomains, leading dots and *., IPs, CIDRs, ports, *", () => {
    const list = new NoProxyList(["example.com", ".corp.test", "*.internal", "10.0.0.0/8", "192.168.1.5", "svc:8080"]);
    assert.ok(list.matches("example.com", 80));
    assert.ok(list.matches("www.example.com", 443));
    assert.ok(!list.matches("notexample.com", 80));
    assert.ok(list.matches("a.corp.test", 80) && list.matches("corp.test", 80));
    assert.ok(list.matches("db.internal", 80));
    assert.ok(list.matches("10.2.3.4", 80) && !list.matches("11.2.3.4", 80));
    assert.ok(list.matches("192.168.1.5", 80) && !list.matches("192.168.1.6", 80));
    assert.ok(list.matches("svc", 8080) && !list.matches("svc", 80));
    assert.ok(new NoProxyList(["*"]).matches("anything.example", 80));
  });

  test("proxyPlanFromEnv: per scheme as curl and Scrapy read it; lower case wins", () => {
    assert.equal(proxyPlanFromEnv({}), undefined);
    assert.deepEqual(
      proxyPlanFromEnv({ HTTP_PROXY: "http://upper:1", http_proxy: "http://lower:1", NO_PROXY: "a.test, b.test" }),
      { http: ["http://lower:1"], https: [], rotation: "perRequest", noProxy: ["a.test", "b.test"] },
    );
    assert.deepEqual(proxyPlanFromEnv({ HTTPS_PROXY: "http://p:3128" })?.https, ["http://p:3128"]);
  });
});
