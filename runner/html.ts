// Turning a response body into a page the spider can query, with bounded work.
// htmlparser2 parses in time linear in the input (parse5, cheerio's default,
// is quadratic in nesting depth: 1.1 MB of <div>s held the event loop ~100 s,
// issue 14). Its stack and css-select's tree walks still cost O(depth) per
// node, so the tree is also capped in depth (Blink caps its parser at 512) and
// in nodes; a page past either cap is a parse error, found within the first
// few hundred tags or at most MAX_NODES nodes.
//
// While parsing, the handler also lists the elements in document order, by
// tag name, with each one's subtree span (PageIndex): a selector then tests
// only the elements whose tag its last compound names, inside the scope's
// span, instead of walking the whole tree once per rule (on real-weight pages
// those walks were 15 % of a crawl's CPU, see docs/runner.md "Performance").
import type { CheerioAPI } from "cheerio";
import { load } from "cheerio/slim";
import { compile } from "css-select";
import { parse as parseCss, type Selector } from "css-what";
import type { AnyNode, Document, Element } from "domhandler";
import { DomHandler, DomUtils, Parser } from "htmlparser2";

export interface ParseLimits {
  /** Elements open at once. */
  maxDepth: number;
  /** Nodes (elements, text, comments) in the whole page. */
  maxNodes: number;
}

export const PARSE_LIMITS: ParseLimits = { maxDepth: 512, maxNodes: 500_000 };

/** A page that cannot be parsed within the limits; counted as a `parse` error for that page. */
export class ParseError extends Error {
  readonly url: string;
  constructor(url: string, message: string) {
    super(`Could not parse ${url}: ${message}`);
    this.name = "ParseError";
    this.url = url;
  }
}

/**
 * The elements of a parsed page in document order: `elements[i]`'s subtree is
 * `elements[i + 1 .. end[i]]`, and `byTag` lists each tag's positions in order.
 */
export interface PageIndex {
  readonly elements: Element[];
  readonly end: number[];
  readonly position: Map<Element, number>;
  readonly byTag: Map<string, number[]>;
  /** The first <base href>, if any. */
  readonly base: Element | undefined;
}

/**
 * How a page's `$` hands out its index. Not a WeakMap keyed by `$`: an
 * ephemeron keeps its value through young-generation collections, so every
 * page's tree was promoted to the old generation — twice the GCs and a heap
 * that grew with the crawl's rate (docs/runner.md "Performance").
 */
const PAGE_INDEX = Symbol("feedcrawl.pageIndex");
type RootedIndex = PageIndex & { root: Document };

/** The index of a page parsed by parseHtml (undefined for a `$` made elsewhere, e.g. by a module). */
export function pageIndexOf($: CheerioAPI): RootedIndex | undefined {
  return ($ as unknown as { [PAGE_INDEX]?: RootedIndex })[PAGE_INDEX];
}

/** An element's text, as cheerio's `.text()` gives it. */
export const textOf = (el: AnyNode): string => DomUtils.textContent(el);

const BOOLEAN_ATTRIBUTE =
  /^(?:autofocus|autoplay|async|checked|controls|defer|disabled|hidden|loop|multiple|open|readonly|required|scoped|selected)$/i;

/** An attribute, as cheerio's `.attr(name)` gives it (boolean attributes, option and checkbox values included). */
export function attrOf(el: Element, name: string): string | undefined {
  if (Object.hasOwn(el.attribs, name)) return BOOLEAN_ATTRIBUTE.test(name) ? name : el.attribs[name];
  if (el.name === "option" && name === "value") return DomUtils.textContent(el.children);
  if (el.name === "input" && (el.attribs.type === "radio" || el.attribs.type === "checkbox") && name === "value")
    return "on";
  return undefined;
}

/**
 * The page's `$`, made by cheerio only when something uses it (a module, a
 * selector left to cheerio): cheerio's load() defines classes per call, which
 * cost about as much CPU and garbage as parsing the page itself, and the
 * declarative rules need only the index.
 */
