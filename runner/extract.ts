// The declarative spider: link extraction (`follow` rules, like Scrapy's
// CrawlSpider Rule + LinkExtractor) and item extraction (`extract` rules)
// over one parsed page. Problems on a page drop a field or an item and are
// reported to the caller; they never throw.
import type { CheerioAPI } from "cheerio";
import type { Element } from "domhandler";
import type { ExtractRule, FieldRule, FollowRule, SpiderSpec } from "../crds/schema/spider.ts";
import { registrableDomain } from "../net/domains.ts";
import { evaluateJsonPath, type JsonPathStep, parseJsonLdPath, parseJsonPath } from "../spec/json-path.ts";
import { attrOf, CompiledSelector, pageIndexOf, textOf } from "./html.ts";
import type { Item } from "./item.ts";
import type { ItemDropReason } from "./stats.ts";

/** Scrapy's IGNORED_EXTENSIONS: links to these are never followed. */
const IGNORED_EXTENSIONS = new Set(
  (
    "7z 7zip bz2 rar tar tar.gz xz zip mng pct bmp gif jpg jpeg png pst psp tif tiff ai drw dxf eps ps svg cdr ico webp " +
    "mp3 wma ogg wav ra aac mid au aiff 3gp asf asx avi mov mp4 mpg qt rm swf wmv m4a m4v flv webm " +
    "xls xlsx ppt pptx pps doc docx odt ods odg odp css pdf exe bin rss dmg iso apk jar sh rb js"
  ).split(" "),
);

export type FieldProblem = "selectorError" | "typeConversion" | "regexNoMatch";

export interface PageContext {
  url: string;
  status: number;
  depth: number;
}

export interface ExtractReport {
  /** A field was dropped (or set to its default) on this page. */
  fieldProblem(rule: string, field: string, kind: FieldProblem, url: string, detail: string): void;
  /** An item was dropped on this page. */
  itemDropped(rule: string, reason: ItemDropReason, url: string, detail: string): void;
}

function compileRegexes(patterns: string[] | undefined): RegExp[] {
  return (patterns ?? []).map((p) => new RegExp(p));
}

interface CompiledFollow {
  selector?: CompiledSelector;
  /** A JSON follow rule: the URLs this path selects on JSON responses. */
  json?: JsonPathStep[];
  allow: RegExp[];
  deny: RegExp[];
  restrict: "none" | "sameHost" | "sameDomain";
  cookies: boolean;
}

/** A link to follow; `cookies: false` when the rule that found it opts out of cookies. */
export interface Link {
  url: string;
  cookies?: false;
}

interface CompiledField {
  name: string;
  rule: FieldRule;
  selector?: CompiledSelector;
  regex?: RegExp;
  jsonld?: { type: string; steps: JsonPathStep[] };
  json?: JsonPathStep[];
}

interface CompiledExtract {
  rule: ExtractRule;
  itemSelector?: CompiledSelector;
  urlPattern?: RegExp;
  fields: CompiledField[];
  /** Reads JSON responses (json fields, itemPath) rather than HTML pages. */
  json: boolean;
  itemPath?: JsonPathStep[];
}

/** Where a field's value comes from on one page: the DOM (and its JSON-LD), or a JSON document. */
type Source =
  | { kind: "html"; $: CheerioAPI; scope: Element | null; jsonLd: () => unknown[] }
  | { kind: "json"; scope: unknown };

export interface CompiledSpider {
  /** Absolute http(s) URLs to follow from this page, in document order, de-duplicated (the first rule wins). */
  links($: CheerioAPI, page: PageContext): Link[];
  /** The items on this page (of the rules named in `only`, when given). */
  items($: CheerioAPI, page: PageContext, report: ExtractReport, only?: readonly string[]): Item[];
  /** Links of the JSON follow rules on a parsed JSON response. */
  jsonLinks(doc: unknown, page: PageContext): Link[];
  /** Whether some rule reads JSON responses (the crawler then downloads and parses them). */
  readonly readsJson: boolean;
  /** The items of the JSON rules on a parsed JSON response. */
  jsonItems(doc: unknown, page: PageContext, report: ExtractReport, only?: readonly string[]): Item[];
}

