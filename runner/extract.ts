// The declarative spider: link extraction (`follow` rules, like Scrapy's
// CrawlSpider Rule + LinkExtractor) and item extraction (`extract` rules)
// over one parsed page. Problems on a page drop a field or an item and are
// reported to the caller; they never throw.
import type { CheerioAPI } from "cheerio";
import type { AnyNode } from "domhandler";
import type { ExtractRule, FieldRule, FollowRule, SpiderSpec } from "../crds/schema/spider.ts";
import { registrableDomain } from "../net/domains.ts";
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
  selector?: string;
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
  regex?: RegExp;
}

interface CompiledExtract {
  rule: ExtractRule;
  urlPattern?: RegExp;
  fields: CompiledField[];
}

export interface CompiledSpider {
  /** Absolute http(s) URLs to follow from this page, in document order, de-duplicated (the first rule wins). */
  links($: CheerioAPI, page: PageContext): Link[];
  /** The items on this page (of the rules named in `only`, when given). */
  items($: CheerioAPI, page: PageContext, report: ExtractReport, only?: readonly string[]): Item[];
}

function baseUrlOf($: CheerioAPI, pageUrl: string): string {
  const href = $("base[href]").first().attr("href");
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
    let hrefs: string[] = [];
    try {
      const selected = rule.selector ? $(rule.selector) : $("a[href], area[href]");
      selected.each((_, el) => {
        const node = $(el);
        const own = node.attr("href");
        if (own !== undefined) hrefs.push(own);
        else
          node.find("a[href], area[href]").each((_, a) => {
            const h = $(a).attr("href");
            if (h !== undefined) hrefs.push(h);
          });
      });
    } catch {
      hrefs = [];
    }
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
  return [...out.values()];
}

function fieldValue(
  $: CheerioAPI,
  scope: ReturnType<CheerioAPI> | null,
  f: CompiledField,
  page: PageContext,
  base: string,
  ruleName: string,
  report: ExtractReport,
): { value: unknown } | undefined {
  const fr = f.rule;
  let raws: string[];
  if (fr.meta) {
    raws = [fr.meta === "url" ? page.url : String(fr.meta === "status" ? page.status : page.depth)];
  } else {
    let nodes: ReturnType<CheerioAPI>;
    try {
      nodes = fr.selector ? (scope ? scope.find(fr.selector) : $(fr.selector)) : (scope ?? $.root().children());
    } catch (err) {
      report.fieldProblem(ruleName, f.name, "selectorError", page.url, (err as Error).message);
      return undefined;
    }
    const picked = fr.all ? nodes.toArray() : nodes.toArray().slice(0, 1);
    raws = [];
    for (const el of picked) {
      const node = $(el as AnyNode);
      const v = fr.attr ? node.attr(fr.attr) : normalizeSpace(node.text());
      if (v !== undefined) raws.push(fr.attr ? v.trim() : v);
    }
  }
  const values: unknown[] = [];
  for (let raw of raws) {
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
  for (const ex of extract) {
    if (only && !only.includes(ex.rule.name)) continue;
    if (ex.urlPattern && !ex.urlPattern.test(page.url)) continue;
    let scopes: (ReturnType<CheerioAPI> | null)[];
    if (ex.rule.itemSelector) {
      try {
        scopes = $(ex.rule.itemSelector)
          .toArray()
          .map((el) => $(el as AnyNode));
      } catch (err) {
        report.fieldProblem(ex.rule.name, "(itemSelector)", "selectorError", page.url, (err as Error).message);
        continue;
      }
    } else {
      scopes = [null];
    }
    for (const scope of scopes) {
      const fields: Record<string, unknown> = {};
      let dropped = false;
      let found = 0;
      for (const f of ex.fields) {
        const v = fieldValue($, scope, f, page, base, ex.rule.name, report);
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
          dropped = true;
          break;
        }
      }
      if (dropped) continue;
      if (found === 0 && ex.fields.some((f) => !f.rule.meta)) {
        report.itemDropped(ex.rule.name, "empty", page.url, "no field has a value");
        continue;
      }
      out.push({ type: ex.rule.name, fields });
    }
  }
  return out;
}

export function compileSpider(spec: SpiderSpec): CompiledSpider {
  const follow: CompiledFollow[] = (spec.follow ?? []).map((f: FollowRule) => ({
    ...(f.selector ? { selector: f.selector } : {}),
    allow: compileRegexes(f.allow),
    deny: compileRegexes(f.deny),
    restrict: f.restrict ?? "none",
    cookies: f.cookies !== false,
  }));
  const extract: CompiledExtract[] = (spec.extract ?? []).map((rule) => ({
    rule,
    ...(rule.urlPattern ? { urlPattern: new RegExp(rule.urlPattern) } : {}),
    fields: Object.entries(rule.fields).map(([name, fr]) => ({
      name,
      rule: fr,
      ...(fr.regex ? { regex: new RegExp(fr.regex) } : {}),
    })),
  }));

  return {
    links: ($, page) => extractLinks(follow, $, page),
    items: ($, page, report, only) => extractItems(extract, $, page, report, only),
  };
}
