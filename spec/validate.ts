// Validation of a CrawlJob spec before any request: the schema (unknown
// fields are errors), then the checks beyond it (semantics.ts: the spider's
// semantics, the feeds). Also loads manifests from YAML. The schema is checked
// by TypeBox's generated code (spec/generated/); TypeBox, ~20 MB of a runner's
// RSS, is loaded only to explain a spec that code refuses, with readable
// messages and field paths (schema-errors.ts). The operator runs only
// semantics.ts: the API server checked the CRD schema.
import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import type { FieldError } from "../crds/schema/common.ts";
import type { CrawlJobSpec } from "../crds/schema/crawljob.ts";
import type { SpiderSpec } from "../crds/schema/spider.ts";
import { SCHEMA_PASSED } from "./feeds.ts";
import { Check as crawlJobSpecValid } from "./generated/crawljob-spec.ts";
import { normalizeScrapyFeedKeys } from "./scrapy-keys.ts";
import { semanticErrors } from "./semantics.ts";

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === "string";

/** Every problem with a CrawlJob spec, each with its field path. Empty: valid. */
export async function validateCrawlJobSpec(spec: unknown): Promise<FieldError[]> {
  if (!isObj(spec)) return [{ path: "spec", message: "must be an object with at least spider" }];
  // The spec's check covers spec.feeds and spec.storage too.
  if (crawlJobSpecValid(spec)) return semanticErrors(spec, { feedSchema: SCHEMA_PASSED });
  const { crawlJobSchemaErrors, FEED_SCHEMA_CHECKS } = await import("./schema-errors.ts");
  return [...crawlJobSchemaErrors(spec), ...semanticErrors(spec, { feedSchema: FEED_SCHEMA_CHECKS })];
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Why the API server would refuse this metadata.name (a lowercase RFC 1123
 * subdomain), in its own words; undefined when it is fine or absent. The local
 * CLI puts the name into feed paths (`%(job)s`), so `../x` must never pass.
 */
export function nameProblem(name: unknown): string | undefined {
  if (name === undefined) return undefined;
  if (!isStr(name) || name === "") return "must be a non-empty string";
  if (name.length > 253) return "must be no more than 253 characters";
  if (!DNS1123_SUBDOMAIN.test(name))
    return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
  return undefined;
}

export interface LoadedManifest {
  /** metadata.name of a CrawlJob, else the spider's name. */
  name: string;
  /** The CrawlJob spec (a bare spider spec is wrapped as `{ spider }`). */
  spec: CrawlJobSpec;
  /** Whether the file was a full CrawlJob manifest. */
  kind: "CrawlJob" | "SpiderSpec";
}

/**
 * Reads a YAML file holding a CrawlJob manifest, a bare CrawlJob spec
 * (`{ spider, feeds, … }`) or a bare spider spec, and normalises Scrapy's
 * snake_case FEEDS keys. The result is not validated: call validateCrawlJobSpec.
 */
export async function loadManifest(path: string): Promise<LoadedManifest> {
  const text = await readFile(path, "utf8");
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new Error(`${path}: not valid YAML: ${(err as Error).message}`);
  }
  if (!isObj(doc)) throw new Error(`${path}: expected a CrawlJob manifest or a spider spec (a YAML mapping)`);
  let spec: Record<string, unknown>;
  let kind: LoadedManifest["kind"] = "CrawlJob";
  let name: unknown;
  if (doc.kind !== undefined || doc.apiVersion !== undefined) {
    if (doc.kind !== "CrawlJob") throw new Error(`${path}: kind is ${JSON.stringify(doc.kind)}, expected CrawlJob`);
    if (!isObj(doc.spec)) throw new Error(`${path}: the CrawlJob has no spec`);
    spec = { ...doc.spec };
    name = isObj(doc.metadata) ? doc.metadata.name : undefined;
    const problem = nameProblem(name);
    if (problem) throw new Error(`${path}: metadata.name ${JSON.stringify(name)}: ${problem}`);
  } else if (isObj(doc.spider)) {
    spec = { ...doc };
  } else {
    spec = { spider: doc };
    kind = "SpiderSpec";
  }
  if (spec.feeds !== undefined) spec.feeds = normalizeScrapyFeedKeys(spec.feeds);
  const spiderName = isObj(spec.spider) && isStr(spec.spider.name) ? spec.spider.name : "crawl";
  return { name: isStr(name) && name ? name : spiderName, spec: spec as unknown as CrawlJobSpec, kind };
}

export type { SpiderSpec };
