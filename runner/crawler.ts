// The crawl engine's entry point: wires the units together and handles each
// response. The units, each in its own file: settings with Scrapy's defaults
// (crawl-settings.ts), the admission filters (admission.ts), the scheduler with
// its download slots, delays and AutoThrottle (scheduler.ts), the retry and
// redirect policy (retry-redirect.ts), bounded HTML parsing (html.ts), the
// declarative rules (extract.ts) and spider.module (module-spider.ts). Here:
// robots.txt, the close conditions, items to the sink, and a graceful stop
// that drains in-flight pages.
import { AsyncLocalStorage } from "node:async_hooks";
import path from "node:path";
import type { CheerioAPI } from "cheerio";
import type { Logger } from "pino";
import type { Agent, Dispatcher } from "undici";
import type { SpiderSpec } from "../crds/schema/spider.ts";
import { addressChecker, createGuardedAgent, type ResolveAll } from "../net/address-guard.ts";
import { AdmissionFilter } from "./admission.ts";
import { CookieSession } from "./cookies.ts";
import { type CrawlSettings, resolveSettings } from "./crawl-settings.ts";
import type { DeltaRun } from "./delta/delta-run.ts";
import { DEFAULT_MAX_RESPONSE_BYTES, DownloadError, type FetchResult, fetchOnce } from "./downloader.ts";
import { type CompiledSpider, compileSpider, type ExtractReport } from "./extract.ts";
import { Frontier, type RequestQueue } from "./frontier.ts";
import { decodeBody, isHtmlType, isJsonType, looksLikeHtml, ParseError, parseHtml } from "./html.ts";
import { type Fetch, HttpCache } from "./http-cache.ts";
import type { Item } from "./item.ts";
import {
  loadSpiderModule,
  type ModuleOutputs,
  runModuleSpider,
  type SpiderModule,
  spiderModuleSource,
} from "./module-spider.ts";
import { ProxyDispatcher, type ProxyPlan, proxyPlanFromSettings } from "./proxy.ts";
import { type CrawlRequest, newRequest } from "./request.ts";
import { RetryPolicy, redirectDecision } from "./retry-redirect.ts";
import { MAX_CRAWL_DELAY_MS, RobotsCache } from "./robots.ts";
import { Scheduler } from "./scheduler.ts";
import { SITEMAP_MAX_DECODED_BYTES } from "./sitemap.ts";
import { isRobotsTxtUrl, SitemapCrawl } from "./sitemap-crawl.ts";
import { DurableFrontier, type PageRun } from "./state/durable-frontier.ts";
import type { CrawlState, HostGate, PageAwareSink, SharedCrawlState } from "./state/types.ts";
import { CrawlStatsCollector, type RequestDropReason, type StatsSnapshot } from "./stats.ts";

/** The page attempt a request runs as, in a crawl with a state (items and retries find it here). */
const currentPage = new AsyncLocalStorage<PageRun>();

export interface CrawlerOptions {
  spider: SpiderSpec;
  /** Where items go; with `state`, each item comes with its page (the exporter's exactly-once accounting). */
  sink: PageAwareSink;
  logger: Logger;
  /** This process crawls only the hosts that hash to `index` (of `count`). */
  shard?: { index: number; count: number };
  /** Aborting it stops the crawl gracefully (reason `shutdown`). */
  signal?: AbortSignal;
  /** Where a relative `spider.module` path is resolved (default: the working directory). */
  moduleBaseDir?: string;
  /**
   * Where spider.moduleConfigMapRef's key is mounted (`feedcrawl run`:
   * SPIDER_MODULE_MOUNT_PATH). Absent (`feedcrawl crawl`): a ConfigMap module is refused.
   */
  moduleConfigMapDir?: string;
  /** Requests kept in memory at each end of the frontier before it spills to disk (default 10 000). */
  frontierMemoryLimit?: number;
  /** Directory for frontier spill files (default: the OS temp dir). */
  tmpDir?: string;
  /** Replaces the system DNS resolver (tests: names that resolve to loopback); the address guard still applies. */
  resolve?: ResolveAll;
  /**
   * Proxies to use when `settings.proxy` is absent: the local CLI passes
   * HTTP_PROXY/HTTPS_PROXY/NO_PROXY here (`proxyPlanFromEnv`); the engine never
   * reads the environment itself.
   */
  proxyFallback?: ProxyPlan;
  /**
   * Whether `settings.httpCache` may be used, and where a relative `dir` is resolved
   * (the local CLI: its working directory). Absent (the runner pod): the setting is
   * ignored with a warning — a cache in a pod would only hide the site's changes.
   */
  httpCache?: { baseDir: string };
  /**
   * The durable frontier and seen-set (runner/state), opened and recovered by
   * the caller: requests are queued and leased there, and each page's end is
   * recorded. Absent: the in-memory frontier and seen-set.
   */
  state?: { state: CrawlState; queued: number };
  /**
   * A delta crawl (spider.settings.delta), opened by the caller: conditional
   * requests for detail pages, unchanged items dropped before the sink. The
   * caller saves it (DeltaRun.finish) once it knows everything was delivered.
   */
  delta?: DeltaRun;
}

