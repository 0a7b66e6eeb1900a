// spider.sitemapUrls in the crawl: robots.txt URLs are read for their Sitemap
// lines, sitemaps are fetched as requests of kind "sitemap" (through the same
// admission, robots.txt, delays and retries as pages) and each entry becomes a
// request — another sitemap (sitemapFollow) or a page (sitemapRules, with the
// extract rules it names), both filtered by sitemapModifiedSince.
import type { Logger } from "pino";
import type { SpiderSpec } from "../crds/schema/spider.ts";
import { DownloadError } from "./downloader.ts";
import { type CrawlRequest, newRequest } from "./request.ts";
import type { RobotsCache } from "./robots.ts";
import { readSitemap, type SitemapEntry, type SitemapKind, SitemapPolicy } from "./sitemap.ts";
import type { CrawlStatsCollector, RequestDropReason } from "./stats.ts";

export interface SitemapCrawlHooks {
  log: Logger;
  stats: CrawlStatsCollector;
  /** Admission + queue; false when the request was dropped. */
  enqueue(req: CrawlRequest): boolean;
  drop(reason: RequestDropReason, url: string): void;
  countError(kind: string): void;
  /** The robots.txt reader (the crawl's own when robotsTxtObey, else one only for Sitemap lines). */
  robots(): RobotsCache;
  /** Keeps the crawl alive until the work settles. */
  hold(work: Promise<unknown>): void;
}

export const isRobotsTxtUrl = (url: string) => {
  try {
    return new URL(url).pathname === "/robots.txt";
  } catch {
    return false;
  }
};

function resolveHttp(href: string, base: string): string | undefined {
  try {
    const u = new URL(href, base);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : undefined;
  } catch {
    return undefined;
  }
}

export class SitemapCrawl {
  readonly #spider: SpiderSpec;
  readonly #h: SitemapCrawlHooks;
  readonly #policy: SitemapPolicy;

  constructor(spider: SpiderSpec, hooks: SitemapCrawlHooks) {
    this.#spider = spider;
    this.#h = hooks;
    this.#policy = new SitemapPolicy(spider);
  }

  /** Queues spider.sitemapUrls: sitemaps directly, robots.txt URLs once their Sitemap lines are read. */
  start(): void {
    for (const url of this.#spider.sitemapUrls ?? []) {
      if (!isRobotsTxtUrl(url)) {
        this.#h.enqueue(newRequest(url, 0, { kind: "sitemap" }));
        continue;
      }
      this.#h.hold(this.#fromRobots(url));
    }
  }

  async #fromRobots(url: string): Promise<void> {
    let sitemaps: string[];
    try {
      sitemaps = await this.#h.robots().sitemaps(new URL(url).origin);
    } catch (err) {
      const kind = err instanceof DownloadError ? err.kind : "other";
      this.#h.log.warn({ url, kind }, `Could not read the Sitemap lines of ${url}: ${(err as Error).message}`);
      this.#h.countError(kind);
      return;
    }
    if (sitemaps.length === 0)
      this.#h.log.warn({ url }, `${url} lists no Sitemap (no Sitemap: line, or the file could not be read)`);
    else this.#h.log.info({ url, sitemaps }, `${url} lists ${sitemaps.length} sitemap(s)`);
    for (const s of sitemaps) {
      const abs = resolveHttp(s, url);
      if (abs) this.#h.enqueue(newRequest(abs, 0, { kind: "sitemap" }));
      else this.#h.drop("invalidUrl", s);
    }
  }

  /** A 2xx answer to a sitemap request: its entries become requests. A sitemap that cannot be read is a `sitemap` error. */
  async read(req: CrawlRequest, body: Buffer | undefined): Promise<void> {
    let entries = 0;
    try {
      const kind = await readSitemap(req.url, body ?? Buffer.alloc(0), (k, e) => {
        entries += this.#entry(k, e, req);
      });
      this.#h.stats.sitemaps++;
      this.#h.stats.sitemapEntries += entries;
      this.#h.log.info({ url: req.url, kind, entries }, `Sitemap ${req.url}: ${entries} entries (${kind})`);
    } catch (err) {
      this.#h.stats.sitemapEntries += entries;
      this.#h.log.warn({ url: req.url, kind: "sitemap", entries }, (err as Error).message);
      this.#h.countError("sitemap");
    }
  }

  /** One entry; returns how many URLs it listed. */
  #entry(kind: SitemapKind, e: SitemapEntry, from: CrawlRequest): number {
    if (kind === "sitemapindex") {
      const loc = resolveHttp(e.loc, from.url);
      if (!loc) {
        this.#h.drop("invalidUrl", e.loc);
        return 1;
      }
      const v = this.#policy.sitemap({ ...e, loc });
      if (v.crawl) this.#h.enqueue(newRequest(loc, from.depth, { kind: "sitemap" }));
      else this.#h.drop(v.reason, loc);
      return 1;
    }
    const locs = [e.loc, ...(this.#policy.alternates ? e.alternates : [])];
    for (const raw of locs) {
      const loc = resolveHttp(raw, from.url);
      if (!loc) {
        this.#h.drop("invalidUrl", raw);
        continue;
      }
      const v = this.#policy.page(loc, e.lastmod);
      if (!v.crawl) this.#h.drop(v.reason, loc);
      else this.#h.enqueue(newRequest(loc, from.depth, v.extract ? { extractRules: v.extract } : {}));
    }
    return locs.length;
  }
}
