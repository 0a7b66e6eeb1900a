// Manifest validation: every problem listed by field path (more than TypeBox's
// default of 8), Scrapy FEEDS keys accepted, bare spider specs wrapped; and the
// `feedcrawl validate` command's output and exit codes.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import { stringify } from "yaml";
import { loadManifest, nameProblem, validateCrawlJobSpec } from "../../spec/validate.ts";

const run = promisify(execFile);
const root = new URL("../../", import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), "validate-test-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const badSpec = {
  spider: {
    name: "Bad Name",
    startUrls: ["ftp://files.example/", "http://other.example/"],
    allowedDomains: ["https://books.example/", "books.example"],
    colour: "blue",
    follow: [{ selector: "ul.pager a[", allow: ["(unclosed"], deny: ["ok", "[z-a]"] }],
    extract: [
      {
        name: "product",
        urlPattern: "*bad",
        fields: {
          price: { selector: "p.price_color", regex: "([0-9.]+", type: "float" },
          image: { selector: "img", absolute: true },
          title: { selector: "h1::text", text: true, attr: "title" },
          stock: { selector: "p", required: true, default: 0, bogus: 1 },
        },
      },
    ],
    settings: {
      concurrentRequests: 4,
      concurrentRequestsPerDomain: 8,
      retryTimes: -1,
      allowPrivateNetworks: ["10.0.0.0/40"],
      autoThrottle: { enabled: true, startDelayMs: 90_000, maxDelayMs: 60_000 },
    },
  },
  feeds: { "s3://bucket/items.jsonl": { format: "yaml" } },
  extra: true,
};

const expectedPaths = [
  "spec.extra",
  "spec.spider.colour",
  "spec.spider.name",
  "spec.spider.startUrls[0]",
  "spec.spider.startUrls[1]",
  "spec.spider.allowedDomains[0]",
  "spec.spider.follow[0].selector",
  "spec.spider.follow[0].allow[0]",
  "spec.spider.follow[0].deny[1]",
  "spec.spider.extract[0].urlPattern",
  "spec.spider.extract[0].fields.price.regex",
  "spec.spider.extract[0].fields.price.type",
  "spec.spider.extract[0].fields.image.absolute",
  "spec.spider.extract[0].fields.title.selector",
  "spec.spider.extract[0].fields.title.text",
  "spec.spider.extract[0].fields.stock.bogus",
  "spec.spider.extract[0].fields.stock.required",
  "spec.spider.settings.concurrentRequestsPerDomain",
  "spec.spider.settings.retryTimes",
  "spec.spider.settings.allowPrivateNetworks[0]",
  "spec.spider.settings.autoThrottle.startDelayMs",
  'spec.feeds["s3://bucket/items.jsonl"].format',
];

describe("validateCrawlJobSpec", () => {
  test("lists every problem with its field path", async () => {
    const errors = await validateCrawlJobSpec(badSpec);
    const paths = errors.map((e) => e.path);
    for (const p of expectedPaths) assert.ok(paths.includes(p), `missing ${p} in\n${paths.join("\n")}`);
    assert.ok(errors.length > 8, "more than TypeBox's default cap of 8 errors");
    const msg = (p: string) => errors.find((e) => e.path === p)?.message ?? "";
    assert.equal(msg("spec.extra"), "unknown field");
    assert.match(msg("spec.spider.startUrls[0]"), /http or https/);
    assert.match(msg("spec.spider.startUrls[1]"), /not in allowedDomains/);
    assert.match(msg("spec.spider.follow[0].selector"), /invalid CSS selector/);
    assert.match(msg("spec.spider.extract[0].fields.price.regex"), /invalid regular expression/);
    assert.match(msg("spec.spider.extract[0].fields.image.absolute"), /needs attr/);
    assert.match(msg("spec.spider.settings.concurrentRequestsPerDomain"), /more than concurrentRequests/);
  });

  test("the example manifest is valid", async () => {
    const m = await loadManifest(join(root, "examples/books-local.yaml"));
    assert.equal(m.kind, "CrawlJob");
    assert.equal(m.name, "books-local");
    assert.deepEqual(await validateCrawlJobSpec(m.spec), []);
  });

  test("a spec that is not an object is one error", async () => {
    assert.deepEqual(
      (await validateCrawlJobSpec("nope")).map((e) => e.path),
      ["spec"],
    );
    assert.deepEqual(
      (await validateCrawlJobSpec({})).map((e) => e.path),
      ["spec.spider"],
    );
  });
});

