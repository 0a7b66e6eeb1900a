// A request as the scheduler and downloader see it.

export interface CrawlRequest {
  url: string;
  method: string;
  body?: string;
  headers?: Record<string, string>;
  /** Link hops from a start URL (start URLs are depth 0; redirects and retries keep the depth). */
  depth: number;
  /** Retries done so far. */
  retries: number;
  /** Redirect hops that led here. */
  redirects: number;
  /** The URLs of the redirect chain that led here (loop detection). */
  redirectChain?: string[];
  /** Free-form data a module spider attaches; passed back in `response.request.meta`. */
  meta?: Record<string, unknown>;
  /** Skip the duplicate filter (Scrapy's dont_filter). */
  dontFilter?: boolean;
  /** false: neither send nor store cookies for this request (a follow rule's `cookies: false`). */
  cookies?: boolean;
  /** "sitemap": the response is a sitemap (or index) to read for URLs, not a page. */
  kind?: "sitemap";
  /** Only these extract rules apply to the page (a sitemap rule's `extract`); absent: all. */
  extractRules?: string[];
}

/** What a redirect hop or a retry carries over from the request it replaces (besides URL, method and body). */
export function carried(req: CrawlRequest): Partial<CrawlRequest> {
  return {
    ...(req.headers ? { headers: req.headers } : {}),
    ...(req.meta ? { meta: req.meta } : {}),
    ...(req.cookies === false ? { cookies: false } : {}),
    ...(req.kind ? { kind: req.kind } : {}),
    ...(req.extractRules ? { extractRules: req.extractRules } : {}),
  };
}

export function newRequest(url: string, depth: number, extra: Partial<CrawlRequest> = {}): CrawlRequest {
  return { url, method: "GET", depth, retries: 0, redirects: 0, ...extra };
}