/** JSON-LD objects of a page, every nested object included, in document order; broken scripts are skipped. */
function jsonLdNodes($: CheerioAPI): unknown[] {
  const out: unknown[] = [];
  for (const el of JSON_LD.select($)) {
    let doc: unknown;
    try {
      doc = JSON.parse(textOf(el));
    } catch {
      continue;
    }
    const stack: unknown[] = [doc];
    while (stack.length > 0 && out.length < 10_000) {
      const node = stack.pop();
      if (node === null || typeof node !== "object") continue;
      if (!Array.isArray(node)) out.push(node);
      const kids = Array.isArray(node) ? node : Object.values(node);
      for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]);
    }
  }
  return out;
}

/** Whether a JSON-LD node's @type is `type` ("Product" also matches "schema:Product", "https://schema.org/Product"). */
function hasType(node: unknown, type: string): boolean {
  if (type === "*") return true;
  const t = (node as Record<string, unknown>)["@type"];
  const types = Array.isArray(t) ? t : [t];
  return types.some(
    (x) =>
      typeof x === "string" &&
      (x === type || x.endsWith(`/${type}`) || x.endsWith(`:${type}`) || x.endsWith(`#${type}`)),
  );
}

const LINKS = new CompiledSelector("a[href], area[href]");
const JSON_LD = new CompiledSelector('script[type="application/ld+json"]');
const BASE = new CompiledSelector("base[href]");

/**
 * A string of its own: text and attributes are slices of the whole page's
 * text, and an item holding one would keep the page alive until written.
 */
const own = (s: string) => (s.length < 13 ? s : ` ${s}`.slice(1));

/** The top-level elements (`$.root().children()`). */
function rootElements($: CheerioAPI): Element[] {
  const index = pageIndexOf($);
  if (!index) return $.root().children().toArray() as Element[];
  return index.root.children.filter((n): n is Element => n.type === "tag" || n.type === "script" || n.type === "style");
}

function baseUrlOf($: CheerioAPI, pageUrl: string): string {
  const index = pageIndexOf($);
  const href = index ? index.base?.attribs.href : BASE.select($)[0]?.attribs.href;
  if (!href) return pageUrl;
  try {
    return new URL(href, pageUrl).href;
  } catch {
    return pageUrl;
  }
}

function resolveHttp(href: string, base: string): string | undefined {
  try {
    const u = new URL(href.trim(), base);
    if (u.protocol !== "http:" && u.protocol !== "https:") return undefined;
    u.hash = "";
    return u.href;
  } catch {
    return undefined;
  }
}

function hasIgnoredExtension(url: string): boolean {
  const path = new URL(url).pathname.toLowerCase();
  const dot = path.lastIndexOf(".");
  if (dot < 0 || dot < path.lastIndexOf("/")) return false;
  const ext = path.slice(dot + 1);
  return IGNORED_EXTENSIONS.has(ext) || (ext === "gz" && path.endsWith(".tar.gz"));
}

const normalizeSpace = (s: string) => s.replace(/\s+/g, " ").trim();

type Conversion = { ok: true; value: unknown } | { ok: false; detail: string };

function convert(raw: string, type: FieldRule["type"]): Conversion {
  switch (type) {
    case undefined:
    case "string":
      return { ok: true, value: raw };
    case "number":
    case "integer": {
      const cleaned = raw.replace(/[,\s_]/g, "");
      const n = cleaned === "" ? Number.NaN : Number(cleaned);
      if (!Number.isFinite(n)) return { ok: false, detail: `'${raw.slice(0, 80)}' is not a number` };
      if (type === "integer" && !Number.isInteger(n))
        return { ok: false, detail: `'${raw.slice(0, 80)}' is not an integer` };
      return { ok: true, value: n };
    }
    case "boolean": {
      const v = raw.trim().toLowerCase();
      if (["true", "yes", "1", "on", "y"].includes(v)) return { ok: true, value: true };
      if (["false", "no", "0", "off", "n", ""].includes(v)) return { ok: true, value: false };
      return { ok: false, detail: `'${raw.slice(0, 80)}' is not a boolean` };
    }
  }
}

