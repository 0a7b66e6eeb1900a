// robots.txt per origin (RFC 9309): fetched once, cached up to 24 h, parsed
// with robots-parser. 4xx: allow everything; 5xx or unreachable: disallow
// everything; redirects followed up to 5 hops; the first 512 KiB are parsed.
import robotsParserModule from "robots-parser";
import type { Dispatcher } from "undici";
import { DownloadError, fetchOnce } from "./downloader.ts";

// The package is CommonJS (`module.exports = fn`) but its typings declare a
// default export: at runtime the default import *is* the function.
const robotsParser = robotsParserModule as unknown as typeof robotsParserModule.default;
type Robot = ReturnType<typeof robotsParser>;

type RobotsVerdict = { kind: "rules"; robot: Robot } | { kind: "allowAll" } | { kind: "disallowAll"; why: string };

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
}

const MAX_BYTES = 512 * 1024;
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
    const origin = new URL(url).origin;
    let entry = this.#cache.get(origin);
    if (!entry || Date.now() - entry.at > TTL_MS) {
      entry = { at: Date.now(), verdict: this.#load(origin) };
      this.#cache.delete(origin);
      this.#cache.set(origin, entry);
      const max = this.#opts.maxOrigins ?? 10_000;
      if (this.#cache.size > max) this.#cache.delete(this.#cache.keys().next().value as string);
    }
    const verdict = await entry.verdict;
    if (verdict.kind === "allowAll") return true;
    if (verdict.kind === "disallowAll") return false;
    return verdict.robot.isAllowed(url, this.#opts.userAgentToken) !== false;
  }

  async #load(origin: string): Promise<RobotsVerdict> {
    let url = `${origin}/robots.txt`;
    for (let hop = 0; hop <= 5; hop++) {
      let res: Awaited<ReturnType<typeof fetchOnce>>;
      try {
        res = await fetchOnce(url, {
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
      if (res.status >= 200 && res.status < 300) {
        return {
          kind: "rules",
          robot: robotsParser(`${origin}/robots.txt`, (res.body ?? Buffer.alloc(0)).toString("utf8")),
        };
      }
      if (res.status >= 400 && res.status < 500) return { kind: "allowAll" };
      return { kind: "disallowAll", why: `robots.txt answered ${res.status}` };
    }
    // Too many redirects: RFC 9309 says treat as unavailable (allow).
    return { kind: "allowAll" };
  }
}
