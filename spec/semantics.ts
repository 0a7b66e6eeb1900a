// The checks of a CrawlJob spec beyond its schema: the spider's semantics
// (selectors parse, regexes compile, URLs, contradictions), the runner's and
// webhook URL's CEL rules restated, and the feeds' checks (feed-checks.ts).
// No TypeBox: the operator runs only these (the API server already enforced
// the CRD schema, generated from the same TypeBox schema), so its process
// never loads the schema builder. `feedcrawl validate` adds the schema check
// (validate.ts).
import net from "node:net";
import { select } from "cheerio-select";
import type { FieldError } from "../crds/schema/common.ts";
import { RESERVED_ENV_NAMES, RESERVED_ENV_PREFIX } from "../crds/schema/names.ts";
import { parseCidrs } from "../net/address-guard.ts";
import { hostAllowed } from "../net/domains.ts";
import { type FeedSchemaChecks, feedErrors } from "./feed-checks.ts";
import { parseJsonLdPath, parseJsonPath } from "./json-path.ts";
import { noProxyEntryProblem, proxyUrlProblem } from "./proxy-url.ts";
import { modifiedSinceCutoff } from "./sitemaps.ts";

/** The parse error of a CSS selector (cheerio's engine, cheerio-select), or undefined when it is valid. */
export function selectorError(selector: string): string | undefined {
  try {
    select(selector, []);
    if (/[>+~]\s*$/.test(selector)) return "ends with a combinator";
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** The compile error of a JavaScript regular expression, or undefined. */
function regexError(pattern: string): string | undefined {
  try {
    new RegExp(pattern);
    return undefined;
  } catch (err) {
    return (err as Error).message.replace(/^Invalid regular expression: /, "");
  }
}

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === "string";
/** An extract rule's field, e.g. `spec.spider.extract[0].fields.price`. */
const fieldPath = (base: string, name: string) =>
  `${base}.fields${/^[A-Za-z_$][\w$-]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`}`;

type Report = (path: string, message: string) => void;

/** Checks of one spider field: selectors parse, regexes compile. */
function fieldCheckers(err: Report) {
  return {
    sel(path: string, s: unknown) {
      if (!isStr(s) || !s) return;
      const e = selectorError(s);
      if (e) err(path, `invalid CSS selector ${JSON.stringify(s)}: ${e}`);
    },
    re(path: string, s: unknown) {
      if (!isStr(s) || !s) return;
      const e = regexError(s);
      if (e) err(path, `invalid regular expression: ${e}`);
    },
  };
}

/** allowedDomains are hostnames; start URLs are http(s) and not offsite. */
function urlErrors(spider: Record<string, unknown>, p: string, err: Report): void {
  const domains = Array.isArray(spider.allowedDomains) ? spider.allowedDomains.filter(isStr) : [];
  if (Array.isArray(spider.allowedDomains)) {
    spider.allowedDomains.forEach((d, i) => {
      if (isStr(d) && !HOSTNAME.test(d) && !net.isIP(d.replace(/^\[|\]$/g, "")))
        err(`${p}.allowedDomains[${i}]`, `must be a hostname (no scheme, port or path): ${JSON.stringify(d)}`);
    });
  }
  for (const field of ["startUrls", "sitemapUrls"] as const) {
    const list = spider[field];
    if (!Array.isArray(list)) continue;
    for (const [i, u] of list.entries()) {
      if (!isStr(u)) continue;
      let url: URL;
      try {
        url = new URL(u);
      } catch {
        err(`${p}.${field}[${i}]`, `not a valid URL: ${JSON.stringify(u)}`);
        continue;
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        err(`${p}.${field}[${i}]`, `must be an http or https URL, got ${url.protocol.replace(/:$/, "")}`);
        continue;
      }
      if (domains.length && !hostAllowed(url.hostname.replace(/^\[|\]$/g, ""), domains))
        err(`${p}.${field}[${i}]`, `host ${url.hostname} is not in allowedDomains: the crawl would drop it as offsite`);
    }
  }
}

const SITEMAP_ONLY = ["sitemapRules", "sitemapFollow", "sitemapAlternateLinks", "sitemapModifiedSince"] as const;

/** The sitemap fields: something to crawl, regexes, extract rule names that exist, the lastmod cutoff. */
function sitemapErrors(spider: Record<string, unknown>, p: string, err: Report): void {
  const { re } = fieldCheckers(err);
  const sitemaps = Array.isArray(spider.sitemapUrls) ? spider.sitemapUrls.length : 0;
  if (Array.isArray(spider.startUrls) && spider.startUrls.length === 0 && sitemaps === 0)
    err(`${p}.startUrls`, "startUrls is empty and there are no sitemapUrls: nothing to crawl");
  if (sitemaps === 0)
    for (const k of SITEMAP_ONLY)
      if (spider[k] !== undefined) err(`${p}.${k}`, `${k} has no effect without sitemapUrls`);
  const names = new Set(
    (Array.isArray(spider.extract) ? spider.extract : []).map((x) => (isObj(x) ? x.name : undefined)).filter(isStr),
  );
  if (Array.isArray(spider.sitemapRules))
    spider.sitemapRules.forEach((r, i) => {
      if (!isObj(r)) return;
      re(`${p}.sitemapRules[${i}].pattern`, r.pattern);
      if (Array.isArray(r.extract))
        r.extract.forEach((n, j) => {
          if (isStr(n) && !names.has(n))
            err(
              `${p}.sitemapRules[${i}].extract[${j}]`,
              `no extract rule named '${n}' (extract rules: ${[...names].join(", ") || "none"})`,
            );
        });
    });
  if (Array.isArray(spider.sitemapFollow))
    spider.sitemapFollow.forEach((r, i) => {
      re(`${p}.sitemapFollow[${i}]`, r);
    });
  if (isStr(spider.sitemapModifiedSince)) {
    const cutoff = modifiedSinceCutoff(spider.sitemapModifiedSince, Date.now());
    if (typeof cutoff === "string") err(`${p}.sitemapModifiedSince`, cutoff);
  }
}

/** jsonld / json fields: their paths parse, and they are the field's only source. */
function structuredFieldErrors(f: Record<string, unknown>, fp: string, err: Report): void {
  for (const key of ["jsonld", "json"] as const) {
    const path = f[key];
    if (!isStr(path)) continue;
    const parsed = key === "json" ? parseJsonPath(path) : parseJsonLdPath(path);
    if ("error" in parsed)
      err(`${fp}.${key}`, `invalid ${key === "json" ? "JSONPath" : "JSON-LD path"}: ${parsed.error}`);
    for (const other of ["selector", "attr", "text", "meta", ...(key === "json" ? ["jsonld"] : [])])
      if (f[other] !== undefined)
        err(
          `${fp}.${other}`,
          `${key} takes the value from ${key === "json" ? "the JSON response" : "the page's JSON-LD"}: ${other} does not apply`,
        );
  }
}

/** An extract rule reads either JSON responses (json fields, itemPath) or HTML pages (selectors, jsonld). */
function jsonRuleErrors(x: Record<string, unknown>, base: string, err: Report): void {
  const fields = isObj(x.fields)
    ? Object.entries(x.fields).filter((e): e is [string, Record<string, unknown>] => isObj(e[1]))
    : [];
  if (isStr(x.itemPath)) {
    const parsed = parseJsonPath(x.itemPath);
    if ("error" in parsed) err(`${base}.itemPath`, `invalid JSONPath: ${parsed.error}`);
    if (x.itemSelector !== undefined)
      err(
        `${base}.itemSelector`,
        "itemPath (JSON responses) and itemSelector (HTML) are contradictory: a rule reads one kind",
      );
  }
  const readsJson = isStr(x.itemPath) || fields.some(([, f]) => f.json !== undefined);
  if (!readsJson) return;
  for (const [name, f] of fields)
    if (f.json === undefined && f.meta === undefined)
      err(
        fieldPath(base, name),
        "this rule reads JSON responses (json fields or itemPath): give the field a json path (or meta); CSS selectors apply to HTML rules",
      );
}

/** One extract field's contradictions (the schema cannot express them). */
function fieldRuleErrors(f: Record<string, unknown>, fp: string, err: Report): void {
  structuredFieldErrors(f, fp, err);
  if (f.absolute === true && !isStr(f.attr) && f.meta === undefined && f.json === undefined && f.jsonld === undefined)
    err(`${fp}.absolute`, "absolute: true needs attr (the attribute that holds the URL, e.g. href or src)");
  if (f.text === true && isStr(f.attr))
    err(`${fp}.text`, "text: true and attr are contradictory: a field takes either the text or an attribute");
  if (f.meta !== undefined) {
    for (const k of ["selector", "attr", "text", "all"] as const)
      if (f[k] !== undefined) err(`${fp}.${k}`, `meta takes the value from the response: ${k} does not apply`);
  }
  if (f.required === true && f.default !== undefined)
    err(`${fp}.required`, "required: true and a default are contradictory: the default always fills the field");
  if (f.all === true && f.default !== undefined && !Array.isArray(f.default))
    err(`${fp}.default`, "all: true makes the field a list: an empty match gives [], so a default never applies");
  if (f.default !== undefined && isStr(f.type) && f.type !== "string") {
    const t = f.type === "boolean" ? "boolean" : "number";
    if (typeof f.default !== t || (f.type === "integer" && !Number.isInteger(f.default)))
      err(`${fp}.default`, `default ${JSON.stringify(f.default)} does not have the field's type ${f.type}`);
  }
}