function extractLinks(follow: CompiledFollow[], $: CheerioAPI, page: PageContext): Link[] {
  if (follow.length === 0) return [];
  const base = baseUrlOf($, page.url);
  const pageHost = new URL(page.url).hostname;
  const out = new Map<string, Link>();
  for (const rule of follow) {
    if (rule.json) continue;
    let hrefs: string[] = [];
    try {
      for (const el of (rule.selector ?? LINKS).select($)) {
        const href = el.attribs.href;
        if (href !== undefined) hrefs.push(href);
        else for (const a of LINKS.select($, el)) hrefs.push(a.attribs.href!);
      }
    } catch {
      hrefs = [];
    }
    addLinks(rule, hrefs, base, pageHost, out);
  }
  return [...out.values()];
}

/** The rule's filters on resolved hrefs; the first rule that finds a URL decides its cookies. */
function addLinks(rule: CompiledFollow, hrefs: string[], base: string, pageHost: string, out: Map<string, Link>) {
  for (const href of hrefs) {
    const url = resolveHttp(href, base);
    if (!url || out.has(url)) continue;
    if (hasIgnoredExtension(url)) continue;
    if (rule.allow.length && !rule.allow.some((r) => r.test(url))) continue;
    if (rule.deny.some((r) => r.test(url))) continue;
    if (rule.restrict !== "none") {
      const host = new URL(url).hostname;
      if (rule.restrict === "sameHost" && host !== pageHost) continue;
      if (rule.restrict === "sameDomain" && registrableDomain(host) !== registrableDomain(pageHost)) continue;
    }
    out.set(url, rule.cookies ? { url } : { url, cookies: false });
  }
}

function extractJsonLinks(follow: CompiledFollow[], doc: unknown, page: PageContext): Link[] {
  const out = new Map<string, Link>();
  const pageHost = new URL(page.url).hostname;
  for (const rule of follow) {
    if (!rule.json) continue;
    const hrefs = evaluateJsonPath(rule.json, doc).filter((v): v is string => typeof v === "string");
    addLinks(rule, hrefs, page.url, pageHost, out);
  }
  return [...out.values()];
}

/** The raw values of a field on its source, before regex, absolute and type; undefined on a selector error. */
function rawValues(src: Source, f: CompiledField, page: PageContext, ruleName: string, report: ExtractReport) {
  const fr = f.rule;
  if (fr.meta) return [fr.meta === "url" ? page.url : String(fr.meta === "status" ? page.status : page.depth)];
  if (f.jsonld) {
    if (src.kind !== "html") return [];
    const { type, steps } = f.jsonld;
    return src
      .jsonLd()
      .filter((n) => hasType(n, type))
      .flatMap((n) => evaluateJsonPath(steps, n, true));
  }
  if (f.json) return src.kind === "json" ? evaluateJsonPath(f.json, src.scope) : [];
  if (src.kind !== "html") return [];
  const { $, scope } = src;
  let nodes: Element[];
  try {
    nodes = f.selector ? f.selector.select($, scope ?? undefined) : scope ? [scope] : rootElements($);
  } catch (err) {
    report.fieldProblem(ruleName, f.name, "selectorError", page.url, (err as Error).message);
    return undefined;
  }
  const picked = fr.all ? nodes : nodes.slice(0, 1);
  const raws: unknown[] = [];
  for (const el of picked) {
    const v = fr.attr ? attrOf(el, fr.attr) : normalizeSpace(textOf(el));
    if (v !== undefined) raws.push(own(fr.attr ? v.trim() : v));
  }
  return raws;
}

