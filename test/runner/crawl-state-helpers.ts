// What the crawl-state tests share (--jobdir, a pod's checkpoint, the Redis
// frontier): a seeded kill schedule, the catalogue spider whose pages yield
// several items each, the site's truth for it, a tree site where every page
// has links, the lines of feed files, and items as a comparable multiset.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import type { Catalogue } from "../fixtures/catalogue.ts";
import { startSite, type TestSite } from "./helpers.ts";

/** mulberry32: a kill schedule that is the same on every run of a test. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The catalogue crawled for two item types: `listing` (20 per listing page, so
 * a page's items spread over several small batches) and `product` (one per
 * product page). `settings` override the slow, polite defaults (~70 pages/s at
 * most, so a crawl outlasts the kills on any machine).
 */
export function catalogueSpider(name: string, siteUrl: string, settings: SpiderSpec["settings"] = {}): SpiderSpec {
  return {
    name,
    startUrls: [`${siteUrl}/`],
    allowedDomains: ["127.0.0.1"],
    follow: [{ selector: "ul.pager li.next a" }, { selector: "article.product_pod h3 a", allow: ["/catalogue/"] }],
    extract: [
      {
        name: "listing",
        itemSelector: "article.product_pod",
        fields: { link: { selector: "h3 a", attr: "href", absolute: true } },
      },
      {
        name: "product",
        itemSelector: "article.product_page",
        urlPattern: "/catalogue/[^/]+_[0-9]+/index\\.html$",
        fields: { url: { meta: "url" }, title: { selector: "h1", text: true, required: true } },
      },
    ],
    settings: {
      concurrentRequests: 8,
      concurrentRequestsPerDomain: 4,
      downloadDelayMs: 15,
      randomizeDownloadDelay: false,
      allowPrivateNetworks: ["127.0.0.0/8"],
      ...settings,
    },
  } as SpiderSpec;
}

/** What catalogueSpider must deliver, as canonical item strings: every item, and the products alone. */
export function catalogueTruth(catalogue: Catalogue, siteUrl: string): { all: string[]; products: string[] } {
  const products: string[] = [];
  const listings: string[] = [];
  for (let id = 1; id <= catalogue.products; id++) {
    const p = catalogue.product(id);
    const url = `${siteUrl}${catalogue.productPath(p)}`;
    products.push(JSON.stringify({ title: p.title, url }));
    listings.push(JSON.stringify({ link: url }));
  }
  return { all: [...products, ...listings].sort(), products: products.sort() };
}

/** Every line of every `.jsonl` file in `dir` whose name starts with `prefix` (temp files and manifests are not .jsonl). */
export function feedLines(dir: string, prefix = ""): string[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith(".jsonl"))
    .flatMap((f) => readFileSync(join(dir, f), "utf8").split("\n").filter(Boolean));
}

/** Items (JSON lines of their fields) as canonical strings, field order independent, sorted: a multiset. */
export function canonical(lines: readonly string[]): string[] {
  return lines
    .map((l) => {
      const fields = JSON.parse(l) as Record<string, unknown>;
      return JSON.stringify(Object.fromEntries(Object.entries(fields).sort(([a], [b]) => a.localeCompare(b))));
    })
    .sort();
}

/**
 * A binary tree of `pages` pages (`/` is page 0; `/p/N` links to 2N+1 and 2N+2):
 * every page in flight has links to lose. With treeSpider each page yields
 * `{title: "page N"}`.
 */
export function treeSite(pages: number): Promise<TestSite> {
  return startSite((_host, path) => {
    const i = path === "/" ? 0 : Number(/^\/p\/(\d+)$/.exec(path)?.[1] ?? -1);
    if (i < 0 || i >= pages) return undefined;
    const links = [2 * i + 1, 2 * i + 2].filter((c) => c < pages).map((c) => `<a href="/p/${c}">${c}</a>`);
    return `<html><body><h1>page ${i}</h1>${links.join(" ")}</body></html>`;
  });
}

export function treeSpider(name: string, siteUrl: string, settings: SpiderSpec["settings"] = {}): SpiderSpec {
  return {
    name,
    startUrls: [`${siteUrl}/`],
    follow: [{ selector: "a" }],
    extract: [{ name: "page", itemSelector: "body", fields: { title: { selector: "h1", text: true } } }],
    settings: {
      concurrentRequests: 8,
      downloadDelayMs: 15,
      randomizeDownloadDelay: false,
      allowPrivateNetworks: true,
      ...settings,
    },
  } as SpiderSpec;
}

export function treeTruth(pages: number): string[] {
  return Array.from({ length: pages }, (_, i) => JSON.stringify({ title: `page ${i}` })).sort();
}