function lazyCheerio(root: Document, index: PageIndex): CheerioAPI {
  const rooted: RootedIndex = { ...index, root };
  let real: CheerioAPI | undefined;
  const loaded = () => {
    real ??= load(root);
    return real as unknown as object;
  };
  const target = (() => {}) as unknown as object;
  return new Proxy(target, {
    apply: (_t, thisArg, args) => Reflect.apply(loaded() as (...a: unknown[]) => unknown, thisArg, args),
    get: (_t, prop) => (prop === PAGE_INDEX ? rooted : Reflect.get(loaded(), prop)),
    set: (_t, prop, value) => Reflect.set(loaded(), prop, value),
    has: (_t, prop) => Reflect.has(loaded(), prop),
    deleteProperty: (_t, prop) => Reflect.deleteProperty(loaded(), prop),
    ownKeys: () => Reflect.ownKeys(loaded()),
    getOwnPropertyDescriptor: (_t, prop) => {
      const d = Reflect.getOwnPropertyDescriptor(loaded(), prop);
      return d ? { ...d, configurable: true } : undefined;
    },
  }) as CheerioAPI;
}

/** DomHandler that throws as soon as the tree passes a limit: the parser stops right there. */
class BoundedDomHandler extends DomHandler {
  readonly #limits: ParseLimits;
  readonly #url: string;
  #nodes = 0;
  readonly elements: Element[] = [];
  readonly end: number[] = [];
  readonly position = new Map<Element, number>();
  readonly byTag = new Map<string, number[]>();
  base: Element | undefined;

  constructor(url: string, limits: ParseLimits) {
    super();
    this.#url = url;
    this.#limits = limits;
  }