export interface CrawlResult {
  reason: string;
  stats: StatsSnapshot;
  /** Set when the crawl ended because the sink failed. */
  error?: Error;
}

export class Crawler {
  readonly stats = new CrawlStatsCollector();
  readonly #spec: SpiderSpec;
  readonly #sink: PageAwareSink;
  readonly #log: Logger;
  readonly #shard: { index: number; count: number };
  readonly #signal: AbortSignal | undefined;
  readonly #moduleBaseDir: string | undefined;
  readonly #moduleConfigMapDir: string | undefined;
  #moduleSource: string | undefined;
  /** The module's logger, made once (not per page). */
  #moduleLog: Logger | undefined;
  readonly #resolve: ResolveAll | undefined;
  readonly #proxyFallback: ProxyPlan | undefined;
  readonly #s: CrawlSettings;
  readonly #frontier: RequestQueue;
  readonly #durable: DurableFrontier | undefined;
  /** Politeness over every worker, when the state is shared (Redis). */
  readonly #hostGate: HostGate | undefined;
  readonly #scheduler: Scheduler;
  readonly #retry: RetryPolicy;
  readonly #loggedOnce = new Set<string>();
  /** fetchOnce, or the HTTP cache in front of it (settings.httpCache, local CLI only). */
  readonly #fetch: Fetch;
  readonly #httpCache: HttpCache | undefined;
  #admission!: AdmissionFilter;
  #compiled!: CompiledSpider;
  #module: SpiderModule | undefined;
  #agent!: Agent;
  /** What every request goes through: the guarded agent, or the proxies in front of it. */
  #http!: Dispatcher;
  #robots: RobotsCache | undefined;
  /** Reads robots.txt Sitemap lines when robotsTxtObey is off (else #robots does). */
  #sitemapRobots: RobotsCache | undefined;
  #sitemaps: SitemapCrawl | undefined;
  /** The crawl's cookie jar (settings.cookiesEnabled). */
  readonly #cookies: CookieSession | undefined;
  #itemsEmitted = 0;
  #stopReason: string | undefined;
  #sinkError: Error | undefined;
  #started = false;

