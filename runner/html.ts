// Turning a response body into a page the spider can query, with bounded work.
// htmlparser2 parses in time linear in the input (parse5, cheerio's default,
// is quadratic in nesting depth: 1.1 MB of <div>s held the event loop ~100 s,
// issue 14). Its stack and css-select's tree walks still cost O(depth) per
// node, so the tree is also capped in depth (Blink caps its parser at 512) and
// in nodes; a page past either cap is a parse error, found within the first
// few hundred tags or at most MAX_NODES nodes.
import type { CheerioAPI } from "cheerio";
import { load } from "cheerio/slim";
import { DomHandler, Parser } from "htmlparser2";

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

/** DomHandler that throws as soon as the tree passes a limit: the parser stops right there. */
class BoundedDomHandler extends DomHandler {
  readonly #limits: ParseLimits;
  readonly #url: string;
  #nodes = 0;

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
  return load(handler.root);
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
