// robots.txt per origin (RFC 9309): fetched once, cached up to 24 h, parsed
// with robots-parser. 4xx: allow everything; 5xx or unreachable: disallow
// everything; redirects followed up to 5 hops; the first 512 KiB are parsed.
// Also what the file says besides the rules: the Crawl-delay for our
// user-agent (capped at MAX_CRAWL_DELAY_MS) and its Sitemap lines.
import robotsParserModule from "robots-parser";
import type { Dispatcher } from "undici";
import { DownloadError, fetchOnce } from "./downloader.ts";
import type { Fetch } from "./http-cache.ts";

// The package is CommonJS (`module.exports = fn`) but its typings declare a
// default export: at runtime the default import *is* the function.
const robotsParser = robotsParserModule as unknown as typeof robotsParserModule.default;
type Robot = ReturnType<typeof robotsParser>;

type RobotsVerdict = { kind: "rules"; robot: Robot } | { kind: "allowAll" } | { kind: "disallowAll"; why: string };
/** A verdict before parsing: what one worker fetched and every worker of a shared crawl reuses. */
type RawVerdict = { kind: "rules"; body: string } | { kind: "allowAll" } | { kind: "disallowAll"; why: string };

export interface RobotsOptions {
  dispatcher: Dispatcher;
  headers: Record<string, string>;
  /** The product token matched against User-agent lines (e.g. "feedcrawl"). */
  userAgentToken: string;
  timeoutMs: number;
  /** Called for every robots.txt exchange (stats). */
  onFetch?: (status: number | undefined, bytes: number) => void;
  /** Cached origins (default 10 000; oldest evicted first). */
  maxOrigins?: number;
  /** How robots.txt is fetched (default fetchOnce; the crawler passes its HTTP cache in front). */
  fetch?: Fetch;
  /** A robots.txt asked for a Crawl-delay (ms, as written) above MAX_CRAWL_DELAY_MS. */
  onCrawlDelayCapped?: (origin: string, requestedMs: number) => void;
  /**
   * A shared crawl's robots.txt store (HostGate.robotsOnce): the first worker
   * to ask runs `fetch`, every other worker gets its result. Absent: fetched
   * by this process.
   */
  shared?: (origin: string, fetch: () => Promise<string>) => Promise<string>;
}

const MAX_BYTES = 512 * 1024;
/**
 * The longest Crawl-delay honoured: a larger one is cut to this, so a hostile
 * or mistaken `Crawl-delay: 86400` slows its host to one page a minute rather
 * than parking it for a day (Nutch and Heritrix cap it at 30 s).
 */
export const MAX_CRAWL_DELAY_MS = 60_000;
const TTL_MS = 24 * 3600 * 1000;

export class RobotsCache {
  readonly #opts: RobotsOptions;
  readonly #cache = new Map<string, { at: number; verdict: Promise<RobotsVerdict> }>();

  constructor(opts: RobotsOptions) {
    this.#opts = opts;
  }

  /**
   * Whether `url` may be fetched. Rejects with a DownloadError of kind
   * addressBlocked when the origin itself is refused by the address guard.
   */
  async isAllowed(url: string): Promise<boolean> {
    const verdict = await this.#verdict(new URL(url).origin);
    if (verdict.kind === "allowAll") return true;
    if (verdict.kind === "disallowAll") return false;
    return verdict.robot.isAllowed(url, this.#opts.userAgentToken) !== false;
  }

  /**
   * The Crawl-delay that `origin`'s robots.txt sets for our user-agent (its own
   * group, else `*`), in ms, at most MAX_CRAWL_DELAY_MS; 0 when it sets none or
   * cannot be read. Never rejects.
   */
  async crawlDelayMs(origin: string): Promise<number> {
    const verdict = await this.#verdict(origin).catch(() => undefined);
    if (verdict?.kind !== "rules") return 0;
    const seconds = verdict.robot.getCrawlDelay(this.#opts.userAgentToken);
    if (seconds === undefined || !Number.isFinite(seconds) || seconds <= 0) return 0;
    const ms = Math.round(seconds * 1000);
    if (ms <= MAX_CRAWL_DELAY_MS) return ms;
    this.#opts.onCrawlDelayCapped?.(origin, ms);
    return MAX_CRAWL_DELAY_MS;
  }

  /** The Sitemap lines of `origin`'s robots.txt (absolute URLs, as written); [] when it has none or cannot be read. */
  async sitemaps(origin: string): Promise<string[]> {
    const verdict = await this.#verdict(origin);
    return verdict.kind === "rules" ? verdict.robot.getSitemaps() : [];
  }

  #verdict(origin: string): Promise<RobotsVerdict> {
    let entry = this.#cache.get(origin);
    if (!entry || Date.now() - entry.at > TTL_MS) {
      entry = { at: Date.now(), verdict: this.#load(origin) };
      this.#cache.delete(origin);
      this.#cache.set(origin, entry);
      const max = this.#opts.maxOrigins ?? 10_000;
      if (this.#cache.size > max) this.#cache.delete(this.#cache.keys().next().value as string);
    }
    return entry.verdict;
  }

  async #load(origin: string): Promise<RobotsVerdict> {
    const shared = this.#opts.shared;
    const raw = shared
      ? (JSON.parse(await shared(origin, async () => JSON.stringify(await this.#fetch(origin)))) as RawVerdict)
      : await this.#fetch(origin);
    return raw.kind === "rules" ? { kind: "rules", robot: robotsParser(`${origin}/robots.txt`, raw.body) } : raw;
  }

  async #fetch(origin: string): Promise<RawVerdict> {
    let url = `${origin}/robots.txt`;
    for (let hop = 0; hop <= 5; hop++) {
      let res: Awaited<ReturnType<typeof fetchOnce>>;
      try {
        res = await (this.#opts.fetch ?? fetchOnce)(url, {
          dispatcher: this.#opts.dispatcher,
          headers: this.#opts.headers,
          timeoutMs: this.#opts.timeoutMs,
          maxBytes: MAX_BYTES,
          truncate: true,
        });
      } catch (err) {
        this.#opts.onFetch?.(undefined, 0);
        if (err instanceof DownloadError && err.kind === "addressBlocked") throw err;
        return { kind: "disallowAll", why: `robots.txt unreachable: ${(err as Error).message}` };
      }
      this.#opts.onFetch?.(res.status, res.wireBytes);
      if (res.location !== undefined) {
        if (!res.location) break;
        url = res.location;
        continue;
      }
      if (res.status >= 200 && res.status < 300)
        return { kind: "rules", body: (res.body ?? Buffer.alloc(0)).toString("utf8") };
      if (res.status >= 400 && res.status < 500) return { kind: "allowAll" };
      return { kind: "disallowAll", why: `robots.txt answered ${res.status}` };
    }
    // Too many redirects: RFC 9309 says treat as unavailable (allow).
    return { kind: "allowAll" };
  }
}