  override onopentag(name: string, attribs: Record<string, string>): void {
    // tagStack holds the document and the open elements: its length is the new element's depth.
    if (this.tagStack.length > this.#limits.maxDepth)
      throw new ParseError(this.#url, `elements nested more than ${this.#limits.maxDepth} deep`);
    super.onopentag(name, attribs);
    const el = this.tagStack[this.tagStack.length - 1] as Element;
    const at = this.elements.length;
    this.elements.push(el);
    this.end.push(-1);
    this.position.set(el, at);
    const list = this.byTag.get(name);
    if (list) list.push(at);
    else this.byTag.set(name, [at]);
    if (name === "base" && this.base === undefined && attribs.href !== undefined) this.base = el;
  }

  override onclosetag(): void {
    // The element being closed is the innermost open one; its subtree ends with the last element opened.
    const el = this.tagStack[this.tagStack.length - 1];
    const at = el === undefined ? undefined : this.position.get(el as Element);
    if (at !== undefined) this.end[at] = this.elements.length - 1;
    super.onclosetag();
  }

  protected override addNode(node: Parameters<DomHandler["addNode"]>[0]): void {
    if (++this.#nodes > this.#limits.maxNodes)
      throw new ParseError(this.#url, `more than ${this.#limits.maxNodes} nodes`);
    super.addNode(node);
  }
}

/** Parses an HTML page; throws ParseError when it passes `limits`. */
export function parseHtml(text: string, url: string, limits: ParseLimits = PARSE_LIMITS): CheerioAPI {
  const handler = new BoundedDomHandler(url, limits);
  new Parser(handler).end(text);
  const last = handler.elements.length - 1;
  for (let i = 0; i < handler.end.length; i++) if (handler.end[i] === -1) handler.end[i] = last;
  return lazyCheerio(handler.root, {
    elements: handler.elements,
    end: handler.end,
    position: handler.position,
    byTag: handler.byTag,
    base: handler.base,
  });
}

/** cheerio-select's jQuery extensions (positional filters): left to cheerio. */
const POSITIONAL = new Set(["first", "last", "eq", "gt", "nth", "lt", "even", "odd", "scope"]);
const COMBINATORS = new Set(["descendant", "child", "sibling", "adjacent", "parent", "column-combinator"]);

function leftToCheerio(groups: Selector[][]): boolean {
  const visit = (tokens: Selector[]): boolean =>
    tokens.some(
      (t) =>
        t.type === "pseudo" &&
        (POSITIONAL.has(t.name) || (Array.isArray(t.data) && t.data.some((inner) => visit(inner)))),
    );
  // A selector starting with a combinator (`> a`, `+ p`) is relative to the scope itself: cheerio's case too.
  return groups.some((g) => visit(g) || (g[0] !== undefined && COMBINATORS.has(g[0].type)));
}

/** The tag names a selector's matches can have (from each group's last compound); null: any. */
function candidateTags(groups: Selector[][]): string[] | null {
  const tags = new Set<string>();
  for (const g of groups) {
    let i = g.length - 1;
    while (i > 0 && !COMBINATORS.has(g[i - 1]!.type)) i--;
    const tag = g.slice(i).find((t) => t.type === "tag");
    if (tag?.type !== "tag" || tag.namespace) return null;
    tags.add(tag.name.toLowerCase());
  }
  return [...tags];
}

/** An element whose parent is an element: stands in for any scope when compiling a scoped query. */
const PLACEHOLDER_SCOPE = (() => {
  const handler = new DomHandler();
  new Parser(handler).end("<div><i></i></div>");
  return (handler.root.children[0] as Element).children[0] as Element;
})();

type Test = (el: Element) => boolean;

/**
 * A CSS selector compiled once per crawl and answered from the page's index:
 * the same matches, in the same order, as cheerio's `$(selector)` and
 * `scope.find(selector)`. Selectors with cheerio's positional extensions
 * (`:first`, `:eq(n)`…), `:scope` or a leading combinator go to cheerio.
 */
export class CompiledSelector {
  readonly source: string;
  readonly #tags: string[] | null = null;
  readonly #page: Test | undefined;
  readonly #scoped: Test | undefined;
  readonly #scope: Element[] = [PLACEHOLDER_SCOPE];
  /** Why the selector does not compile; thrown by select(), as cheerio would throw. */
  readonly #error: Error | undefined;

  constructor(selector: string) {
    this.source = selector;
    try {
      const groups = parseCss(selector);
      if (leftToCheerio(groups)) return;
      this.#tags = candidateTags(groups);
      const options = { xmlMode: false, cacheResults: false };
      this.#page = compile<AnyNode, Element>(groups, options);
      this.#scoped = compile<AnyNode, Element>(parseCss(selector), { ...options, context: this.#scope });
    } catch (err) {
      this.#error = err as Error;
    }
  }

  /** Matches in the whole page, or among `scope`'s descendants, in document order. */
  select($: CheerioAPI, scope?: Element): Element[] {
    if (this.#error) throw this.#error;
    const index = pageIndexOf($);
    const at = scope === undefined ? -1 : index?.position.get(scope);
    if (!index || at === undefined || !this.#page || !this.#scoped) {
      const found = scope === undefined ? $(this.source) : $(scope).find(this.source);
      return found.toArray().filter((n): n is Element => n.type === "tag" || n.type === "script" || n.type === "style");
    }
    // Like css-select, a scope directly under the document is not prefixed with `:scope`.
    let test = this.#page;
    if (scope !== undefined && scope.parent?.type !== "root") {
      this.#scope[0] = scope;
      test = this.#scoped;
    }
    const from = at + 1;
    const to = at === -1 ? index.elements.length - 1 : index.end[at]!;
    const out: Element[] = [];
    if (this.#tags === null) {
      for (let i = from; i <= to; i++) if (test(index.elements[i]!)) out.push(index.elements[i]!);
      return out;
    }
    const lists = this.#tags.map((t) => index.byTag.get(t)).filter((l) => l !== undefined);
    for (const list of lists) {
      for (let k = lowerBound(list, from); k < list.length && list[k]! <= to; k++) {
        const el = index.elements[list[k]!]!;
        if (test(el)) out.push(el);
      }
    }
    if (lists.length > 1) out.sort((a, b) => index.position.get(a)! - index.position.get(b)!);
    return out;
  }
}

function lowerBound(list: number[], value: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export const isHtmlType = (ct: string) => ct.includes("text/html") || ct.includes("application/xhtml+xml");
/** application/json, text/json, and the +json types (application/ld+json, application/vnd.api+json…). */
export const isJsonType = (ct: string) => /^(application|text)\/([\w.-]+\+)?json\b/.test(ct.trim().toLowerCase());

/** For a response without Content-Type: does the body start like an HTML document? */
export function looksLikeHtml(body: Buffer): boolean {
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