/** follow and extract rules: selectors, regexes, unique names, field contradictions. */
function ruleErrors(spider: Record<string, unknown>, p: string, err: Report): void {
  const { sel, re } = fieldCheckers(err);
  if (Array.isArray(spider.follow)) {
    spider.follow.forEach((f, i) => {
      if (!isObj(f)) return;
      sel(`${p}.follow[${i}].selector`, f.selector);
      if (isStr(f.json)) {
        const parsed = parseJsonPath(f.json);
        if ("error" in parsed) err(`${p}.follow[${i}].json`, `invalid JSONPath: ${parsed.error}`);
        if (f.selector !== undefined)
          err(
            `${p}.follow[${i}].selector`,
            "json (JSON responses) and selector (HTML) are contradictory: a rule reads one kind",
          );
      }
      for (const k of ["allow", "deny"] as const)
        if (Array.isArray(f[k]))
          for (const [j, r] of (f[k] as unknown[]).entries()) re(`${p}.follow[${i}].${k}[${j}]`, r);
    });
  }
  if (!Array.isArray(spider.extract)) return;
  const names = new Map<string, number>();
  spider.extract.forEach((x, i) => {
    if (!isObj(x)) return;
    const base = `${p}.extract[${i}]`;
    if (isStr(x.name)) {
      if (names.has(x.name))
        err(`${base}.name`, `duplicate extract rule name '${x.name}' (also extract[${names.get(x.name)}])`);
      else names.set(x.name, i);
    }
    sel(`${base}.itemSelector`, x.itemSelector);
    jsonRuleErrors(x, base, err);
    re(`${base}.urlPattern`, x.urlPattern);
    if (!isObj(x.fields)) return;
    for (const [name, f] of Object.entries(x.fields)) {
      if (!isObj(f)) continue;
      const fp = fieldPath(base, name);
      sel(`${fp}.selector`, f.selector);
      re(`${fp}.regex`, f.regex);
      fieldRuleErrors(f, fp, err);
    }
  });
}