  constructor(opts: CrawlerOptions) {
    this.#spec = opts.spider;
    this.#sink = opts.delta ? opts.delta.wrapSink(opts.sink) : opts.sink;
    this.#log = opts.logger.child({ spider: opts.spider.name });
    this.#shard = opts.shard ?? { index: 0, count: 1 };
    this.#signal = opts.signal;
    this.#moduleBaseDir = opts.moduleBaseDir;
    this.#moduleConfigMapDir = opts.moduleConfigMapDir;
    this.#resolve = opts.resolve;
    this.#proxyFallback = opts.proxyFallback;
    this.#s = resolveSettings(opts.spider);
    this.#cookies = this.#s.cookies ? new CookieSession() : undefined;
    this.#httpCache = this.#createHttpCache(opts.httpCache);
    const fetch = this.#httpCache
      ? this.#httpCache.wrap(fetchOnce, (err) =>
          this.#warnOnce("httpCacheWrite", { err }, `HTTP cache: could not store a response: ${err.message}`),
        )
      : fetchOnce;
    this.#fetch = opts.delta ? opts.delta.wrapFetch(fetch) : fetch;
    const shared = opts.state?.state as Partial<SharedCrawlState> | undefined;
    this.#hostGate = shared?.shared ? shared.politeness : undefined;
    this.#durable = opts.state ? this.#durableFrontier(opts.state) : undefined;
    this.#frontier =
      this.#durable ??
      new Frontier({
        ...(opts.frontierMemoryLimit ? { memoryLimit: opts.frontierMemoryLimit } : {}),
        ...(opts.tmpDir ? { tmpDir: opts.tmpDir } : {}),
      });
    const s = this.#s;
    this.#scheduler = new Scheduler({
      frontier: this.#frontier,
      concurrency: s.concurrency,
      perDomain: s.perDomain,
      delayMs: s.delayMs,
      randomizeDelay: s.randomizeDelay,
      throttle: s.throttle,
      process: (req, observe, skipDelay) =>
        this.#durable
          ? this.#processPage(this.#durable, req, observe, skipDelay)
          : this.#process(req, observe, skipDelay),
      onProcessError: (err, req) => {
        this.#log.error({ err, url: req.url }, `Processing ${req.url} failed unexpectedly`);
        this.#countError("internal");
      },
      pageLimit: s.close.pageCount,
      pagesDone: () => this.stats.pages,
      onPageLimit: () => this.stop("closespider_pagecount"),
      ...(s.obeyRobots ? { originDelayMs: (origin: string) => this.#crawlDelayMs(origin) } : {}),
      // A request's slot frees itself this long after its worker died mid-request.
      ...(this.#hostGate ? { hostGate: { gate: this.#hostGate, slotTtlMs: s.timeoutMs + 30_000 } } : {}),
    });
    if (this.#durable) this.#durable.hold = (work) => this.#scheduler.hold(work);
    this.#retry = new RetryPolicy(s.retryTimes, s.retryHttpCodes);
    const memory = this.#frontier instanceof Frontier ? this.#frontier : undefined;
    this.stats.gauges = {
      queued: () => this.#scheduler.queued,
      inFlight: () => this.#scheduler.inFlight,
      spilled: () => memory?.spilled ?? 0,
    };
  }

  #durableFrontier(opts: NonNullable<CrawlerOptions["state"]>): DurableFrontier {
    return new DurableFrontier({
      state: opts.state,
      queued: opts.queued,
      // Shared with other workers: lease one page at a time and look again soon, or one worker takes them all.
      ...(this.#hostGate ? { prefetch: 1, pollMs: 100 } : {}),
      onDuplicate: (req) => this.#drop(AdmissionFilter.duplicateReason(req), req.url),
      onError: (err) => {
        this.#sinkError ??= err;
        this.#log.error({ err }, `Crawl state of spider ${this.#spec.name} failed; stopping the crawl`);
        this.stop("state_error");
      },
    });
  }

  /** A leased page, in a crawl with a state: its items carry it, and its end is recorded unless a retry took over. */
  async #processPage(
    frontier: DurableFrontier,
    req: CrawlRequest,
    observe: (latencyMs: number, status: number) => void,
    skipDelay: () => void,
  ): Promise<void> {
    const run = frontier.begin(req);
    try {
      await currentPage.run(run, () => this.#process(req, observe, skipDelay));
    } finally {
      // A page cut short by an error is not recorded: it stays in flight, and a restart redoes it.
      if (!run.handedOff && !this.#sinkError) frontier.processed(run);
    }
  }

  /** Requests waiting (frontier + retry/redirect lane + slot queues + delayed retries). */
  get queueSize(): number {
    return this.stats.gauges.queued();
  }

  /** Crawls until done or stopped; resolves after in-flight pages drained and the sink closed. */
  run(): Promise<CrawlResult> {
    if (this.#started) throw new Error("Crawler.run() was already called");
    this.#started = true;
    return this.#run();
  }

  /** Graceful stop: schedule nothing new, finish in-flight pages, then close the sink. The first reason wins. */
  stop(reason = "shutdown"): void {
    if (this.#stopReason) return;
    this.#stopReason = reason;
    this.#log.info(
      { reason, inFlight: this.#scheduler.inFlight },
      `Crawl of spider ${this.#spec.name} stopping: ${reason}`,
    );
    this.#scheduler.stop();
  }

  async #run(): Promise<CrawlResult> {
    this.#compiled = compileSpider(this.#spec);
    this.#moduleSource = spiderModuleSource(this.#spec, this.#moduleConfigMapDir);
    if (this.#moduleSource) {
      this.#module = await loadSpiderModule(this.#moduleSource, this.#moduleBaseDir);
      this.#moduleLog = this.#log.child({ module: this.#moduleSource });
    }
    this.#connect();
    const onAbort = () => this.stop("shutdown");
    if (this.#signal?.aborted) this.stop("shutdown");
    this.#signal?.addEventListener("abort", onAbort, { once: true });
    const { timeoutSeconds } = this.#s.close;
    const timeout =
      timeoutSeconds > 0 ? setTimeout(() => this.stop("closespider_timeout"), timeoutSeconds * 1000) : undefined;

    this.#log.info(
      { startUrls: this.#spec.startUrls.length, shard: this.#shard },
      `Crawl of spider ${this.#spec.name} started`,
    );
    if (!this.#stopReason) {
      for (const url of this.#spec.startUrls) this.#enqueue(newRequest(url, 0));
      this.#sitemaps?.start();
    }
    await this.#scheduler.run();

    clearTimeout(timeout);
    this.#signal?.removeEventListener("abort", onAbort);
    return this.#finish(this.#stopReason ?? "finished");
  }

  /** The guarded agent, the admission filters that share its address rules, and robots.txt. */
  #connect(): void {
    const s = this.#s;
    this.#admission = new AdmissionFilter({
      ...(this.#spec.allowedDomains ? { allowedDomains: this.#spec.allowedDomains } : {}),
      depthLimit: s.depthLimit,
      // With a state, the state is the seen-set (insert-if-unseen when queued).
      dedupe: !this.#durable,
      shard: this.#shard,
      addressAllowed: addressChecker(s.allowPrivateNetworks),
    });
    this.#agent = createGuardedAgent(s.allowPrivateNetworks, {
      connectTimeoutMs: Math.min(s.timeoutMs, 30_000),
      keepAliveTimeout: 10_000,
      ...(this.#resolve ? { resolve: this.#resolve } : {}),
    });
    this.#http = this.#proxies() ?? this.#agent;
    if (s.obeyRobots) this.#robots = this.#robotsCache();
    if (this.#spec.sitemapUrls?.length) this.#sitemaps = this.#sitemapCrawl();
  }

  /** settings.httpCache, when the caller allows it; else a warning if it was asked for. */
  #createHttpCache(allowed: CrawlerOptions["httpCache"]): HttpCache | undefined {
    const setting = this.#spec.settings?.httpCache;
    if (!setting?.enabled) return undefined;
    if (!allowed) {
      this.#log.warn(
        "spider.settings.httpCache is for developing spiders with `feedcrawl crawl`: ignored in the runner pod",
      );
      return undefined;
    }
    const dir = path.resolve(allowed.baseDir, setting.dir ?? ".feedcrawl/httpcache", this.#spec.name);
    this.#log.info({ dir }, `HTTP cache on: responses are replayed from ${dir}`);
    return new HttpCache({
      dir,
      expirationSeconds: setting.expirationSeconds ?? 0,
      ignoreHttpCodes: setting.ignoreHttpCodes ?? [],
    });
  }

  #robotsCache(): RobotsCache {
    const s = this.#s;
    return new RobotsCache({
      dispatcher: this.#http,
      fetch: this.#fetch,
      headers: s.headers,
      userAgentToken: s.userAgent.split(/[\s/]/)[0] || "feedcrawl",
      timeoutMs: s.timeoutMs,
      onFetch: (status, bytes) => {
        this.stats.robotsTxtFetched++;
        this.stats.request();
        if (status !== undefined) this.stats.response(status, bytes);
      },
      onCrawlDelayCapped: (origin, requestedMs) =>
        this.#warnOnce(
          `crawlDelay:${origin}`,
          { origin, crawlDelaySeconds: requestedMs / 1000, appliedSeconds: MAX_CRAWL_DELAY_MS / 1000 },
          `robots.txt of ${origin} asks for Crawl-delay ${requestedMs / 1000} s; capped at ${MAX_CRAWL_DELAY_MS / 1000} s`,
        ),
      ...(this.#hostGate ? { shared: this.#hostGate.robotsOnce.bind(this.#hostGate) } : {}),
    });
  }

  #sitemapCrawl(): SitemapCrawl {
    if (!this.#robots && this.#spec.sitemapUrls?.some(isRobotsTxtUrl)) this.#sitemapRobots = this.#robotsCache();
    return new SitemapCrawl(this.#spec, {
      log: this.#log,
      stats: this.stats,
      enqueue: (req) => this.#enqueue(req),
      drop: (reason, url) => this.#drop(reason, url),
      countError: (kind) => this.#countError(kind),
      robots: () => (this.#robots ?? this.#sitemapRobots) as RobotsCache,
      hold: (work) => this.#scheduler.hold(work),
    });
  }

  /** The proxy dispatcher of settings.proxy (else of the caller's fallback plan), in front of the guarded agent. */
  #proxies(): ProxyDispatcher | undefined {
    const setting = this.#spec.settings?.proxy;
    const plan = setting ? proxyPlanFromSettings(setting) : this.#proxyFallback;
    if (!plan || (plan.http.length === 0 && plan.https.length === 0)) return undefined;
    const redact = (u: string) => u.replace(/\/\/[^@/]*@/, "//***@");
    this.#log.info(
      { http: plan.http.map(redact), https: plan.https.map(redact), rotation: plan.rotation, noProxy: plan.noProxy },
      `Crawling through ${new Set([...plan.http, ...plan.https]).size} proxy server(s) (${plan.rotation})`,
    );
    return new ProxyDispatcher({
      plan,
      direct: this.#agent,
      allowPrivateNetworks: this.#s.allowPrivateNetworks,
      connectTimeoutMs: Math.min(this.#s.timeoutMs, 30_000),
      ...(this.#resolve ? { resolve: this.#resolve } : {}),
    });
  }

  /** The robots.txt Crawl-delay of `origin` (the scheduler's floor for its slot), logged once per origin. */
  async #crawlDelayMs(origin: string): Promise<number> {
    const ms = (await this.#robots?.crawlDelayMs(origin)) ?? 0;
    if (ms > 0 && ms > this.#s.delayMs)
      this.#log.info(
        { origin, crawlDelayMs: ms },
        `robots.txt of ${origin} sets Crawl-delay ${ms / 1000} s: requests to its host are spaced by at least that`,
      );
    return ms;
  }

  async #finish(reason: string): Promise<CrawlResult> {
    await this.#durable?.drain();
    this.#frontier.close();
    try {
      await this.#sink.close(reason);
    } catch (err) {
      this.#sinkError ??= err as Error;
      this.#log.error({ err }, `Closing the item sink of spider ${this.#spec.name} failed`);
    }
    if (this.#http !== this.#agent) await this.#http.close().catch(() => {});
    await this.#agent.close().catch(() => {});
    this.stats.finish(reason);
    const cache = this.#httpCache;
    if (cache)
      this.#log.info(
        { dir: cache.dir, hits: cache.hits, misses: cache.misses, stored: cache.stored },
        `HTTP cache: ${cache.hits} hits, ${cache.misses} misses, ${cache.stored} responses stored`,
      );
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

  #drop(reason: RequestDropReason, url: string): void {
    this.stats.dropRequest(reason);
    this.#log.debug({ url, reason }, `Request for ${url} dropped: ${reason}`);
  }