function fieldValue(
  src: Source,
  f: CompiledField,
  page: PageContext,
  base: string,
  ruleName: string,
  report: ExtractReport,
): { value: unknown } | undefined {
  const fr = f.rule;
  const found = rawValues(src, f, page, ruleName, report);
  if (found === undefined) return undefined;
  // JSON values: null is no value; numbers, booleans and objects are kept as they are unless a
  // regex, absolute or type asks for text.
  const textual = f.regex !== undefined || fr.absolute === true || fr.type !== undefined;
  const raws: (string | { keep: unknown })[] = [];
  for (const v of fr.all ? found : found.slice(0, 1)) {
    if (v === null || v === undefined) continue;
    if (typeof v === "string") raws.push(v);
    else if (textual) raws.push(typeof v === "object" ? JSON.stringify(v) : String(v));
    else raws.push({ keep: v });
  }
  const values: unknown[] = [];
  for (const r of raws) {
    if (typeof r !== "string") {
      values.push(r.keep);
      continue;
    }
    let raw = r;
    if (f.regex) {
      const m = f.regex.exec(raw);
      if (!m) {
        report.fieldProblem(
          ruleName,
          f.name,
          "regexNoMatch",
          page.url,
          `/${f.regex.source}/ did not match '${raw.slice(0, 80)}'`,
        );
        continue;
      }
      raw = m[1] ?? m[0];
    }
    if (fr.absolute) {
      const abs = (() => {
        try {
          return new URL(raw, base).href;
        } catch {
          return undefined;
        }
      })();
      if (abs === undefined) {
        report.fieldProblem(ruleName, f.name, "typeConversion", page.url, `'${raw.slice(0, 80)}' is not a URL`);
        continue;
      }
      raw = abs;
    }
    const c = convert(raw, fr.meta === "status" || fr.meta === "depth" ? (fr.type ?? "integer") : fr.type);
    if (!c.ok) {
      report.fieldProblem(ruleName, f.name, "typeConversion", page.url, c.detail);
      continue;
    }
    values.push(c.value);
  }
  if (fr.all) return { value: values };
  if (values.length === 0) return undefined;
  return { value: values[0] };
}

/** One item from one scope: its fields, or undefined when dropped (reported). */
function buildItem(ex: CompiledExtract, src: Source, page: PageContext, base: string, report: ExtractReport) {
  const fields: Record<string, unknown> = {};
  let found = 0;
  for (const f of ex.fields) {
    const v = fieldValue(src, f, page, base, ex.rule.name, report);
    if (v !== undefined) {
      fields[f.name] = v.value;
      if (!f.rule.meta && (!Array.isArray(v.value) || v.value.length > 0)) found++;
      continue;
    }
    if (f.rule.default !== undefined) {
      fields[f.name] = f.rule.default;
      continue;
    }
    if (f.rule.required) {
      report.itemDropped(ex.rule.name, "missingRequired", page.url, `required field '${f.name}' has no value`);
      return undefined;
    }
  }
  if (found === 0 && ex.fields.some((f) => !f.rule.meta)) {
    report.itemDropped(ex.rule.name, "empty", page.url, "no field has a value");
    return undefined;
  }
  return { type: ex.rule.name, fields };
}

const applies = (ex: CompiledExtract, page: PageContext, only: readonly string[] | undefined) =>
  (!only || only.includes(ex.rule.name)) && (!ex.urlPattern || ex.urlPattern.test(page.url));

