// The admission filters every request passes before it is queued, in order:
// URL is http(s) → depthLimit → allowedDomains (offsite) → shard (not for sitemaps) → IP-literal
// address guard → the duplicate filter. robots.txt is checked later, when the
// request leaves its download slot (it needs a fetch).
import net from "node:net";
import { hostAllowed } from "../net/domains.ts";
import { canonicalUrl, FingerprintSet, fingerprint } from "./fingerprint.ts";
import type { CrawlRequest } from "./request.ts";
import { shardForHost } from "./shard.ts";
import type { RequestDropReason } from "./stats.ts";

export interface AdmissionOptions {
  allowedDomains?: readonly string[];
  /** 0: no limit. */
  depthLimit: number;
  shard: { index: number; count: number };
  /** The address guard's verdict on an IP literal. */
  addressAllowed: (ip: string) => boolean;
  /** false: no duplicate filter here (a durable state is the seen-set). Default true. */
  dedupe?: boolean;
}

export type Admission = { ok: true } | { ok: false; reason: RequestDropReason; address?: string };

export class AdmissionFilter {
  readonly #opts: AdmissionOptions;
  readonly #seen = new FingerprintSet();

  constructor(opts: AdmissionOptions) {
    this.#opts = opts;
  }

  /** Whether `req` may be queued; an admitted request's fingerprint is remembered (unless dontFilter). */
  admit(req: CrawlRequest): Admission {
    let u: URL;
    try {
      u = new URL(req.url);
    } catch {
      return { ok: false, reason: "invalidUrl" };
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") return { ok: false, reason: "notHttp" };
    const { allowedDomains, depthLimit, shard } = this.#opts;
    if (depthLimit > 0 && req.depth > depthLimit) return { ok: false, reason: "depthLimit" };
    const host = u.hostname.replace(/^\[|\]$/g, "");
    if (allowedDomains?.length && !hostAllowed(host, allowedDomains)) return { ok: false, reason: "offsite" };
    // Every shard reads every sitemap (and keeps only its own hosts' pages from it).
    if (shard.count > 1 && req.kind !== "sitemap" && shardForHost(host, shard.count) !== shard.index)
      return { ok: false, reason: "otherShard" };
    // IP literals are refused here, before robots.txt or any connection; names
    // are checked by the guarded agent on the addresses they resolve to.
    if (net.isIP(host) && !this.#opts.addressAllowed(host))
      return { ok: false, reason: "privateAddress", address: host };
    if (this.#opts.dedupe !== false && !req.dontFilter && !this.#seen.add(fingerprint(req.method, req.url, req.body)))
      return { ok: false, reason: AdmissionFilter.duplicateReason(req) };
    return { ok: true };
  }

  /** Why a request seen before is dropped: a hop back into its own redirect chain, or a plain duplicate. */
  static duplicateReason(req: CrawlRequest): "redirectLoop" | "duplicate" {
    const target = canonicalUrl(req.url);
    return req.redirectChain?.some((c) => canonicalUrl(c) === target) ? "redirectLoop" : "duplicate";
  }
}