/** spider.settings: limits that contradict each other, CIDRs, header names and values. */
function settingsErrors(s: Record<string, unknown>, sp: string, err: Report): void {
  const global = typeof s.concurrentRequests === "number" ? s.concurrentRequests : 16;
  if (typeof s.concurrentRequestsPerDomain === "number" && s.concurrentRequestsPerDomain > global)
    err(
      `${sp}.concurrentRequestsPerDomain`,
      `${s.concurrentRequestsPerDomain} is more than concurrentRequests (${global}): the per-domain limit could never be reached`,
    );
  const at = s.autoThrottle;
  if (isObj(at) && at.enabled === true) {
    const start = typeof at.startDelayMs === "number" ? at.startDelayMs : 5000;
    const max = typeof at.maxDelayMs === "number" ? at.maxDelayMs : 60000;
    if (start > max) err(`${sp}.autoThrottle.startDelayMs`, `startDelayMs ${start} is more than maxDelayMs ${max}`);
    if (typeof s.downloadDelayMs === "number" && s.downloadDelayMs > max)
      err(
        `${sp}.downloadDelayMs`,
        `downloadDelayMs ${s.downloadDelayMs} is AutoThrottle's minimum and more than maxDelayMs ${max}`,
      );
  }
  if (Array.isArray(s.retryHttpCodes))
    s.retryHttpCodes.forEach((c, i) => {
      if (typeof c === "number" && ((c >= 300 && c < 400) || (c >= 200 && c < 300)))
        err(`${sp}.retryHttpCodes[${i}]`, `${c} is not an error status: redirects and successes are never retried`);
    });
  if (Array.isArray(s.allowPrivateNetworks))
    s.allowPrivateNetworks.forEach((c, i) => {
      if (!isStr(c)) return;
      try {
        parseCidrs([c]);
      } catch {
        err(`${sp}.allowPrivateNetworks[${i}]`, `not a CIDR (e.g. 10.0.0.0/8) or IP address: ${JSON.stringify(c)}`);
      }
    });
  if (isObj(s.headers))
    for (const [name, value] of Object.entries(s.headers)) {
      const hp = `${sp}.headers[${JSON.stringify(name)}]`;
      if (!HEADER_NAME.test(name)) err(hp, "not a valid HTTP header name");
      // RFC 9110 field-value: no CR, LF or NUL (they would split or end the request).
      else if (isStr(value) && /[\r\n\0]/.test(value)) err(hp, "a header value may not contain CR, LF or NUL");
    }
}

