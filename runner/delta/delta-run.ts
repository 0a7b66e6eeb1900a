// One run of a delta crawl (spider.settings.delta): conditional requests for
// detail pages, and items filtered by content hash. What the run learns (new
// validators, new hashes) is saved to the store only when the sink closed
// when the caller says the run delivered everything (finish): every item the run
// let through is then stored and reported, so a crashed or stopped run marks
// nothing as seen.
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import type { FetchResult } from "../downloader.ts";
import type { Fetch } from "../http-cache.ts";
import type { Item } from "../item.ts";
import type { PageAwareSink, PageProgress } from "../state/types.ts";
import { type DeltaSnapshot, type DeltaStore, emptySnapshot, type Validators } from "./store.ts";

/** JSON with object keys sorted at every level: the same content always gives the same text. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v && typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** An item's content hash: sha256 of its type and canonical fields, 32 hex digits. */
export function itemHash(item: Item): string {
  return createHash("sha256")
    .update(`${item.type}\n${canonicalJson(item.fields)}`)
    .digest("hex")
    .slice(0, 32);
}

function header(res: FetchResult, name: string): string | undefined {
  const v = res.headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s && s.length <= 1024 ? s : undefined;
}

export interface DeltaCounts {
  /** Conditional requests sent (a detail URL with validators from an earlier run). */
  conditional: number;
  /** 304 answers: the page was unchanged, nothing parsed. */
  notModified: number;
  /** Items dropped because an earlier run (or this one) delivered the same content. */
  unchangedItems: number;
  /** Items let through: new or changed. */
  newItems: number;
}

export class DeltaRun {
  readonly counts: DeltaCounts = { conditional: 0, notModified: 0, unchangedItems: 0, newItems: 0 };
  readonly #store: DeltaStore;
  readonly #prev: DeltaSnapshot;
  readonly #next = emptySnapshot();
  readonly #detail: readonly RegExp[];
  readonly #log: Logger;

  /**
   * `detailPatterns`: the extract rules' urlPatterns. Only URLs matching one get
   * conditional requests: a listing page is always fetched whole, so the links
   * it yields are followed every run (a 304 page yields no links).
   */
  private constructor(store: DeltaStore, prev: DeltaSnapshot, detailPatterns: readonly RegExp[], log: Logger) {
    this.#store = store;
    this.#prev = prev;
    this.#detail = detailPatterns;
    this.#log = log;
  }

  /** Loads the store's state for a run of `spider`. */
  static async open(store: DeltaStore, spider: SpiderSpec, log: Logger): Promise<DeltaRun> {
    const detailPatterns = (spider.extract ?? []).flatMap((r) => (r.urlPattern ? [new RegExp(r.urlPattern)] : []));
    const prev = await store.load();
    log.info(
      { where: store.where, urls: prev.validators.size, items: prev.items.size },
      `Delta state ${store.where} loaded: ${prev.validators.size} URLs with validators, ${prev.items.size} item hashes`,
    );
    return new DeltaRun(store, prev, detailPatterns, log);
  }

  #isDetail(url: string): boolean {
    return this.#detail.some((re) => re.test(url));
  }

  /** The fetch with conditional headers on detail pages, remembering the validators of their 2xx answers. */
  wrapFetch(fetch: Fetch): Fetch {
    return async (url, opts) => {
      if (!this.#isDetail(url) || (opts.method !== undefined && opts.method !== "GET")) return fetch(url, opts);
      const known = this.#prev.validators.get(url);
      const conditional: Record<string, string> = {};
      if (known?.etag) conditional["if-none-match"] = known.etag;
      if (known?.lastModified) conditional["if-modified-since"] = known.lastModified;
      const sent = Object.keys(conditional).length > 0;
      if (sent) this.counts.conditional++;
      const res = await fetch(url, sent ? { ...opts, headers: { ...opts.headers, ...conditional } } : opts);
      if (res.status === 304 && sent) this.counts.notModified++;
      else if (res.status >= 200 && res.status < 300) {
        const v: Validators = {};
        const etag = header(res, "etag");
        const lastModified = header(res, "last-modified");
        if (etag) v.etag = etag;
        if (lastModified) v.lastModified = lastModified;
        if (etag || lastModified) this.#next.validators.set(url, v);
      }
      return res;
    };
  }

  /** Whether the item is new or changed (and, if so, remembers it for this run). */
  admit(item: Item): boolean {
    const hash = itemHash(item);
    if (this.#prev.items.has(hash) || this.#next.items.has(hash)) {
      this.counts.unchangedItems++;
      return false;
    }
    this.#next.items.add(hash);
    this.counts.newItems++;
    return true;
  }

  /** The sink with unchanged items dropped (the crawler puts it in front of the caller's sink). */
  wrapSink(sink: PageAwareSink): PageAwareSink {
    return {
      write: (item: Item, page?: PageProgress) => (this.admit(item) ? sink.write(item, page) : Promise.resolve()),
      close: (reason: string) => sink.close(reason),
    };
  }

  /**
   * The run is over: saves what it learned when `delivered` (the crawl ended
   * with "finished" and every batch was stored and reported), else keeps the
   * previous state, so the items of this run come again next time.
   */
  async finish(delivered: boolean, reason: string): Promise<void> {
    if (!delivered) {
      this.#log.info(
        { where: this.#store.where, reason },
        `Delta state ${this.#store.where} left as it was: the crawl ended with ${reason} or did not deliver everything`,
      );
      return;
    }
    await this.#store.save(this.#next);
    this.#log.info(
      { where: this.#store.where, ...this.counts, urls: this.#next.validators.size },
      `Delta state ${this.#store.where} saved: ${this.counts.newItems} new or changed items, ${this.counts.unchangedItems} unchanged, ${this.counts.notModified} pages not modified`,
    );
  }

  close(): Promise<void> {
    return this.#store.close();
  }
}
