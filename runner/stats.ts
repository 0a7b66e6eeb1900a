// Crawl statistics: the counters reported in CrawlJob status plus the detailed
// breakdown Scrapy's stats collector keeps. Live: read `snapshot()` at any time
// or listen to the "change" event (emitted at most every `emitIntervalMs`).
import { EventEmitter } from "node:events";
import type { CrawlStats } from "../crds/schema/crawljob.ts";

/** Why a request was not sent. */
export type RequestDropReason =
  | "duplicate"
  | "offsite"
  | "otherShard"
  | "robotsTxt"
  | "depthLimit"
  | "privateAddress"
  | "redirectLoop"
  | "redirectMax"
  | "notHttp"
  | "invalidUrl"
  | "sitemapRules"
  | "sitemapFollow"
  | "sitemapLastmod";

/** Why an item was not written. */
export type ItemDropReason = "missingRequired" | "empty" | "closeSpider";

export interface StatsSnapshot {
  status: CrawlStats;
  startTime: string;
  finishTime?: string;
  finishReason?: string;
  elapsedSeconds: number;
  retries: number;
  redirects: number;
  nonHtml: number;
  robotsTxtFetched: number;
  /** Sitemaps (and sitemap indexes) read. */
  sitemaps: number;
  /** Entries those sitemaps listed (pages and sitemaps, alternates included). */
  sitemapEntries: number;
  queued: number;
  inFlight: number;
  frontierSpilled: number;
  responsesByStatus: Record<string, number>;
  requestsDropped: Record<string, number>;
  itemsDroppedByReason: Record<string, number>;
  fieldErrors: Record<string, number>;
  errorsByKind: Record<string, number>;
  itemsByType: Record<string, number>;
  depth: Record<string, number>;
}

function bump(map: Map<string, number>, key: string | number, n = 1): void {
  const k = String(key);
  map.set(k, (map.get(k) ?? 0) + n);
}

export class CrawlStatsCollector extends EventEmitter {
  requests = 0;
  responses = 0;
  pages = 0;
  items = 0;
  errors = 0;
  bytes = 0;
  retries = 0;
  redirects = 0;
  nonHtml = 0;
  robotsTxtFetched = 0;
  sitemaps = 0;
  sitemapEntries = 0;
  readonly responsesByStatus = new Map<string, number>();
  readonly requestsDropped = new Map<string, number>();
  readonly itemsDroppedByReason = new Map<string, number>();
  readonly fieldErrors = new Map<string, number>();
  readonly errorsByKind = new Map<string, number>();
  readonly itemsByType = new Map<string, number>();
  readonly depth = new Map<string, number>();
  readonly startedAt = Date.now();
  finishedAt?: number;
  finishReason?: string;
  /** Filled by the crawler: queue length and in-flight count. */
  gauges = { queued: () => 0, inFlight: () => 0, spilled: () => 0 };
  #lastEmit = 0;
  readonly #emitIntervalMs: number;

  constructor(emitIntervalMs = 1000) {
    super();
    this.#emitIntervalMs = emitIntervalMs;
  }

  get itemsDropped(): number {
    let n = 0;
    for (const v of this.itemsDroppedByReason.values()) n += v;
    return n;
  }

  request(): void {
    this.requests++;
    this.#changed();
  }
  response(status: number, bytes: number): void {
    this.responses++;
    this.bytes += bytes;
    bump(this.responsesByStatus, status);
    this.#changed();
  }
  page(depth: number): void {
    this.pages++;
    bump(this.depth, depth);
    this.#changed();
  }
  item(type: string): void {
    this.items++;
    bump(this.itemsByType, type);
    this.#changed();
  }
  dropRequest(reason: RequestDropReason): void {
    bump(this.requestsDropped, reason);
  }
  dropItem(reason: ItemDropReason): void {
    bump(this.itemsDroppedByReason, reason);
    this.#changed();
  }
  fieldError(kind: string): void {
    bump(this.fieldErrors, kind);
  }
  error(kind: string): void {
    this.errors++;
    bump(this.errorsByKind, kind);
    this.#changed();
  }

  /** The CrawlJob status counters. */
  toStatus(): CrawlStats {
    return {
      requests: this.requests,
      responses: this.responses,
      pages: this.pages,
      items: this.items,
      itemsDropped: this.itemsDropped,
      errors: this.errors,
      bytes: this.bytes,
    };
  }

  elapsedSeconds(): number {
    return ((this.finishedAt ?? Date.now()) - this.startedAt) / 1000;
  }

  snapshot(): StatsSnapshot {
    const obj = (m: Map<string, number>) => Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)));
    return {
      status: this.toStatus(),
      startTime: new Date(this.startedAt).toISOString(),
      ...(this.finishedAt ? { finishTime: new Date(this.finishedAt).toISOString() } : {}),
      ...(this.finishReason ? { finishReason: this.finishReason } : {}),
      elapsedSeconds: Math.round(this.elapsedSeconds() * 1000) / 1000,
      retries: this.retries,
      redirects: this.redirects,
      nonHtml: this.nonHtml,
      robotsTxtFetched: this.robotsTxtFetched,
      sitemaps: this.sitemaps,
      sitemapEntries: this.sitemapEntries,
      queued: this.gauges.queued(),
      inFlight: this.gauges.inFlight(),
      frontierSpilled: this.gauges.spilled(),
      responsesByStatus: obj(this.responsesByStatus),
      requestsDropped: obj(this.requestsDropped),
      itemsDroppedByReason: obj(this.itemsDroppedByReason),
      fieldErrors: obj(this.fieldErrors),
      errorsByKind: obj(this.errorsByKind),
      itemsByType: obj(this.itemsByType),
      depth: Object.fromEntries([...this.depth].sort(([a], [b]) => Number(a) - Number(b))),
    };
  }

  finish(reason: string): void {
    this.finishedAt = Date.now();
    this.finishReason = reason;
    this.emit("change", this);
    this.emit("finish", this);
  }

  #changed(): void {
    const now = Date.now();
    if (now - this.#lastEmit >= this.#emitIntervalMs) {
      this.#lastEmit = now;
      this.emit("change", this);
    }
  }
}