/** spider.settings.proxy: http(s) proxy URLs, NO_PROXY-style exceptions. */
function proxyErrors(proxy: unknown, pp: string, err: Report): void {
  if (!isObj(proxy)) return;
  if (Array.isArray(proxy.urls))
    proxy.urls.forEach((u, i) => {
      const problem = isStr(u) ? proxyUrlProblem(u) : undefined;
      if (problem) err(`${pp}.urls[${i}]`, problem);
    });
  if (Array.isArray(proxy.noProxy))
    proxy.noProxy.forEach((e, i) => {
      const problem = isStr(e) ? noProxyEntryProblem(e) : undefined;
      if (problem) err(`${pp}.noProxy[${i}]`, problem);
    });
  const creds = proxy.credentialsSecretRef;
  if (!isObj(creds)) return;
  // The CRD's CEL rules, locally (same messages and field paths).
  if (Array.isArray(proxy.urls) && proxy.urls.some((u) => isStr(u) && /^[^/]*\/\/[^/]*@/.test(u)))
    err(`${pp}.credentialsSecretRef`, "credentialsSecretRef and user:password@ in a proxy URL exclude each other");
  if (creds.key !== undefined && (creds.usernameKey !== undefined || creds.passwordKey !== undefined))
    err(`${pp}.credentialsSecretRef.key`, "key (user:password in one value) excludes usernameKey and passwordKey");
}

/** Semantic checks of spec.spider; tolerant of shapes the schema already rejected. */
function spiderErrors(spider: unknown): FieldError[] {
  const errors: FieldError[] = [];
  if (!isObj(spider)) return errors;
  const p = "spec.spider";
  const err: Report = (path, message) => {
    errors.push({ path, message });
  };
  urlErrors(spider, p, err);
  ruleErrors(spider, p, err);
  sitemapErrors(spider, p, err);
  if (isObj(spider.settings)) {
    settingsErrors(spider.settings, `${p}.settings`, err);
    proxyErrors(spider.settings.proxy, `${p}.settings.proxy`, err);
  }
  if (spider.module !== undefined && spider.moduleConfigMapRef !== undefined)
    err(
      `${p}.moduleConfigMapRef`,
      "module (a path) and moduleConfigMapRef exclude each other: name the module one way",
    );
  if (
    !spider.module &&
    !spider.moduleConfigMapRef &&
    (!Array.isArray(spider.extract) || spider.extract.length === 0) &&
    Array.isArray(spider.startUrls)
  ) {
    err(`${p}.extract`, "the spider extracts nothing: add an extract rule or a module");
  }
  return errors;
}

