// The crawl engine: a breadth-first scheduler with a bounded frontier and a
// duplicate filter, Scrapy-style per-domain download slots (concurrency,
// delay with jitter, AutoThrottle), robots.txt, retries with backoff and
// Retry-After, redirects re-checked hop by hop, the address guard, close
// conditions, and a graceful stop that drains in-flight pages.
import net from "node:net";
import { type CheerioAPI, load } from "cheerio";
import type { Logger } from "pino";
import type { Agent } from "undici";
import type { SpiderSpec } from "../crds/schema/spider.ts";
import { addressChecker, createGuardedAgent } from "../net/address-guard.ts";
import { hostAllowed } from "../net/domains.ts";
import { DownloadError, type FetchResult, fetchOnce } from "./downloader.ts";
import { type CompiledSpider, compileSpider, type ExtractReport } from "./extract.ts";
import { canonicalUrl, FingerprintSet, fingerprint } from "./fingerprint.ts";
import { Frontier } from "./frontier.ts";
import type { Item, ItemSink } from "./item.ts";
import {
  type FollowRequest,
  isFollowRequest,
  isItem,
  loadSpiderModule,
  runParse,
  type SpiderContext,
  type SpiderModule,
  type SpiderResponse,
} from "./module-spider.ts";
import { type CrawlRequest, newRequest } from "./request.ts";
import { RobotsCache } from "./robots.ts";
import { shardForHost } from "./shard.ts";
import { CrawlStatsCollector, type RequestDropReason, type StatsSnapshot } from "./stats.ts";
import { nextThrottleDelay } from "./throttle.ts";

export const DEFAULT_USER_AGENT = "feedcrawl/0.1 (+https://github.com/feedcrawl/feedcrawl)";
export const DEFAULT_RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429];
/** Longest Retry-After honoured; longer answers are capped (the crawl would otherwise idle for hours). */
export const MAX_RETRY_AFTER_MS = 120_000;
const RETRY_BACKOFF_BASE_MS = 500;

export interface CrawlerOptions {
  spider: SpiderSpec;
  sink: ItemSink;
  logger: Logger;
  /** This process crawls only the hosts that hash to `index` (of `count`). */
  shard?: { index: number; count: number };
  /** Aborting it stops the crawl gracefully (reason `shutdown`). */
  signal?: AbortSignal;
  /** Where a relative `spider.module` path is resolved (default: the working directory). */
  moduleBaseDir?: string;
  /** Requests kept in memory at each end of the frontier before it spills to disk (default 10 000). */
  frontierMemoryLimit?: number;
  /** Directory for frontier spill files (default: the OS temp dir). */
  tmpDir?: string;
}

export interface CrawlResult {
  reason: string;
  stats: StatsSnapshot;
  /** Set when the crawl ended because the sink failed. */
  error?: Error;
}

interface Slot {
  key: string;
  queue: CrawlRequest[];
  active: number;
  /** Earliest time the next request may start (download delay). */
  nextAt: number;
  /** AutoThrottle's current delay for this slot, ms. */
  throttleDelay: number;
  timer?: NodeJS.Timeout;
  idleSince: number;
}

const isHtmlType = (ct: string) => ct.includes("text/html") || ct.includes("application/xhtml+xml");

function looksLikeHtml(body: Buffer): boolean {
  const head = body.subarray(0, 512).toString("latin1").trimStart().toLowerCase();
  return (
    head.startsWith("<!doctype html") ||
    head.startsWith("<html") ||
    head.startsWith("<head") ||
    head.startsWith("<body")
  );
}

function charsetOf(contentType: string): string | undefined {
  return /charset\s*=\s*"?([^";\s]+)/i.exec(contentType)?.[1];
}