function extractItems(
  extract: CompiledExtract[],
  $: CheerioAPI,
  page: PageContext,
  report: ExtractReport,
  only?: readonly string[],
): Item[] {
  const out: Item[] = [];
  if (extract.length === 0) return out;
  const base = baseUrlOf($, page.url);
  let nodes: unknown[] | undefined;
  const jsonLd = () => {
    nodes ??= jsonLdNodes($);
    return nodes;
  };
  for (const ex of extract) {
    if (ex.json || !applies(ex, page, only)) continue;
    let scopes: (Element | null)[];
    if (ex.itemSelector) {
      try {
        scopes = ex.itemSelector.select($);
      } catch (err) {
        report.fieldProblem(ex.rule.name, "(itemSelector)", "selectorError", page.url, (err as Error).message);
        continue;
      }
    } else {
      scopes = [null];
    }
    for (const scope of scopes) {
      const item = buildItem(ex, { kind: "html", $, scope, jsonLd }, page, base, report);
      if (item) out.push(item);
    }
  }
  return out;
}

function extractJsonItems(
  extract: CompiledExtract[],
  doc: unknown,
  page: PageContext,
  report: ExtractReport,
  only?: readonly string[],
): Item[] {
  const out: Item[] = [];
  for (const ex of extract) {
    if (!ex.json || !applies(ex, page, only)) continue;
    const scopes = ex.itemPath ? evaluateJsonPath(ex.itemPath, doc) : [doc];
    for (const scope of scopes) {
      const item = buildItem(ex, { kind: "json", scope }, page, page.url, report);
      if (item) out.push(item);
    }
  }
  return out;
}

/** A field's compiled JSON-LD or JSONPath (validated before the crawl; a bad one selects nothing). */
function compileField(name: string, fr: FieldRule): CompiledField {
  const jsonld = fr.jsonld !== undefined ? parseJsonLdPath(fr.jsonld) : undefined;
  const json = fr.json !== undefined ? parseJsonPath(fr.json) : undefined;
  return {
    name,
    rule: fr,
    ...(fr.selector ? { selector: new CompiledSelector(fr.selector) } : {}),
    ...(fr.regex ? { regex: new RegExp(fr.regex) } : {}),
    ...(jsonld ? { jsonld: "error" in jsonld ? { type: "", steps: [] } : jsonld } : {}),
    ...(json ? { json: "error" in json ? [{ kind: "key", key: "\0" }] : json.steps } : {}),
  };
}

export function compileSpider(spec: SpiderSpec): CompiledSpider {
  const follow: CompiledFollow[] = (spec.follow ?? []).map((f: FollowRule) => ({
    ...(f.selector ? { selector: new CompiledSelector(f.selector) } : {}),
    ...(() => {
      const json = f.json !== undefined ? parseJsonPath(f.json) : undefined;
      return json ? { json: "error" in json ? [{ kind: "key" as const, key: "\0" }] : json.steps } : {};
    })(),
    allow: compileRegexes(f.allow),
    deny: compileRegexes(f.deny),
    restrict: f.restrict ?? "none",
    cookies: f.cookies !== false,
  }));
  const extract: CompiledExtract[] = (spec.extract ?? []).map((rule) => {
    const itemPath = rule.itemPath !== undefined ? parseJsonPath(rule.itemPath) : undefined;
    return {
      rule,
      ...(rule.itemSelector ? { itemSelector: new CompiledSelector(rule.itemSelector) } : {}),
      ...(rule.urlPattern ? { urlPattern: new RegExp(rule.urlPattern) } : {}),
      fields: Object.entries(rule.fields).map(([name, fr]) => compileField(name, fr)),
      json: rule.itemPath !== undefined || Object.values(rule.fields).some((f) => f.json !== undefined),
      ...(itemPath && !("error" in itemPath) ? { itemPath: itemPath.steps } : {}),
    };
  });

  return {
    links: ($, page) => extractLinks(follow, $, page),
    items: ($, page, report, only) => extractItems(extract, $, page, report, only),
    readsJson: extract.some((ex) => ex.json) || follow.some((f) => f.json),
    jsonLinks: (doc, page) => extractJsonLinks(follow, doc, page),
    jsonItems: (doc, page, report, only) => extractJsonItems(extract, doc, page, report, only),
  };
}