  /** The admission filters, then the queue (`priority`: the redirect lane). Returns whether it was queued. */
  #enqueue(req: CrawlRequest, priority = false): boolean {
    // Stopping: nothing new is queued — except into a state, for the resumed crawl (the page that found it becomes done).
    if (this.#stopReason && !this.#durable) return false;
    const verdict = this.#admission.admit(req);
    if (!verdict.ok) {
      this.#drop(verdict.reason, req.url);
      if (verdict.address !== undefined)
        this.#warnOnce(
          `addr:${verdict.address}`,
          { url: req.url, address: verdict.address },
          `Request for ${req.url} refused: address ${verdict.address} is not allowed`,
        );
      return false;
    }
    if (priority && this.#durable) this.#durable.pushPriority(req);
    else if (priority) this.#scheduler.pushPriority(req);
    else this.#scheduler.push(req);
    return true;
  }

  #countError(kind: string): void {
    this.stats.error(kind);
    const max = this.#s.close.errorCount;
    if (max > 0 && this.stats.errors >= max) this.stop("closespider_errorcount");
  }

  /** Schedules a retry if the policy allows one; false when retries are used up or the crawl is stopping. */
  #scheduleRetry(req: CrawlRequest, why: string, res?: FetchResult): boolean {
    const wait = this.#retry.delayMs(req, res);
    if (wait === undefined) return false;
    // Retried, now or (stopping, with a state) by the resumed crawl: this attempt does not end the page.
    const page = currentPage.getStore();
    if (page) page.handedOff = true;
    if (this.#stopReason) return false;
    this.stats.retries++;
    this.#log.debug({ url: req.url, retry: req.retries + 1, waitMs: wait, why }, `Retrying ${req.url} (${why})`);
    this.#scheduler.pushLater(RetryPolicy.next(req), wait);
    return true;
  }

  /** One request from its slot: robots.txt, the download, then the response. */
  async #process(
    req: CrawlRequest,
    observe: (latencyMs: number, status: number) => void,
    skipDelay: () => void,
  ): Promise<void> {
    if (this.#robots) {
      let allowed: boolean;
      try {
        allowed = await this.#robots.isAllowed(req.url);
      } catch (err) {
        return this.#downloadFailed(req, err);
      }
      if (!allowed) return this.#drop("robotsTxt", req.url);
    }
    this.stats.request();
    const jar = req.cookies === false ? undefined : this.#cookies;
    const headers = { ...this.#s.headers, ...req.headers };
    let res: FetchResult;
    try {
      res = await this.#fetch(req.url, {
        dispatcher: this.#http,
        method: req.method,
        headers: jar ? jar.withCookies(req.url, headers) : headers,
        ...(req.body !== undefined ? { body: req.body } : {}),
        timeoutMs: this.#s.timeoutMs,
        ...this.#bodyLimit(req),
        wantBody: (ct, status) =>
          status >= 200 &&
          status < 300 &&
          (req.kind === "sitemap" ||
            this.#module !== undefined ||
            ct === "" ||
            isHtmlType(ct) ||
            (this.#compiled.readsJson && isJsonType(ct))),
      });
    } catch (err) {
      return this.#downloadFailed(req, err);
    }
    this.stats.response(res.status, res.wireBytes);
    if (res.fromCache) skipDelay();
    else observe(res.latencyMs, res.status);
    jar?.store(req.url, res.headers["set-cookie"]);
    if (res.location !== undefined) return this.#redirect(req, res);
    if (this.#retry.retriesStatus(res.status)) {
      if (this.#scheduleRetry(req, `HTTP ${res.status}`, res)) return;
      this.#log.warn(
        { url: req.url, status: res.status, retries: req.retries },
        `Gave up retrying ${req.url}: HTTP ${res.status}`,
      );
      this.#countError(`http${res.status}`);
    }
    this.stats.page(req.depth);
    const { pageCount } = this.#s.close;
    if (pageCount > 0 && this.stats.pages >= pageCount) this.stop("closespider_pagecount");
    if (res.status < 200 || res.status >= 300) {
      if (req.kind === "sitemap")
        this.#log.warn({ url: req.url, status: res.status }, `Sitemap ${req.url} answered HTTP ${res.status}`);
      else
        this.#log.debug({ url: req.url, status: res.status }, `Response from ${req.url} ignored: HTTP ${res.status}`);
      return;
    }
    if (req.kind === "sitemap") return this.#sitemaps?.read(req, res.body);
    await this.#handlePage(req, res);
  }

  /** maxResponseBytes; a sitemap may always reach the sitemap protocol's 50 MB. */
  #bodyLimit(req: CrawlRequest): { maxBytes?: number } {
    const max = this.#s.maxResponseBytes;
    if (req.kind === "sitemap")
      return { maxBytes: Math.max(max ?? DEFAULT_MAX_RESPONSE_BYTES, SITEMAP_MAX_DECODED_BYTES) };
    return max !== undefined ? { maxBytes: max } : {};
  }

  /** A 2xx JSON response when some extract rule reads JSON: those rules, then spider.module. */
  async #handleJson(req: CrawlRequest, res: FetchResult, body: Buffer): Promise<void> {
    let doc: unknown;
    try {
      doc = JSON.parse(decodeBody(body, res.contentType));
    } catch (err) {
      this.#log.warn(
        { url: req.url, kind: "parse" },
        `Response from ${req.url} is not valid JSON: ${(err as Error).message}`,
      );
      return this.#countError("parse");
    }
    const page = { url: req.url, status: res.status, depth: req.depth };
    for (const link of this.#compiled.jsonLinks(doc, page))
      this.#enqueue(newRequest(link.url, req.depth + 1, link.cookies === false ? { cookies: false } : {}));
    for (const item of this.#compiled.jsonItems(doc, page, this.#report, req.extractRules)) await this.#emit(item);
    if (this.#module) await this.#runModule(req, res, body, undefined, undefined);
  }

  /** A 2xx response: the declarative rules on HTML, then spider.module. */
  async #handlePage(req: CrawlRequest, res: FetchResult): Promise<void> {
    const body = res.body;
    if (body !== undefined && this.#compiled.readsJson && isJsonType(res.contentType))
      return this.#handleJson(req, res, body);
    const html = body !== undefined && (isHtmlType(res.contentType) || (res.contentType === "" && looksLikeHtml(body)));
    if (!html) this.stats.nonHtml++;
    if (!body || (!html && !this.#module)) return;

    let $: CheerioAPI | undefined;
    let text: string | undefined;
    if (html) {
      text = decodeBody(body, res.contentType);
      try {
        $ = parseHtml(text, req.url);
      } catch (err) {
        if (!(err instanceof ParseError)) throw err;
        this.#log.warn({ url: req.url, kind: "parse" }, err.message);
        return this.#countError("parse");
      }
      const page = { url: req.url, status: res.status, depth: req.depth };
      for (const link of this.#compiled.links($, page))
        this.#enqueue(newRequest(link.url, req.depth + 1, link.cookies === false ? { cookies: false } : {}));
      for (const item of this.#compiled.items($, page, this.#report, req.extractRules)) await this.#emit(item);
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

  /** A 3xx: the next hop goes back through the admission filters, ahead of the frontier. */
  #redirect(req: CrawlRequest, res: FetchResult): void {
    this.stats.redirects++;
    const location = res.location ?? "";
    const d = redirectDecision(req, { status: res.status, location }, this.#s.redirectMax);
    switch (d.kind) {
      case "invalid":
        this.#log.warn({ url: req.url, status: res.status }, `Redirect from ${req.url} has no usable Location`);
        this.#countError("invalidRedirect");
        return;
      case "tooMany":
        this.#drop("redirectMax", location);
        this.#log.warn(
          { url: req.url, redirects: req.redirects },
          `Redirect chain from ${req.url} passed redirectMaxTimes ${this.#s.redirectMax}`,
        );
        return;
      case "loop":
        this.#drop("redirectLoop", location);
        this.#warnOnce(
          `loop:${d.target}`,
          { url: req.url, location },
          `Redirect loop cut at ${req.url} -> ${location}`,
        );
        return;
      case "follow":
        this.#enqueue(d.next, true);
    }
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
    const max = this.#s.close.itemCount;
    if (max > 0 && this.#itemsEmitted >= max) {
      this.stats.dropItem("closeSpider");
      return;
    }
    this.#itemsEmitted++;
    try {
      await this.#sink.write(item, currentPage.getStore()?.progress);
    } catch (err) {
      this.#sinkError = err as Error;
      this.#log.error({ err }, `Item sink of spider ${this.#spec.name} failed; stopping the crawl`);
      this.stop("sink_error");
      return;
    }
    this.stats.item(item.type);
    if (max > 0 && this.#itemsEmitted >= max) this.stop("closespider_itemcount");
  }

  readonly #moduleOutputs: ModuleOutputs = {
    item: (item) => this.#emit(item),
    request: (req) => {
      this.#enqueue(req);
    },
    rejected: (kind, value) => {
      if (kind === "invalidUrl") return this.#drop("invalidUrl", value);
      this.#warnOnce(
        "module:output",
        { url: value },
        `spider.module parse() yielded something that is neither an item nor a request on ${value}`,
      );
    },
  };

  async #runModule(
    req: CrawlRequest,
    res: FetchResult,
    body: Buffer,
    $: CheerioAPI | undefined,
    text: string | undefined,
  ): Promise<void> {
    const page = {
      request: req,
      status: res.status,
      headers: res.headers,
      contentType: res.contentType,
      body,
      $,
      text,
    };
    try {
      await runModuleSpider(
        this.#module as SpiderModule,
        this.#spec,
        this.#moduleLog ?? this.#log,
        page,
        this.#moduleOutputs,
      );
    } catch (err) {
      this.#log.warn({ err, url: req.url }, `spider.module parse() failed on ${req.url}`);
      this.#countError("spiderError");
    }
  }
}