/** spec.ingest.webhook.url: what the API server's CEL rule says, locally. */
function ingestErrors(ingest: unknown): FieldError[] {
  if (!isObj(ingest) || !isObj(ingest.webhook) || !isStr(ingest.webhook.url)) return [];
  const path = "spec.ingest.webhook.url";
  let url: URL;
  try {
    url = new URL(ingest.webhook.url);
  } catch {
    return [{ path, message: "must be an absolute http(s) URL" }];
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "")
    return [{ path, message: "must be an absolute http(s) URL" }];
  return [];
}

// crds/schema/runner.ts's CEL rules, locally (test/spec/schema-agreement.int.test.ts keeps them in step).
const QUALIFIED_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const QUANTITY = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;
const UNITS: Record<string, number> = { "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
for (const [i, u] of ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].entries()) UNITS[u] = 1024 ** (i + 1);

/** A byte quantity as the schema admits it (`512Mi`, `2Gi`, `1.5G`), in whole bytes; undefined when it is not one. */
export function parseByteQuantity(q: string): number | undefined {
  const m = QUANTITY.exec(q);
  return m ? Math.floor(Number(m[1]) * (UNITS[m[2] ?? ""] ?? 1)) : undefined;
}

const countOf = (o: Record<string, unknown>, keys: string[]) => keys.filter((k) => o[k] !== undefined).length;

/** spec.runner: what the CRD's CEL rules and list-map keys refuse (the schema's shapes are checked by TypeBox). */
function runnerErrors(spec: Record<string, unknown>): FieldError[] {
  const errors: FieldError[] = [];
  const r = spec.runner;
  if (!isObj(r)) return errors;
  const err: Report = (path, message) => {
    errors.push({ path, message });
  };
  const tmp = r.tmpSizeLimit;
  const bytes = isStr(tmp) ? parseByteQuantity(tmp) : undefined;
  if (bytes !== undefined && (bytes < 256 * 1024 ** 2 || bytes > 1024 ** 4))
    err("spec.runner.tmpSizeLimit", "must be a quantity from 256Mi to 1Ti");
  if (Array.isArray(r.env)) {
    const names = new Map<string, number>();
    let reserved = false;
    let aws = false;
    r.env.forEach((e, i) => {
      if (!isObj(e) || !isStr(e.name)) return;
      if (e.name.startsWith(RESERVED_ENV_PREFIX) || (RESERVED_ENV_NAMES as readonly string[]).includes(e.name))
        reserved = true;
      if (e.name === "AWS_ACCESS_KEY_ID" || e.name === "AWS_SECRET_ACCESS_KEY") aws = true;
      if (names.has(e.name)) err(`spec.runner.env[${i}]`, `duplicate name ${e.name} (also env[${names.get(e.name)}])`);
      else names.set(e.name, i);
      if (e.value !== undefined && e.valueFrom !== undefined)
        err(`spec.runner.env[${i}]`, "set value or valueFrom, not both");
      if (
        isObj(e.valueFrom) &&
        countOf(e.valueFrom, ["secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef"]) !== 1
      )
        err(
          `spec.runner.env[${i}].valueFrom`,
          "exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef",
        );
    });
    if (reserved) err("spec.runner.env", "FEEDCRAWL_* and JOB_COMPLETION_INDEX are set by the operator");
    const s3 = isObj(spec.storage) && isObj(spec.storage.s3) ? spec.storage.s3 : undefined;
    if (aws && s3?.credentialsSecretRef !== undefined)
      err(
        "spec.runner.env",
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY come from spec.storage.s3.credentialsSecretRef",
      );
  }
  if (Array.isArray(r.envFrom))
    r.envFrom.forEach((e, i) => {
      if (isObj(e) && countOf(e, ["secretRef", "configMapRef"]) !== 1)
        err(`spec.runner.envFrom[${i}]`, "exactly one of secretRef, configMapRef");
    });
  if (isObj(r.serviceAccountAnnotations))
    for (const key of Object.keys(r.serviceAccountAnnotations))
      if (!QUALIFIED_KEY.test(key))
        err(
          "spec.runner.serviceAccountAnnotations",
          `keys must be qualified names (prefix/name): ${JSON.stringify(key)}`,
        );
  return errors;
}

