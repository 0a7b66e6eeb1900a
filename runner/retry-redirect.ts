// What the crawler does with a response or a failure besides parsing it: which
// answers are retried and after how long (exponential backoff, or Retry-After
// on 429/503), and where a redirect goes next. Each redirect hop becomes a new
// request that the crawler sends back through the admission filters.
import { type BackoffPolicy, backoffDelayMs } from "../lib/backoff.ts";
import { parseRetryAfter } from "../lib/retry-after.ts";
import { canonicalUrl } from "./fingerprint.ts";
import { type CrawlRequest, carried } from "./request.ts";

/** Longest wait before a retry; a longer Retry-After is capped (the crawl would otherwise idle for hours). */
const MAX_RETRY_WAIT_MS = 120_000;

/**
 * 0.5 s × 2ⁿ on average, as Scrapy-style crawlers wait: equal jitter draws from
 * [⅓, ⅔) s × 2ⁿ, inside the earlier 0.5 s × 2ⁿ × [0.5, 1.5) and with its mean.
 */
const RETRY_BACKOFF: BackoffPolicy = { baseMs: 667, capMs: MAX_RETRY_WAIT_MS, jitter: "equal" };

export class RetryPolicy {
  readonly #times: number;
  readonly #codes: ReadonlySet<number>;

  constructor(retryTimes: number, retryHttpCodes: ReadonlySet<number>) {
    this.#times = retryTimes;
    this.#codes = retryHttpCodes;
  }

  /** Whether this HTTP status is one to retry (retryHttpCodes). */
  retriesStatus(status: number): boolean {
    return this.#codes.has(status);
  }

  /**
   * The wait before the next attempt of `req`, or undefined when its retries
   * are used up. `response` gives the status and headers of an HTTP answer
   * (Retry-After counts on 429 and 503 only).
   */
  delayMs(
    req: CrawlRequest,
    response?: { status: number; headers: Readonly<Record<string, string | string[] | undefined>> },
    random: () => number = Math.random,
  ): number | undefined {
    if (req.retries >= this.#times) return undefined;
    const retryAfter =
      response && (response.status === 429 || response.status === 503)
        ? parseRetryAfter(response.headers["retry-after"], new Date(), MAX_RETRY_WAIT_MS)
        : undefined;
    return retryAfter ?? backoffDelayMs(req.retries + 1, RETRY_BACKOFF, random);
  }

  /** The request that retries `req`: same URL, one more retry, past the duplicate filter. */
  static next(req: CrawlRequest): CrawlRequest {
    return { ...req, retries: req.retries + 1, dontFilter: true };
  }
}

export type RedirectDecision =
  | { kind: "follow"; next: CrawlRequest }
  | { kind: "invalid" }
  | { kind: "tooMany" }
  | { kind: "loop"; target: string };

/**
 * Where a 3xx answer with `location` (resolved, or "" when unusable) leads:
 * the next hop keeps the depth, headers, meta and cookie opt-out; 301/302/303 turn a POST into
 * a GET (as browsers and Scrapy do), 307/308 keep method and body.
 */
export function redirectDecision(
  req: CrawlRequest,
  res: { status: number; location: string },
  maxRedirects: number,
): RedirectDecision {
  if (!res.location) return { kind: "invalid" };
  if (req.redirects >= maxRedirects) return { kind: "tooMany" };
  const chain = [...(req.redirectChain ?? []), req.url];
  const target = canonicalUrl(res.location);
  if (chain.some((c) => canonicalUrl(c) === target)) return { kind: "loop", target };
  const keepMethod = res.status === 307 || res.status === 308 || req.method === "GET" || req.method === "HEAD";
  const next: CrawlRequest = {
    url: res.location,
    method: keepMethod ? req.method : "GET",
    depth: req.depth,
    retries: 0,
    redirects: req.redirects + 1,
    redirectChain: chain,
    ...(keepMethod && req.body !== undefined ? { body: req.body } : {}),
    ...carried(req),
  };
  return { kind: "follow", next };
}