describe("loadManifest", () => {
  test("wraps a bare spider spec and keeps the spider's name", async () => {
    const file = join(tmp, "bare.yaml");
    writeFileSync(
      file,
      stringify({
        name: "bare",
        startUrls: ["https://books.example/"],
        extract: [{ name: "p", fields: { t: { selector: "h1" } } }],
      }),
    );
    const m = await loadManifest(file);
    assert.equal(m.kind, "SpiderSpec");
    assert.equal(m.name, "bare");
    assert.equal(m.spec.spider.name, "bare");
    assert.deepEqual(await validateCrawlJobSpec(m.spec), []);
  });

  test("accepts Scrapy's snake_case FEEDS keys", async () => {
    const file = join(tmp, "scrapy-feeds.yaml");
    writeFileSync(
      file,
      stringify({
        spider: {
          name: "s",
          startUrls: ["https://books.example/"],
          extract: [{ name: "p", fields: { t: { selector: "h1" } } }],
        },
        feeds: {
          "file:///tmp/out-%(batch_id)d.jsonl": { format: "jsonlines", batch_item_count: 10, store_empty: true },
        },
      }),
    );
    const m = await loadManifest(file);
    const opts = m.spec.feeds?.["file:///tmp/out-%(batch_id)d.jsonl"] as Record<string, unknown>;
    assert.equal(opts.batchItemCount, 10);
    assert.equal(opts.storeEmpty, true);
    assert.deepEqual(await validateCrawlJobSpec(m.spec), []);
  });

  test("rejects a manifest of another kind, naming the file", async () => {
    const file = join(tmp, "pod.yaml");
    writeFileSync(file, "apiVersion: v1\nkind: Pod\nmetadata: { name: x }\n");
    await assert.rejects(loadManifest(file), /pod\.yaml: kind is "Pod"/);
  });
});

describe("feedcrawl validate", () => {
  const cli = (file: string) =>
    run(process.execPath, [join(root, "bin/feedcrawl.ts"), "validate", file]).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );

  test("prints OK and exits 0 for a valid manifest", async () => {
    const r = await cli(join(root, "examples/books-local.yaml"));
    assert.equal(r.code, 0);
    assert.equal(r.stdout, "OK\n");
  });

  test("prints every error as `path: message` and exits 2", async () => {
    const file = join(tmp, "bad.yaml");
    writeFileSync(
      file,
      stringify({ apiVersion: "feedcrawl.io/v1alpha1", kind: "CrawlJob", metadata: { name: "bad" }, spec: badSpec }),
    );
    const r = await cli(file);
    assert.equal(r.code, 2);
    const lines = r.stdout.trim().split("\n");
    for (const p of expectedPaths)
      assert.ok(
        lines.some((l) => l.startsWith(`${p}: `)),
        `missing ${p}`,
      );
    assert.match(r.stderr, /bad\.yaml: \d+ errors/);
  });
});