/** spec.frontier: names an engine (the schema checks its fields). */
function frontierErrors(frontier: unknown): FieldError[] {
  if (!isObj(frontier) || frontier.redis !== undefined) return [];
  return [{ path: "spec.frontier", message: "set redis (the shared frontier), or leave spec.frontier out" }];
}

/**
 * The fields the CRD leaves untyped: a union of types becomes
 * x-kubernetes-preserve-unknown-fields (crds/generate.ts), so the API server
 * does not check them; the TypeBox schema does. Checked here when it did not run.
 */
function untypedFieldErrors(spec: Record<string, unknown>): FieldError[] {
  const errors: FieldError[] = [];
  const spider = isObj(spec.spider) ? spec.spider : {};
  if (Array.isArray(spider.extract))
    spider.extract.forEach((x, i) => {
      if (!isObj(x) || !isObj(x.fields)) return;
      for (const [name, f] of Object.entries(x.fields)) {
        if (!isObj(f) || f.default === undefined) continue;
        const d = f.default;
        const ok = (isStr(d) && d.length <= 4096) || typeof d === "number" || typeof d === "boolean";
        if (!ok)
          errors.push({
            path: `${fieldPath(`spec.spider.extract[${i}]`, name)}.default`,
            message: "must be a string (at most 4096 characters), a number or a boolean",
          });
      }
    });
  const allow = isObj(spider.settings) ? spider.settings.allowPrivateNetworks : undefined;
  const path = "spec.spider.settings.allowPrivateNetworks";
  if (Array.isArray(allow)) {
    if (allow.length > 64) errors.push({ path, message: "must have at most 64 items" });
    allow.forEach((c, i) => {
      if (!isStr(c) || c.length < 1 || c.length > 64)
        errors.push({ path: `${path}[${i}]`, message: "must be a string of 1 to 64 characters" });
    });
  } else if (allow !== undefined && typeof allow !== "boolean") {
    errors.push({ path, message: "must be true, false or a list of CIDRs" });
  }
  return errors;
}

/** What a caller already checked: `schema`, the full TypeBox schema (feedcrawl validate); else only the CRD's (the operator). */
export interface Checked {
  /** The schema checks of spec.feeds and spec.storage, run where their friendlier messages allow (feeds.ts). */
  feedSchema: FeedSchemaChecks;
}

/**
 * Every problem with a CrawlJob spec that its CRD schema cannot express, each
 * with its field path. With `schema` (validate.ts, which checked the TypeBox
 * schema), also the feeds' schema errors; without it (the operator: the API
 * server enforced the CRD), also the fields the CRD leaves untyped.
 */
export function semanticErrors(spec: Record<string, unknown>, schema?: Checked): FieldError[] {
  const errors = [...spiderErrors(spec.spider), ...ingestErrors(spec.ingest), ...runnerErrors(spec)];
  errors.push(...frontierErrors(spec.frontier));
  const parallelism =
    isObj(spec.runner) && typeof spec.runner.parallelism === "number" ? spec.runner.parallelism : undefined;
  errors.push(
    ...feedErrors(
      spec.feeds as Parameters<typeof feedErrors>[0],
      spec.storage as Parameters<typeof feedErrors>[1],
      parallelism !== undefined ? { parallelism } : {},
      schema?.feedSchema,
    ),
  );
  if (!schema) errors.push(...untypedFieldErrors(spec));
  return errors;
}
