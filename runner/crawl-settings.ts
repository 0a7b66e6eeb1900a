// `spider.settings` with Scrapy's defaults filled in, once, so every unit of the
// crawler reads the same resolved values.
import type { SpiderSpec } from "../crds/schema/spider.ts";

const DEFAULT_USER_AGENT = "feedcrawl/0.1 (+https://github.com/feedcrawl/feedcrawl)";
const DEFAULT_RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429];

export interface CrawlSettings {
  concurrency: number;
  perDomain: number;
  delayMs: number;
  randomizeDelay: boolean;
  throttle: { enabled: boolean; targetConcurrency: number; startDelayMs: number; maxDelayMs: number };
  obeyRobots: boolean;
  cookies: boolean;
  depthLimit: number;
  retryTimes: number;
  retryHttpCodes: ReadonlySet<number>;
  redirectMax: number;
  timeoutMs: number;
  /** Undefined: the downloader's default applies. */
  maxResponseBytes: number | undefined;
  userAgent: string;
  /** Request headers sent with every request (lower-case names; the user agent last, so it wins). */
  headers: Record<string, string>;
  allowPrivateNetworks: boolean | string[];
  close: { itemCount: number; pageCount: number; timeoutSeconds: number; errorCount: number };
}

export function resolveSettings(spider: SpiderSpec): CrawlSettings {
  const s = spider.settings ?? {};
  const userAgent = s.userAgent ?? DEFAULT_USER_AGENT;
  return {
    concurrency: s.concurrentRequests ?? 16,
    perDomain: s.concurrentRequestsPerDomain ?? 8,
    delayMs: s.downloadDelayMs ?? 0,
    randomizeDelay: s.randomizeDownloadDelay ?? true,
    throttle: {
      enabled: s.autoThrottle?.enabled ?? false,
      targetConcurrency: s.autoThrottle?.targetConcurrency ?? 1,
      startDelayMs: s.autoThrottle?.startDelayMs ?? 5000,
      maxDelayMs: s.autoThrottle?.maxDelayMs ?? 60_000,
    },
    obeyRobots: s.robotsTxtObey ?? true,
    cookies: s.cookiesEnabled ?? true,
    depthLimit: s.depthLimit ?? 0,
    retryTimes: s.retryTimes ?? 2,
    retryHttpCodes: new Set(s.retryHttpCodes ?? DEFAULT_RETRY_HTTP_CODES),
    redirectMax: s.redirectMaxTimes ?? 20,
    timeoutMs: (s.downloadTimeoutSeconds ?? 180) * 1000,
    maxResponseBytes: s.maxResponseBytes,
    userAgent,
    headers: {
      accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
      "accept-language": "en",
      ...Object.fromEntries(Object.entries(s.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
      "user-agent": userAgent,
    },
    allowPrivateNetworks: s.allowPrivateNetworks ?? false,
    close: {
      itemCount: s.closeSpider?.itemCount ?? 0,
      pageCount: s.closeSpider?.pageCount ?? 0,
      timeoutSeconds: s.closeSpider?.timeoutSeconds ?? 0,
      errorCount: s.closeSpider?.errorCount ?? 0,
    },
  };
}
