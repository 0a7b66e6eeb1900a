// An HTTP cache for developing spiders (Scrapy's HttpCacheMiddleware with the
// filesystem storage and the "dummy" policy: every response is cached, replayed
// until it expires, with no HTTP revalidation). A response is two files under
// <dir>/<spider>/<2 hex>/: <sha256>.body (the decoded body) and <sha256>.json
// (status, headers, URL…), the JSON written last so that its presence means the
// entry is complete. The key is the method, the URL and the request body.
// Local CLI only: the crawler uses it when the CLI allows it (CrawlerOptions.httpCache).
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { FetchOptions, FetchResult } from "./downloader.ts";

export type Fetch = (url: string, opts: FetchOptions) => Promise<FetchResult>;

export interface HttpCacheOptions {
  /** The spider's folder: settings.httpCache.dir (resolved) / spider name. */
  dir: string;
  /** 0: never expires. */
  expirationSeconds: number;
  ignoreHttpCodes: readonly number[];
}

interface Entry {
  url: string;
  status: number;
  headers: FetchResult["headers"];
  contentType: string;
  location?: string;
  wireBytes: number;
  truncated: boolean;
  hasBody: boolean;
  storedAt: number;
}

export class HttpCache {
  readonly dir: string;
  hits = 0;
  misses = 0;
  stored = 0;
  readonly #expirationMs: number;
  readonly #ignore: ReadonlySet<number>;

  constructor(opts: HttpCacheOptions) {
    this.dir = opts.dir;
    this.#expirationMs = opts.expirationSeconds * 1000;
    this.#ignore = new Set(opts.ignoreHttpCodes);
  }

  #paths(url: string, opts: FetchOptions): { meta: string; body: string } {
    const key = createHash("sha256")
      .update(`${opts.method ?? "GET"}\n${url}\n${opts.body ?? ""}`)
      .digest("hex");
    const base = path.join(this.dir, key.slice(0, 2), key);
    return { meta: `${base}.json`, body: `${base}.body` };
  }

  /** The cached response, or undefined when absent, expired, or not usable for this request. */
  async #read(url: string, opts: FetchOptions): Promise<FetchResult | undefined> {
    const paths = this.#paths(url, opts);
    let entry: Entry;
    try {
      entry = JSON.parse(await readFile(paths.meta, "utf8")) as Entry;
    } catch {
      return undefined;
    }
    if (this.#expirationMs > 0 && Date.now() - entry.storedAt > this.#expirationMs) return undefined;
    // Stored without its body (the crawler did not want it then) but wanted now: fetch it.
    if (!entry.hasBody && entry.location === undefined && opts.wantBody?.(entry.contentType, entry.status) !== false)
      return undefined;
    let body: Buffer | undefined;
    if (entry.hasBody) {
      try {
        body = await readFile(paths.body);
      } catch {
        return undefined;
      }
      if (opts.maxBytes !== undefined && body.length > opts.maxBytes && !opts.truncate) return undefined;
      if (opts.maxBytes !== undefined && opts.truncate) body = body.subarray(0, opts.maxBytes);
    }
    return {
      url: entry.url,
      status: entry.status,
      headers: entry.headers,
      contentType: entry.contentType,
      ...(body ? { body } : {}),
      ...(entry.location !== undefined ? { location: entry.location } : {}),
      wireBytes: 0,
      truncated: entry.truncated,
      latencyMs: 0,
      fromCache: true,
    };
  }

  async #write(url: string, opts: FetchOptions, res: FetchResult): Promise<void> {
    if (this.#ignore.has(res.status)) return;
    const paths = this.#paths(url, opts);
    await mkdir(path.dirname(paths.meta), { recursive: true });
    const tmp = (p: string) => `${p}.${randomBytes(4).toString("hex")}.tmp`;
    if (res.body) {
      const t = tmp(paths.body);
      await writeFile(t, res.body);
      await rename(t, paths.body);
    }
    const entry: Entry = {
      url: res.url,
      status: res.status,
      headers: res.headers,
      contentType: res.contentType,
      ...(res.location !== undefined ? { location: res.location } : {}),
      wireBytes: res.wireBytes,
      truncated: res.truncated,
      hasBody: res.body !== undefined,
      storedAt: Date.now(),
    };
    const t = tmp(paths.meta);
    await writeFile(t, JSON.stringify(entry));
    await rename(t, paths.meta);
    this.stored++;
  }

  /** `fetch` with the cache in front: a hit never reaches the network; a miss is stored after it succeeded. */
  wrap(fetch: Fetch, onWriteError: (err: Error) => void): Fetch {
    return async (url, opts) => {
      const cached = await this.#read(url, opts);
      if (cached) {
        this.hits++;
        return cached;
      }
      this.misses++;
      const res = await fetch(url, opts);
      await this.#write(url, opts, res).catch(onWriteError);
      return res;
    };
  }
}
