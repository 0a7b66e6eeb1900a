// Reading sitemaps (sitemaps.org): `<urlset>` of `<url><loc>` entries (with
// `<lastmod>` and `<xhtml:link rel="alternate">`) or a `<sitemapindex>` of
// `<sitemap><loc>` entries, plain or gzipped (found by the gzip magic bytes,
// whatever the URL or Content-Type say). The XML is parsed as it is decoded,
// with htmlparser2 in XML mode (no DTDs, so no entity expansion attacks), and
// the decoded size is capped: a gzip bomb stops at the cap. Then the spider's
// sitemap settings decide what is crawled (Scrapy's SitemapSpider, declaratively).
import zlib from "node:zlib";
import { Parser } from "htmlparser2";
import type { SpiderSpec } from "../crds/schema/spider.ts";
import { modifiedSinceCutoff } from "../spec/sitemaps.ts";

/** The sitemap protocol's own limit on an uncompressed sitemap (50 MB); a larger one is refused. */
export const SITEMAP_MAX_DECODED_BYTES = 50 * 1024 * 1024;

export type SitemapKind = "urlset" | "sitemapindex";

export interface SitemapEntry {
  loc: string;
  lastmod?: string;
  /** `<xhtml:link rel="alternate" href>` of a `<url>`. */
  alternates: string[];
}

/** A sitemap that cannot be read: not XML of a known root, or past the size cap. */
export class SitemapError extends Error {
  constructor(url: string, message: string) {
    super(`Sitemap ${url}: ${message}`);
    this.name = "SitemapError";
  }
}

const localName = (name: string) => name.toLowerCase().replace(/^.*:/, "");

/** An htmlparser2 Parser that calls `onEntry` per `<url>`/`<sitemap>` and remembers the root element. */
function sitemapParser(onEntry: (kind: SitemapKind, e: SitemapEntry) => void) {
  const state: { root?: string; depth: number; entry?: SitemapEntry; field?: "loc" | "lastmod"; text: string } = {
    depth: 0,
    text: "",
  };
  const parser = new Parser(
    {
      onopentag(name, attribs) {
        const n = localName(name);
        state.depth++;
        if (state.depth === 1) state.root = n;
        const kind = state.root === "urlset" || state.root === "sitemapindex" ? state.root : undefined;
        if (state.depth === 2 && kind && (n === "url" || n === "sitemap")) state.entry = { loc: "", alternates: [] };
        else if (state.entry && state.depth === 3 && (n === "loc" || n === "lastmod")) {
          state.field = n;
          state.text = "";
        } else if (state.entry && n === "link" && (attribs.rel ?? "").toLowerCase() === "alternate" && attribs.href)
          state.entry.alternates.push(attribs.href.trim());
      },
      ontext(text) {
        if (state.field && state.text.length < 8192) state.text += text;
      },
      onclosetag(name) {
        const n = localName(name);
        if (state.entry && state.field === n) {
          state.entry[state.field] = state.text.trim();
          state.field = undefined;
        } else if (state.entry && state.depth === 2 && (n === "url" || n === "sitemap")) {
          if (state.entry.loc) onEntry(state.root as SitemapKind, state.entry);
          state.entry = undefined;
        }
        state.depth--;
      },
    },
    { xmlMode: true },
  );
  return { parser, root: () => state.root };
}

/**
 * Parses a sitemap body (gzipped or not) from `url`, calling `onEntry` for each
 * entry as it is read. Rejects with SitemapError when the decoded XML passes
 * `maxBytes` or its root is neither `<urlset>` nor `<sitemapindex>`.
 */
export async function readSitemap(
  url: string,
  body: Buffer,
  onEntry: (kind: SitemapKind, e: SitemapEntry) => void,
  maxBytes = SITEMAP_MAX_DECODED_BYTES,
): Promise<SitemapKind> {
  const { parser, root } = sitemapParser(onEntry);
  const decoder = new TextDecoder("utf-8");
  let decoded = 0;
  const feed = (chunk: Buffer) => {
    decoded += chunk.length;
    if (decoded > maxBytes)
      throw new SitemapError(
        url,
        `decoded size passed ${maxBytes} bytes (a sitemap holds at most 50 MB; a gzip bomb?)`,
      );
    parser.write(decoder.decode(chunk, { stream: true }));
  };
  if (body[0] === 0x1f && body[1] === 0x8b) {
    const gunzip = zlib.createGunzip({ chunkSize: 64 * 1024 });
    gunzip.end(body);
    try {
      for await (const chunk of gunzip) feed(chunk as Buffer);
    } catch (err) {
      gunzip.destroy();
      if (err instanceof SitemapError) throw err;
      throw new SitemapError(url, `not valid gzip: ${(err as Error).message}`);
    }
  } else {
    feed(body);
  }
  parser.write(decoder.decode());
  parser.end();
  const kind = root();
  if (kind !== "urlset" && kind !== "sitemapindex")
    throw new SitemapError(
      url,
      `not a sitemap: the root element is ${kind ? `<${kind}>` : "missing"}, not <urlset> or <sitemapindex>`,
    );
  return kind;
}

/** What the spider's sitemap settings say about an entry. */
export type SitemapVerdict =
  | { crawl: true; extract?: string[] }
  | { crawl: false; reason: "sitemapRules" | "sitemapFollow" | "sitemapLastmod" };

/** spider.sitemap*, compiled once per crawl. */
export class SitemapPolicy {
  readonly alternates: boolean;
  readonly #rules: { re: RegExp; extract?: string[] }[];
  readonly #follow: RegExp[];
  readonly #since: number | undefined;

  constructor(spider: SpiderSpec, now = Date.now()) {
    this.alternates = spider.sitemapAlternateLinks === true;
    this.#rules = (spider.sitemapRules ?? [{ pattern: "" }]).map((r) => ({
      re: new RegExp(r.pattern),
      ...(r.extract ? { extract: r.extract } : {}),
    }));
    this.#follow = (spider.sitemapFollow ?? []).map((p) => new RegExp(p));
    const cutoff = spider.sitemapModifiedSince ? modifiedSinceCutoff(spider.sitemapModifiedSince, now) : undefined;
    this.#since = typeof cutoff === "number" ? cutoff : undefined;
  }

  /** Whether a `<lastmod>` is older than sitemapModifiedSince (absent or unreadable: not older). */
  #tooOld(lastmod: string | undefined): boolean {
    if (this.#since === undefined || !lastmod) return false;
    const t = Date.parse(lastmod);
    return Number.isFinite(t) && t < this.#since;
  }

  /** A sitemap listed in a sitemap index: sitemapFollow, then lastmod. */
  sitemap(e: SitemapEntry): SitemapVerdict {
    if (this.#follow.length && !this.#follow.some((r) => r.test(e.loc)))
      return { crawl: false, reason: "sitemapFollow" };
    if (this.#tooOld(e.lastmod)) return { crawl: false, reason: "sitemapLastmod" };
    return { crawl: true };
  }

  /** A page URL of a `<urlset>` (or one of its alternates, with the entry's lastmod): lastmod, then the first matching rule. */
  page(loc: string, lastmod: string | undefined): SitemapVerdict {
    if (this.#tooOld(lastmod)) return { crawl: false, reason: "sitemapLastmod" };
    const rule = this.#rules.find((r) => r.re.test(loc));
    if (!rule) return { crawl: false, reason: "sitemapRules" };
    return rule.extract ? { crawl: true, extract: rule.extract } : { crawl: true };
  }
}