describe("what the API server would refuse, refused locally", () => {
  test("metadata.name must be an RFC 1123 subdomain (it ends up in feed paths)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "names-"));
    try {
      for (const bad of ["../../x", "Upper", "a_b", "-a", "a/b", ""]) {
        const file = join(dir, "job.yaml");
        writeFileSync(
          file,
          stringify({ apiVersion: "feedcrawl.io/v1alpha1", kind: "CrawlJob", metadata: { name: bad }, spec: {} }),
        );
        await assert.rejects(loadManifest(file), /metadata\.name .*(RFC 1123|non-empty)/, bad);
      }
      assert.equal(nameProblem("books-2026.daily"), undefined);
      assert.equal(nameProblem(undefined), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("header values with CR, LF or NUL, and a non-http(s) webhook URL", async () => {
    const spec = {
      spider: {
        name: "s",
        startUrls: ["https://example.com/"],
        extract: [{ name: "p", fields: { t: { selector: "h1" } } }],
        settings: { headers: { "X-Ok": "fine", "X-Split": "a\r\nInjected: yes", "X-Nul": "a\0b" } },
      },
      ingest: { webhook: { url: "ftp://backend.example/ingest", signingSecretRef: { name: "s" } } },
    };
    const byPath = new Map((await validateCrawlJobSpec(spec)).map((e) => [e.path, e.message]));
    assert.match(byPath.get('spec.spider.settings.headers["X-Split"]') ?? "", /CR, LF or NUL/);
    assert.match(byPath.get('spec.spider.settings.headers["X-Nul"]') ?? "", /CR, LF or NUL/);
    assert.equal(byPath.has('spec.spider.settings.headers["X-Ok"]'), false);
    assert.equal(byPath.get("spec.ingest.webhook.url"), "must be an absolute http(s) URL");
  });
});

describe("crawler features (issue 16): cookies, Crawl-delay, proxies, sitemaps", () => {
  const spider = (extra: Record<string, unknown>, settings: Record<string, unknown> = {}) => ({
    spider: {
      name: "s",
      startUrls: ["https://example.com/"],
      extract: [{ name: "product", fields: { t: { selector: "h1" } } }],
      ...extra,
      settings,
    },
  });
  const paths = async (spec: unknown) => new Map((await validateCrawlJobSpec(spec)).map((e) => [e.path, e.message]));

  test("cookies: cookiesEnabled and a follow rule's cookies are booleans", async () => {
    assert.deepEqual(
      await validateCrawlJobSpec(spider({ follow: [{ cookies: false }] }, { cookiesEnabled: false })),
      [],
    );
    const byPath = await paths(spider({ follow: [{ cookies: "no" }] }, { cookiesEnabled: "yes" }));
    assert.match(byPath.get("spec.spider.settings.cookiesEnabled") ?? "", /boolean/);
    assert.match(byPath.get("spec.spider.follow[0].cookies") ?? "", /boolean/);
  });

  test("proxy: http(s) proxy URLs without path, NO_PROXY-style exceptions, a known rotation", async () => {
    const ok = {
      urls: ["http://user:pa%40ss@proxy.internal:3128", "https://10.0.0.5:8443/"],
      noProxy: [".corp.example", "10.0.0.0/8", "svc:8080", "*"],
    };
    assert.deepEqual(await validateCrawlJobSpec(spider({}, { proxy: ok })), []);
    const byPath = await paths(
      spider(
        {},
        {
          proxy: {
            urls: ["socks5://p:1080", "http://p:3128/path", "not a url"],
            noProxy: ["http://x.example", "a b"],
            rotation: "random",
          },
        },
      ),
    );
    assert.match(
      byPath.get("spec.spider.settings.proxy.urls[0]") ?? "",
      /http:\/\/ or https:\/\/ proxy URL, got socks5/,
    );
    assert.match(byPath.get("spec.spider.settings.proxy.urls[1]") ?? "", /no path/);
    assert.match(byPath.get("spec.spider.settings.proxy.urls[2]") ?? "", /not a valid URL/);
    assert.match(byPath.get("spec.spider.settings.proxy.noProxy[0]") ?? "", /without a scheme/);
    assert.match(byPath.get("spec.spider.settings.proxy.noProxy[1]") ?? "", /one entry/);
    assert.match(byPath.get("spec.spider.settings.proxy.rotation") ?? "", /perRequest, perHost/);
    assert.match((await paths(spider({}, { proxy: { urls: [] } }))).get("spec.spider.settings.proxy.urls") ?? "", /1/);
  });

  test("proxy.credentialsSecretRef: two keys or one user:password key, never with credentials in a URL", async () => {
    const proxy = (credentialsSecretRef: unknown, urls = ["http://proxy.internal:3128"]) => ({
      proxy: { urls, credentialsSecretRef },
    });
    assert.deepEqual(await validateCrawlJobSpec(spider({}, proxy({ name: "proxy-auth" }))), []);
    assert.deepEqual(
      await validateCrawlJobSpec(spider({}, proxy({ name: "p", usernameKey: "user", passwordKey: "pass" }))),
      [],
    );
    assert.deepEqual(await validateCrawlJobSpec(spider({}, proxy({ name: "p", key: "userpass" }))), []);
    const p = "spec.spider.settings.proxy.credentialsSecretRef";
    assert.match(
      (await paths(spider({}, proxy({ name: "p" }, ["http://u:pw@proxy.internal:3128"])))).get(p) ?? "",
      /exclude each other/,
    );
    assert.match(
      (await paths(spider({}, proxy({ name: "p", key: "k", usernameKey: "u" })))).get(`${p}.key`) ?? "",
      /excludes/,
    );
    const bad = await paths(spider({}, proxy({ key: "a/b", value: "inline-secret" })));
    assert.ok(bad.has(`${p}.name`) && bad.has(`${p}.key`) && bad.has(`${p}.value`), [...bad.keys()].join(", "));
  });

  test("moduleConfigMapRef: a .js/.mjs/.ts key, instead of (never with) a module path; it counts as extracting", async () => {
    const spec = (extra: Record<string, unknown>) => ({
      spider: { name: "s", startUrls: ["https://example.com/"], ...extra },
    });
    assert.deepEqual(await validateCrawlJobSpec(spec({ moduleConfigMapRef: { name: "code", key: "parse.mjs" } })), []);
    assert.deepEqual(await validateCrawlJobSpec(spec({ moduleConfigMapRef: { name: "code", key: "spider.ts" } })), []);
    const both = await paths(spec({ module: "./parse.mjs", moduleConfigMapRef: { name: "code", key: "parse.mjs" } }));
    assert.match(both.get("spec.spider.moduleConfigMapRef") ?? "", /exclude each other/);
    assert.ok(
      (await paths(spec({ moduleConfigMapRef: { name: "code", key: "parse.py" } }))).has(
        "spec.spider.moduleConfigMapRef.key",
      ),
    );
    assert.ok(
      (await paths(spec({ moduleConfigMapRef: { name: "code", key: "../x.js" } }))).has(
        "spec.spider.moduleConfigMapRef.key",
      ),
    );
    assert.ok((await paths(spec({ moduleConfigMapRef: { name: "code" } }))).has("spec.spider.moduleConfigMapRef.key"));
  });
});

describe("sitemaps (issue 16, feature 3)", () => {
  const base = {
    name: "s",
    extract: [{ name: "product", fields: { t: { selector: "h1" } } }],
  };
  const paths = async (spider: Record<string, unknown>) =>
    new Map((await validateCrawlJobSpec({ spider: { ...base, ...spider } })).map((e) => [e.path, e.message]));

  test("a sitemap-only spider is valid; every sitemap field is checked", async () => {
    const ok = {
      startUrls: [],
      allowedDomains: ["shop.example"],
      sitemapUrls: ["https://shop.example/robots.txt", "https://shop.example/sitemap.xml.gz"],
      sitemapRules: [{ pattern: "/p/", extract: ["product"] }, { pattern: "" }],
      sitemapFollow: ["products"],
      sitemapAlternateLinks: true,
      sitemapModifiedSince: "P7D",
    };
    assert.deepEqual([...(await paths(ok))], []);
    for (const since of ["2025-01-31", "2025-01-31T10:00:00Z", "PT12H", "P1W"])
      assert.deepEqual([...(await paths({ ...ok, sitemapModifiedSince: since }))], [], since);

    const byPath = await paths({
      ...ok,
      sitemapUrls: ["ftp://shop.example/s.xml", "https://elsewhere.example/s.xml"],
      sitemapRules: [{ pattern: "(", extract: ["product", "nope"] }],
      sitemapFollow: ["[z-a]"],
      sitemapModifiedSince: "last week",
    });
    assert.match(byPath.get("spec.spider.sitemapUrls[0]") ?? "", /http or https URL, got ftp/);
    assert.match(byPath.get("spec.spider.sitemapUrls[1]") ?? "", /not in allowedDomains/);
    assert.match(byPath.get("spec.spider.sitemapRules[0].pattern") ?? "", /invalid regular expression/);
    assert.match(byPath.get("spec.spider.sitemapRules[0].extract[1]") ?? "", /no extract rule named 'nope'/);
    assert.equal(byPath.has("spec.spider.sitemapRules[0].extract[0]"), false);
    assert.match(byPath.get("spec.spider.sitemapFollow[0]") ?? "", /invalid regular expression/);
    assert.match(byPath.get("spec.spider.sitemapModifiedSince") ?? "", /"last week" is neither an RFC 3339 date/);
  });

  test("nothing to crawl, and sitemap settings without sitemapUrls, are errors", async () => {
    const byPath = await paths({ startUrls: [], sitemapFollow: ["x"], sitemapAlternateLinks: false });
    assert.match(byPath.get("spec.spider.startUrls") ?? "", /nothing to crawl/);
    assert.match(byPath.get("spec.spider.sitemapFollow") ?? "", /no effect without sitemapUrls/);
    assert.match(byPath.get("spec.spider.sitemapAlternateLinks") ?? "", /no effect without sitemapUrls/);
  });
});