/** The page's text: charset from Content-Type, else a <meta charset> in the first KiB, else UTF-8. */
export function decodeBody(body: Buffer, contentType: string): string {
  const label =
    charsetOf(contentType) ??
    /<meta[^>]+charset\s*=\s*["']?([\w.:-]+)/i.exec(body.subarray(0, 1024).toString("latin1"))?.[1] ??
    "utf-8";
  try {
    return new TextDecoder(label).decode(body);
  } catch {
    return new TextDecoder("utf-8").decode(body);
  }
}

function parseRetryAfter(value: unknown): number | undefined {
  if (typeof value !== "string" || !value.trim()) return undefined;
  const secs = Number(value.trim());
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

export class Crawler {
  readonly stats = new CrawlStatsCollector();
  readonly #spec: SpiderSpec;
  readonly #sink: ItemSink;
  readonly #log: Logger;
  readonly #shard: { index: number; count: number };
  readonly #signal: AbortSignal | undefined;
  readonly #moduleBaseDir: string | undefined;
  readonly #frontier: Frontier;
  readonly #seen = new FingerprintSet();
  /** Retries and redirects: served before the frontier (Scrapy gives them priority). */
  readonly #lane: CrawlRequest[] = [];
  readonly #slots = new Map<string, Slot>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #loggedOnce = new Set<string>();
  #compiled!: CompiledSpider;
  #module: SpiderModule | undefined;
  #agent!: Agent;
  #robots: RobotsCache | undefined;
  #addressAllowed!: (ip: string) => boolean;
  #headers: Record<string, string> = {};

  #slotQueued = 0;
  #inFlight = 0;
  #delayed = 0;
  #itemsEmitted = 0;
  #stopReason: string | undefined;
  #sinkError: Error | undefined;
  #started = false;
  #finished: Promise<CrawlResult> | undefined;
  #resolveDone!: () => void;
  #sweepTimer: NodeJS.Timeout | undefined;

  // Settings with Scrapy's defaults.
  readonly #conc: number;
  readonly #perDomain: number;
  readonly #delayMs: number;
  readonly #randomize: boolean;
  readonly #throttle: { enabled: boolean; target: number; startMs: number; maxMs: number };
  readonly #obeyRobots: boolean;
  readonly #depthLimit: number;
  readonly #retryTimes: number;
  readonly #retryCodes: Set<number>;
  readonly #redirectMax: number;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #close: { itemCount: number; pageCount: number; timeoutSeconds: number; errorCount: number };

  constructor(opts: CrawlerOptions) {
    this.#spec = opts.spider;
    this.#sink = opts.sink;
    this.#log = opts.logger.child({ spider: opts.spider.name });
    this.#shard = opts.shard ?? { index: 0, count: 1 };
    this.#signal = opts.signal;
    this.#moduleBaseDir = opts.moduleBaseDir;
    this.#frontier = new Frontier({
      ...(opts.frontierMemoryLimit ? { memoryLimit: opts.frontierMemoryLimit } : {}),
      ...(opts.tmpDir ? { tmpDir: opts.tmpDir } : {}),
    });
    const s = opts.spider.settings ?? {};
    this.#conc = s.concurrentRequests ?? 16;
    this.#perDomain = s.concurrentRequestsPerDomain ?? 8;
    this.#delayMs = s.downloadDelayMs ?? 0;
    this.#randomize = s.randomizeDownloadDelay ?? true;
    this.#throttle = {
      enabled: s.autoThrottle?.enabled ?? false,
      target: s.autoThrottle?.targetConcurrency ?? 1,
      startMs: s.autoThrottle?.startDelayMs ?? 5000,
      maxMs: s.autoThrottle?.maxDelayMs ?? 60_000,
    };
    this.#obeyRobots = s.robotsTxtObey ?? true;
    this.#depthLimit = s.depthLimit ?? 0;
    this.#retryTimes = s.retryTimes ?? 2;
    this.#retryCodes = new Set(s.retryHttpCodes ?? DEFAULT_RETRY_HTTP_CODES);
    this.#redirectMax = s.redirectMaxTimes ?? 20;
    this.#timeoutMs = (s.downloadTimeoutSeconds ?? 180) * 1000;
    this.#maxBytes = s.maxResponseBytes ?? 1_073_741_824;
    this.#close = {
      itemCount: s.closeSpider?.itemCount ?? 0,
      pageCount: s.closeSpider?.pageCount ?? 0,
      timeoutSeconds: s.closeSpider?.timeoutSeconds ?? 0,
      errorCount: s.closeSpider?.errorCount ?? 0,
    };
    this.stats.gauges = {
      queued: () => this.#frontier.size + this.#lane.length + this.#slotQueued + this.#delayed,
      inFlight: () => this.#inFlight,
      spilled: () => this.#frontier.spilled,
    };
  }

  /** Requests waiting (frontier + retry/redirect lane + slot queues + delayed retries). */
  get queueSize(): number {
    return this.stats.gauges.queued();
  }

  /** Crawls until done or stopped; resolves after in-flight pages drained and the sink closed. */
  run(): Promise<CrawlResult> {
    if (this.#started) throw new Error("Crawler.run() was already called");
    this.#started = true;
    this.#finished = this.#run();
    return this.#finished;
  }

  /** Graceful stop: schedule nothing new, finish in-flight pages, then close the sink. The first reason wins. */
  stop(reason = "shutdown"): void {
    if (this.#stopReason) return;
    this.#stopReason = reason;
    this.#log.info({ reason, inFlight: this.#inFlight }, `Crawl of spider ${this.#spec.name} stopping: ${reason}`);
    // Requests waiting in slots have not been sent: they are dropped, not drained.
    for (const slot of this.#slots.values()) {
      this.#slotQueued -= slot.queue.length;
      slot.queue = [];
      if (slot.timer) clearTimeout(slot.timer);
      slot.timer = undefined;
    }
    for (const t of this.#timers) clearTimeout(t);
    this.#delayed = 0;
    this.#timers.clear();
    this.#checkDone();
  }

  async #run(): Promise<CrawlResult> {
    const s = this.#spec.settings ?? {};
    this.#compiled = compileSpider(this.#spec);
    if (this.#spec.module) this.#module = await loadSpiderModule(this.#spec.module, this.#moduleBaseDir);
    const allow = s.allowPrivateNetworks ?? false;
    this.#addressAllowed = addressChecker(allow);
    this.#agent = createGuardedAgent(allow, {
      connectTimeoutMs: Math.min(this.#timeoutMs, 30_000),
      keepAliveTimeout: 10_000,
    });
    const userAgent = s.userAgent ?? DEFAULT_USER_AGENT;
    this.#headers = {
      accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
      "accept-language": "en",
      ...Object.fromEntries(Object.entries(s.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
      "user-agent": userAgent,
    };
    if (this.#obeyRobots) {
      this.#robots = new RobotsCache({
        dispatcher: this.#agent,
        headers: this.#headers,
        userAgentToken: userAgent.split(/[\s/]/)[0] || "feedcrawl",
        timeoutMs: this.#timeoutMs,
        onFetch: (status, bytes) => {
          this.stats.robotsTxtFetched++;
          this.stats.request();
          if (status !== undefined) this.stats.response(status, bytes);
        },
      });
    }

    const done = new Promise<void>((resolve) => {
      this.#resolveDone = resolve;
    });
    const onAbort = () => this.stop("shutdown");
    if (this.#signal?.aborted) this.stop("shutdown");
    this.#signal?.addEventListener("abort", onAbort, { once: true });
    let timeout: NodeJS.Timeout | undefined;
    if (this.#close.timeoutSeconds > 0)
      timeout = setTimeout(() => this.stop("closespider_timeout"), this.#close.timeoutSeconds * 1000);
    this.#sweepTimer = setInterval(() => this.#sweepSlots(), 30_000);
    this.#sweepTimer.unref();

    this.#log.info(
      { startUrls: this.#spec.startUrls.length, shard: this.#shard },
      `Crawl of spider ${this.#spec.name} started`,
    );
    if (!this.#stopReason) for (const url of this.#spec.startUrls) this.#enqueue(newRequest(url, 0));
    this.#pump();
    this.#checkDone();
    await done;

    if (timeout) clearTimeout(timeout);
    clearInterval(this.#sweepTimer);
    this.#signal?.removeEventListener("abort", onAbort);
    const reason = this.#stopReason ?? "finished";
    this.#frontier.close();
    try {
      await this.#sink.close(reason);
    } catch (err) {
      this.#sinkError ??= err as Error;
      this.#log.error({ err }, `Closing the item sink of spider ${this.#spec.name} failed`);
    }
    await this.#agent.close().catch(() => {});
    this.stats.finish(reason);
    const stats = this.stats.snapshot();
    this.#log.info(
      { reason, stats: stats.status, elapsedSeconds: stats.elapsedSeconds },
      `Crawl of spider ${this.#spec.name} finished: ${reason}`,
    );
    return { reason, stats, ...(this.#sinkError ? { error: this.#sinkError } : {}) };
  }

  #warnOnce(key: string, obj: Record<string, unknown>, msg: string): void {
    if (this.#loggedOnce.has(key)) return;
    if (this.#loggedOnce.size < 10_000) this.#loggedOnce.add(key);
    this.#log.warn(obj, msg);
  }

  #drop(reason: RequestDropReason, url: string, detail?: string): void {
    this.stats.dropRequest(reason);
    this.#log.debug({ url, reason, detail }, `Request for ${url} dropped: ${reason}`);
  }

  /** Admission checks, then the duplicate filter, then the queue. Returns whether it was queued. */
  #enqueue(req: CrawlRequest, lane = false): boolean {
    if (this.#stopReason) return false;
    let u: URL;
    try {
      u = new URL(req.url);
    } catch {
      this.#drop("invalidUrl", req.url);
      return false;
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      this.#drop("notHttp", req.url);
      return false;
    }
    if (this.#depthLimit > 0 && req.depth > this.#depthLimit) {
      this.#drop("depthLimit", req.url);
      return false;
    }
    const host = u.hostname.replace(/^\[|\]$/g, "");
    if (this.#spec.allowedDomains?.length && !hostAllowed(host, this.#spec.allowedDomains)) {
      this.#drop("offsite", req.url);
      return false;
    }
    if (this.#shard.count > 1 && shardForHost(host, this.#shard.count) !== this.#shard.index) {
      this.#drop("otherShard", req.url);
      return false;
    }
    // IP literals are refused here, before robots.txt or any connection; names
    // are checked by the guarded agent on the addresses they resolve to.
    if (net.isIP(host) && !this.#addressAllowed(host)) {
      this.#drop("privateAddress", req.url);
      this.#warnOnce(
        `addr:${host}`,
        { url: req.url, address: host },
        `Request for ${req.url} refused: address ${host} is not allowed`,
      );
      return false;
    }
    if (!req.dontFilter) {
      const fp = fingerprint(req.method, req.url, req.body);
      if (!this.#seen.add(fp)) {
        if (req.redirectChain?.some((c) => canonicalUrl(c) === canonicalUrl(req.url)))
          this.#drop("redirectLoop", req.url);
        else this.#drop("duplicate", req.url);
        return false;
      }
    }
    if (lane) this.#lane.push(req);
    else this.#frontier.push(req);
    return true;
  }

  /** Moves requests from the queues into download slots while global concurrency allows. */
  #pump(): void {
    while (!this.#stopReason && this.#slotQueued + this.#inFlight < this.#conc) {
      if (this.#close.pageCount > 0 && this.stats.pages + this.#slotQueued + this.#inFlight >= this.#close.pageCount)
        break;
      const req = this.#lane.shift() ?? this.#frontier.shift();
      if (!req) break;
      const key = new URL(req.url).hostname;
      let slot = this.#slots.get(key);
      if (!slot) {
        slot = {
          key,
          queue: [],
          active: 0,
          nextAt: 0,
          throttleDelay: Math.max(this.#throttle.startMs, this.#delayMs),
          idleSince: Date.now(),
        };
        this.#slots.set(key, slot);
      }
      slot.queue.push(req);
      this.#slotQueued++;
      this.#processSlot(slot);
    }
    this.#checkDone();
  }

  #slotDelay(slot: Slot): number {
    const base = this.#throttle.enabled ? slot.throttleDelay : this.#delayMs;
    if (base <= 0) return 0;
    return this.#randomize ? base * (0.5 + Math.random()) : base;
  }

  #processSlot(slot: Slot): void {
    if (slot.timer) return;
    while (slot.queue.length > 0 && slot.active < this.#perDomain && !this.#stopReason) {
      const now = Date.now();
      if (slot.nextAt > now) {
        slot.timer = setTimeout(() => {
          slot.timer = undefined;
          this.#processSlot(slot);
        }, slot.nextAt - now);
        return;
      }
      const req = slot.queue.shift() as CrawlRequest;
      this.#slotQueued--;
      slot.active++;
      this.#inFlight++;
      const delay = this.#slotDelay(slot);
      if (delay > 0) slot.nextAt = now + delay;
      this.#process(req, slot)
        .catch((err) => {
          this.#log.error({ err, url: req.url }, `Processing ${req.url} failed unexpectedly`);
          this.#countError("internal");
        })
        .finally(() => {
          slot.active--;
          this.#inFlight--;
          if (slot.active === 0 && slot.queue.length === 0) slot.idleSince = Date.now();
          this.#processSlot(slot);
          this.#pump();
        });
    }
  }

  /** Forgets slots idle for a minute (Scrapy does the same), keeping memory flat over many hosts. */
  #sweepSlots(): void {
    const cutoff = Date.now() - 60_000;
    for (const [key, slot] of this.#slots) {
      if (slot.active === 0 && slot.queue.length === 0 && !slot.timer && slot.idleSince < cutoff)
        this.#slots.delete(key);
    }
  }

  #checkDone(): void {
    if (!this.#resolveDone) return;
    const idle = this.#inFlight === 0 && this.#slotQueued === 0;
    if (this.#stopReason) {
      if (idle) this.#resolveDone();
      return;
    }
    if (idle && this.#delayed === 0 && this.#lane.length === 0 && this.#frontier.size === 0) this.#resolveDone();
    else if (idle && this.#delayed === 0 && this.#close.pageCount > 0 && this.stats.pages >= this.#close.pageCount)
      this.stop("closespider_pagecount");
  }

  #countError(kind: string): void {
    this.stats.error(kind);
    if (this.#close.errorCount > 0 && this.stats.errors >= this.#close.errorCount) this.stop("closespider_errorcount");
  }

  #scheduleRetry(req: CrawlRequest, why: string, retryAfterMs?: number): boolean {
    if (req.retries >= this.#retryTimes || this.#stopReason) return false;
    this.stats.retries++;
    const backoff = RETRY_BACKOFF_BASE_MS * 2 ** req.retries * (0.5 + Math.random());
    const wait = Math.min(retryAfterMs ?? backoff, MAX_RETRY_AFTER_MS);
    this.#log.debug(
      { url: req.url, retry: req.retries + 1, waitMs: Math.round(wait), why },
      `Retrying ${req.url} (${why})`,
    );
    this.#delayed++;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      this.#delayed--;
      if (this.#stopReason) return this.#checkDone();
      this.#lane.push({ ...req, retries: req.retries + 1, dontFilter: true });
      this.#pump();
    }, wait);
    this.#timers.add(t);
    return true;
  }

  async #process(req: CrawlRequest, slot: Slot): Promise<void> {
    if (this.#robots) {
      let allowed: boolean;
      try {
        allowed = await this.#robots.isAllowed(req.url);
      } catch (err) {
        this.#downloadFailed(req, err);
        return;
      }
      if (!allowed) {
        this.#drop("robotsTxt", req.url);
        return;
      }
    }
    this.stats.request();
    let res: FetchResult;
    try {
      res = await fetchOnce(req.url, {
        dispatcher: this.#agent,
        method: req.method,
        headers: { ...this.#headers, ...req.headers },
        ...(req.body !== undefined ? { body: req.body } : {}),
        timeoutMs: this.#timeoutMs,
        maxBytes: this.#maxBytes,
        wantBody: (ct, status) =>
          status >= 200 && status < 300 && (this.#module !== undefined || ct === "" || isHtmlType(ct)),
      });
    } catch (err) {
      this.#downloadFailed(req, err);
      return;
    }
    this.stats.response(res.status, res.wireBytes);
    this.#autoThrottle(slot, res);

    if (res.location !== undefined) return this.#redirect(req, res);
    if (this.#retryCodes.has(res.status)) {
      const retryAfter =
        res.status === 429 || res.status === 503 ? parseRetryAfter(res.headers["retry-after"]) : undefined;
      if (this.#scheduleRetry(req, `HTTP ${res.status}`, retryAfter)) return;
      this.#log.warn(
        { url: req.url, status: res.status, retries: req.retries },
        `Gave up retrying ${req.url}: HTTP ${res.status}`,
      );
      this.#countError(`http${res.status}`);
    }
    this.stats.page(req.depth);
    if (this.#close.pageCount > 0 && this.stats.pages >= this.#close.pageCount) this.stop("closespider_pagecount");
    if (res.status < 200 || res.status >= 300) {
      this.#log.debug({ url: req.url, status: res.status }, `Response from ${req.url} ignored: HTTP ${res.status}`);
      return;
    }
    const body = res.body;
    const html = body !== undefined && (isHtmlType(res.contentType) || (res.contentType === "" && looksLikeHtml(body)));
    if (!html) this.stats.nonHtml++;
    if (!body || (!html && !this.#module)) return;

    let $: CheerioAPI | undefined;
    let text: string | undefined;
    if (html) {
      // parse5 (cheerio's default parser) builds the tree the way browsers do, so
      // malformed pages give the same fields a browser would show.
      text = decodeBody(body, res.contentType);
      $ = load(text);
      const page = { url: req.url, status: res.status, depth: req.depth };
      for (const link of this.#compiled.links($, page)) this.#enqueue(newRequest(link, req.depth + 1));
      for (const item of this.#compiled.items($, page, this.#report)) await this.#emit(item);
    }
    if (this.#module) await this.#runModule(req, res, body, $, text);
  }

  #downloadFailed(req: CrawlRequest, err: unknown): void {
    const e =
      err instanceof DownloadError
        ? err
        : new DownloadError("other", req.url, (err as Error)?.message ?? String(err), err);
    if (e.retryable && this.#scheduleRetry(req, e.kind)) return;
    if (e.kind === "addressBlocked") {
      this.#warnOnce(`blocked:${new URL(req.url).host}`, { url: req.url, kind: e.kind }, e.message);
    } else {
      this.#log.warn(
        { url: req.url, kind: e.kind, retries: req.retries },
        `Download of ${req.url} failed: ${e.message}`,
      );
    }
    this.#countError(e.kind);
  }

  #redirect(req: CrawlRequest, res: FetchResult): void {
    this.stats.redirects++;
    if (!res.location) {
      this.#log.warn({ url: req.url, status: res.status }, `Redirect from ${req.url} has no usable Location`);
      this.#countError("invalidRedirect");
      return;
    }
    if (req.redirects >= this.#redirectMax) {
      this.#drop("redirectMax", res.location);
      this.#log.warn(
        { url: req.url, redirects: req.redirects },
        `Redirect chain from ${req.url} passed redirectMaxTimes ${this.#redirectMax}`,
      );
      return;
    }
    const chain = [...(req.redirectChain ?? []), req.url];
    const target = canonicalUrl(res.location);
    if (chain.some((c) => canonicalUrl(c) === target)) {
      this.#drop("redirectLoop", res.location);
      this.#warnOnce(
        `loop:${target}`,
        { url: req.url, location: res.location },
        `Redirect loop cut at ${req.url} -> ${res.location}`,
      );
      return;
    }
    // 301/302/303 turn a POST into a GET (as browsers and Scrapy do); 307/308 keep it.
    const keepMethod = res.status === 307 || res.status === 308 || req.method === "GET" || req.method === "HEAD";
    const next: CrawlRequest = {
      url: res.location,
      method: keepMethod ? req.method : "GET",
      depth: req.depth,
      retries: 0,
      redirects: req.redirects + 1,
      redirectChain: chain,
      ...(keepMethod && req.body !== undefined ? { body: req.body } : {}),
      ...(req.headers ? { headers: req.headers } : {}),
      ...(req.meta ? { meta: req.meta } : {}),
    };
    this.#enqueue(next, true);
  }

  /** Scrapy's AutoThrottle (see throttle.ts), per slot. */
  #autoThrottle(slot: Slot, res: FetchResult): void {
    if (!this.#throttle.enabled) return;
    slot.throttleDelay = nextThrottleDelay(slot.throttleDelay, res.latencyMs, res.status, {
      targetConcurrency: this.#throttle.target,
      minDelayMs: this.#delayMs,
      maxDelayMs: this.#throttle.maxMs,
    });
  }

  readonly #report: ExtractReport = {
    fieldProblem: (rule, field, kind, url, detail) => {
      this.stats.fieldError(kind);
      this.#warnOnce(
        `field:${rule}:${field}:${kind}`,
        { rule, field, kind, url, detail },
        `Extract rule ${rule} field ${field} dropped on ${url}: ${detail} (logged once per rule)`,
      );
    },
    itemDropped: (rule, reason, url, detail) => {
      this.stats.dropItem(reason);
      this.#warnOnce(
        `item:${rule}:${reason}`,
        { rule, reason, url, detail },
        `Extract rule ${rule} dropped an item on ${url}: ${detail} (logged once per rule)`,
      );
    },
  };

  async #emit(item: Item): Promise<void> {
    if (this.#sinkError) return;
    if (this.#close.itemCount > 0 && this.#itemsEmitted >= this.#close.itemCount) {
      this.stats.dropItem("closeSpider");
      return;
    }
    this.#itemsEmitted++;
    try {
      await this.#sink.write(item);
    } catch (err) {
      this.#sinkError = err as Error;
      this.#log.error({ err }, `Item sink of spider ${this.#spec.name} failed; stopping the crawl`);
      this.stop("sink_error");
      return;
    }
    this.stats.item(item.type);
    if (this.#close.itemCount > 0 && this.#itemsEmitted >= this.#close.itemCount) this.stop("closespider_itemcount");
  }

  async #runModule(
    req: CrawlRequest,
    res: FetchResult,
    body: Buffer,
    $: CheerioAPI | undefined,
    decoded: string | undefined,
  ): Promise<void> {
    const mod = this.#module as SpiderModule;
    let text = decoded;
    const response: SpiderResponse = {
      url: req.url,
      status: res.status,
      headers: res.headers,
      body,
      get text() {
        text ??= decodeBody(body, res.contentType);
        return text;
      },
      $,
      depth: req.depth,
      request: { url: req.url, method: req.method, meta: req.meta ?? {} },
      json() {
        return JSON.parse(this.text);
      },
    };
    const ctx: SpiderContext = {
      spider: this.#spec,
      logger: this.#log.child({ module: this.#spec.module }),
      follow: (url: string, options: Omit<FollowRequest, "url"> = {}) => ({
        ...options,
        url: new URL(url, req.url).href,
      }),
      item: (type: string, fields: Record<string, unknown>) => ({ type, fields }),
    };
    try {
      for await (const out of runParse(mod, response, ctx)) {
        if (isItem(out)) await this.#emit(out);
        else if (isFollowRequest(out)) {
          let url: string;
          try {
            url = new URL(out.url, req.url).href;
          } catch {
            this.#drop("invalidUrl", out.url);
            continue;
          }
          this.#enqueue(
            newRequest(url, req.depth + 1, {
              method: (out.method ?? "GET").toUpperCase(),
              ...(out.body !== undefined ? { body: out.body } : {}),
              ...(out.headers ? { headers: out.headers } : {}),
              ...(out.meta ? { meta: out.meta } : {}),
              ...(out.dontFilter ? { dontFilter: true } : {}),
            }),
          );
        } else {
          this.#warnOnce(
            "module:output",
            { url: req.url },
            `spider.module parse() yielded something that is neither an item nor a request on ${req.url}`,
          );
        }
      }
    } catch (err) {
      this.#log.warn({ err, url: req.url }, `spider.module parse() failed on ${req.url}`);
      this.#countError("spiderError");
    }
  }
}
