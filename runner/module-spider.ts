// The escape hatch: `spider.module` names a JS/TS module exporting
// `parse(response, ctx)` that yields (or returns) items and requests, for what
// the declarative rules cannot express. Here: its API, loading it, and running
// it on one response. See docs/runner.md for the API.
import { isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { CheerioAPI } from "cheerio";
import type { Logger } from "pino";
import type { SpiderSpec } from "../crds/schema/spider.ts";
import { decodeBody } from "./html.ts";
import type { Item } from "./item.ts";
import { type CrawlRequest, newRequest } from "./request.ts";

/** A request a module spider asks for. */
export interface FollowRequest {
  url: string;
  method?: string;
  body?: string;
  headers?: Record<string, string>;
  meta?: Record<string, unknown>;
  /** Skip the duplicate filter. */
  dontFilter?: boolean;
  /** false: neither send nor store cookies for this request. */
  cookies?: boolean;
}

export interface SpiderResponse {
  /** The final URL (after redirects). */
  readonly url: string;
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The decoded body (at most maxResponseBytes). */
  readonly body: Buffer;
  /** The body as text (charset from Content-Type, else UTF-8). */
  readonly text: string;
  /** The parsed page (cheerio), for HTML responses; undefined otherwise. */
  readonly $: CheerioAPI | undefined;
  /** Link hops from a start URL. */
  readonly depth: number;
  readonly request: { readonly url: string; readonly method: string; readonly meta: Readonly<Record<string, unknown>> };
  /** JSON.parse of the body. */
  json(): unknown;
}

export interface SpiderContext {
  readonly spider: SpiderSpec;
  readonly logger: Logger;
  /** A request for `url` (resolved against the response URL). */
  follow(url: string, options?: Omit<FollowRequest, "url">): FollowRequest;
  /** An item of the given type (feeds filter on it). */
  item(type: string, fields: Record<string, unknown>): Item;
}

export type ParseOutput = Item | FollowRequest;
export type ParseResult =
  | Iterable<ParseOutput>
  | AsyncIterable<ParseOutput>
  | Promise<Iterable<ParseOutput> | undefined>
  | undefined;

export interface SpiderModule {
  parse(response: SpiderResponse, ctx: SpiderContext): ParseResult;
}

/**
 * What loadSpiderModule loads: spider.module, or spider.moduleConfigMapRef's
 * key as a file in `configMapDir` (where the runner pod mounts it). Without
 * `configMapDir` (feedcrawl crawl: no cluster) a ConfigMap module is refused.
 */
export function spiderModuleSource(spider: SpiderSpec, configMapDir: string | undefined): string | undefined {
  if (spider.module) return spider.module;
  const ref = spider.moduleConfigMapRef;
  if (!ref) return undefined;
  if (configMapDir === undefined)
    throw new Error(
      `spider.moduleConfigMapRef (ConfigMap ${ref.name}, key ${ref.key}) is read in runner pods only; ` +
        "feedcrawl crawl has no cluster: set spider.module to the path of a local copy of the file instead",
    );
  if (!/^[-._a-zA-Z0-9]+$/.test(ref.key) || ref.key.startsWith(".."))
    throw new Error(`spider.moduleConfigMapRef.key '${ref.key}' is not a file name`);
  return join(configMapDir, ref.key);
}

/** Loads the module (a path, relative to `baseDir`, or a package name). */
export async function loadSpiderModule(spec: string, baseDir = process.cwd()): Promise<SpiderModule> {
  const target =
    spec.startsWith(".") || isAbsolute(spec) || /\.[cm]?[jt]s$/.test(spec)
      ? pathToFileURL(resolve(baseDir, spec)).href
      : spec;
  let mod: Partial<SpiderModule> & { default?: Partial<SpiderModule> };
  try {
    mod = (await import(target)) as typeof mod;
  } catch (err) {
    throw new Error(`Cannot load spider.module '${spec}': ${(err as Error).message}`);
  }
  const parse = mod.parse ?? mod.default?.parse;
  if (typeof parse !== "function")
    throw new Error(`spider.module '${spec}' does not export a parse(response, ctx) function`);
  return { parse };
}

/** One 2xx response, as the crawler hands it to the module. */
export interface ModulePage {
  request: CrawlRequest;
  status: number;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  contentType: string;
  body: Buffer;
  /** Set for HTML pages (parsed once, shared with the declarative rules). */
  $?: CheerioAPI | undefined;
  text?: string | undefined;
}

/** Where the module's output goes. */
export interface ModuleOutputs {
  item(item: Item): Promise<void>;
  /** A request at depth + 1, to pass the crawler's admission filters. */
  request(req: CrawlRequest): void;
  /** A request whose URL does not parse, or an output that is neither an item nor a request. */
  rejected(kind: "invalidUrl" | "unknownOutput", value: string): void;
}

/** Runs the module on one page, in order; rejects when parse() throws. */
export async function runModuleSpider(
  mod: SpiderModule,
  spider: SpiderSpec,
  logger: Logger,
  page: ModulePage,
  out: ModuleOutputs,
): Promise<void> {
  const req = page.request;
  for await (const o of runParse(mod, moduleResponse(page), moduleContext(spider, logger, req.url))) {
    if (isItem(o)) {
      await out.item(o);
    } else if (isFollowRequest(o)) {
      let url: string;
      try {
        url = new URL(o.url, req.url).href;
      } catch {
        out.rejected("invalidUrl", o.url);
        continue;
      }
      out.request(
        newRequest(url, req.depth + 1, {
          method: (o.method ?? "GET").toUpperCase(),
          ...(o.body !== undefined ? { body: o.body } : {}),
          ...(o.headers ? { headers: o.headers } : {}),
          ...(o.meta ? { meta: o.meta } : {}),
          ...(o.dontFilter ? { dontFilter: true } : {}),
          ...(o.cookies === false ? { cookies: false } : {}),
        }),
      );
    } else {
      out.rejected("unknownOutput", req.url);
    }
  }
}

function moduleResponse(page: ModulePage): SpiderResponse {
  const { request: req, body } = page;
  let text = page.text;
  return {
    url: req.url,
    status: page.status,
    headers: page.headers,
    body,
    get text() {
      text ??= decodeBody(body, page.contentType);
      return text;
    },
    $: page.$,
    depth: req.depth,
    request: { url: req.url, method: req.method, meta: req.meta ?? {} },
    json() {
      return JSON.parse(this.text);
    },
  };
}

function moduleContext(spider: SpiderSpec, logger: Logger, pageUrl: string): SpiderContext {
  return {
    spider,
    logger,
    follow: (url: string, options: Omit<FollowRequest, "url"> = {}) => ({
      ...options,
      url: new URL(url, pageUrl).href,
    }),
    item: (type: string, fields: Record<string, unknown>) => ({ type, fields }),
  };
}

/** Runs parse() and iterates whatever shape it returned. */
async function* runParse(mod: SpiderModule, response: SpiderResponse, ctx: SpiderContext): AsyncGenerator<ParseOutput> {
  let out = mod.parse(response, ctx);
  if (out && typeof (out as Promise<unknown>).then === "function") out = (await out) as ParseResult;
  if (!out) return;
  if (Symbol.asyncIterator in (out as object)) {
    for await (const o of out as AsyncIterable<ParseOutput>) yield o;
  } else if (Symbol.iterator in (out as object)) {
    for (const o of out as Iterable<ParseOutput>) yield o;
  }
}

function isItem(o: unknown): o is Item {
  return (
    typeof o === "object" &&
    o !== null &&
    typeof (o as Item).type === "string" &&
    typeof (o as Item).fields === "object"
  );
}

function isFollowRequest(o: unknown): o is FollowRequest {
  return typeof o === "object" && o !== null && typeof (o as FollowRequest).url === "string" && !("fields" in o);
}
