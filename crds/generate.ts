// Turns the TypeBox schema (crds/schema/*.ts) into the CrawlJob and CrawlFeed
// CustomResourceDefinitions: structural OpenAPI v3 as Kubernetes wants it; and
// into the standalone checks the runner validates a spec with without loading
// TypeBox (spec/generated/*.ts).
//
//   node crds/generate.ts           writes crds/*.yaml, charts/feedcrawl/files/crds/*.yaml, spec/generated/*.ts
//   node crds/generate.ts --check   exits 1 when a committed file is stale
//
// A unit test (test/operator/crds.test.ts) fails when a committed file differs.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TSchema } from "typebox";
import { Code } from "typebox/compile";
import { stringify } from "yaml";
import { type CelRule, cel, GROUP, VERSION } from "./schema/common.ts";
import { CrawlFeedSpec, CrawlFeedStatus } from "./schema/crawlfeed.ts";
import { CrawlJobSpec, CrawlJobStatus } from "./schema/crawljob.ts";
import { CrawlScheduleSpec, CrawlScheduleStatus, MAX_SCHEDULE_NAME } from "./schema/crawlschedule.ts";
import { FeedOptions, StorageSpec } from "./schema/feeds.ts";

type JsonSchema = Record<string, unknown>;

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

// JSON Schema keywords a structural CRD schema may carry; everything else
// (TypeBox's `$id`, `const`, `anyOf` of constants, `patternProperties`, …) is
// converted below or dropped.
const KEPT = new Set([
  "type",
  "description",
  "format",
  "default",
  "enum",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "pattern",
  "minItems",
  "maxItems",
  "uniqueItems",
  "minProperties",
  "maxProperties",
  "required",
  "properties",
  "additionalProperties",
  "items",
  "nullable",
  "x-kubernetes-validations",
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-int-or-string",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
]);

/** Converts one TypeBox (JSON Schema) node into a structural OpenAPI v3 node. */
export function toStructural(input: JsonSchema, path = "$"): JsonSchema {
  const node: JsonSchema = { ...input };

  // `const` → a one-value enum.
  if ("const" in node) {
    node.enum = [node.const];
    node.type ??= typeof node.const === "number" ? "number" : typeof node.const;
    delete node.const;
  }

  // A union: of constants → enum; of one type → that type; else an untyped
  // scalar/list the API server keeps as is (validated by the runtime validator).
  const union = (node.anyOf ?? node.oneOf) as JsonSchema[] | undefined;
  if (union) {
    delete node.anyOf;
    delete node.oneOf;
    const constants = union.filter((u) => "const" in u);
    if (constants.length === union.length) {
      node.type = typeof constants[0]?.const;
      node.enum = constants.map((u) => u.const);
    } else {
      const types = new Set(union.map((u) => u.type));
      if (types.size === 1 && union.every((u) => Object.keys(u).every((k) => k === "type"))) {
        node.type = [...types][0];
      } else {
        const alternatives = union.map((u) =>
          u.type === "array" ? `list of ${(u.items as JsonSchema)?.type}` : u.type,
        );
        node["x-kubernetes-preserve-unknown-fields"] = true;
        node.description ??= `One of: ${alternatives.join(", ")}.`;
      }
    }
  }

  // Records (`patternProperties: { "^.*$": X }`) → `additionalProperties: X`.
  const patterns = node.patternProperties as Record<string, JsonSchema> | undefined;
  if (patterns) {
    const values = Object.values(patterns);
    if (values.length !== 1) throw new Error(`${path}: only single-pattern records map to a CRD map`);
    node.additionalProperties = values[0];
    delete node.patternProperties;
  }

  // `additionalProperties: false` is the default for structural schemas
  // (unknown fields are pruned, and rejected with fieldValidation=Strict).
  if (node.additionalProperties === false || node.additionalProperties === true) delete node.additionalProperties;

  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (!KEPT.has(key)) continue;
    if (key === "properties") {
      const props: JsonSchema = {};
      for (const [name, child] of Object.entries(value as Record<string, JsonSchema>)) {
        props[name] = toStructural(child, `${path}.${name}`);
      }
      out.properties = props;
    } else if (key === "items" || key === "additionalProperties") {
      out[key] = toStructural(value as JsonSchema, `${path}.${key}`);
    } else if (key === "required") {
      if ((value as string[]).length > 0) out.required = value;
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** TypeBox types carry symbol-keyed metadata; plain JSON is what the CRD needs. */
function json(schema: unknown): JsonSchema {
  return JSON.parse(JSON.stringify(schema)) as JsonSchema;
}

function rootSchema(description: string, spec: unknown, status: unknown, rules: CelRule[] = []): JsonSchema {
  return {
    type: "object",
    description,
    required: ["spec"],
    ...(rules.length > 0 ? cel(...rules) : {}),
    properties: {
      apiVersion: { type: "string" },
      kind: { type: "string" },
      metadata: { type: "object" },
      spec: toStructural(json(spec), "spec"),
      status: toStructural(json(status), "status"),
    },
  };
}

function crd(options: {
  kind: string;
  plural: string;
  shortNames: string[];
  description: string;
  spec: unknown;
  status: unknown;
  printerColumns: Record<string, unknown>[];
  rules?: CelRule[];
}): JsonSchema {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${options.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind: options.kind,
        listKind: `${options.kind}List`,
        plural: options.plural,
        singular: options.kind.toLowerCase(),
        shortNames: options.shortNames,
        categories: ["feedcrawl"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: options.printerColumns,
          schema: { openAPIV3Schema: rootSchema(options.description, options.spec, options.status, options.rules) },
        },
      ],
    },
  };
}

export function crawlJobCrd(): JsonSchema {
  return crd({
    kind: "CrawlJob",
    plural: "crawljobs",
    // `cj` is CronJob's short name in kubectl: never use it.
    shortNames: ["crawl"],
    description:
      "A web crawl: runner pods crawl spec.spider, write batched feed files to storage, report each as a CrawlFeed, and the operator calls the ingest webhook per file.",
    spec: CrawlJobSpec,
    status: CrawlJobStatus,
    rules: [
      {
        // Children are named <name>-runner / <name>-spec, and a Job's name
        // becomes a label value (63 characters at most).
        rule: "size(self.metadata.name) <= 56",
        message: "metadata.name: at most 56 characters (the runner Job is named <name>-runner)",
      },
    ],
    printerColumns: [
      { name: "Phase", type: "string", jsonPath: ".status.phase" },
      { name: "Pages", type: "integer", jsonPath: ".status.stats.pages" },
      { name: "Items", type: "integer", jsonPath: ".status.stats.items" },
      {
        name: "Feeds",
        type: "string",
        jsonPath: ".status.feedSummary.display",
        description: "Feed files delivered/closed",
      },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
      {
        name: "Reason",
        type: "string",
        priority: 1,
        jsonPath: '.status.conditions[?(@.type=="Succeeded")].reason',
      },
      { name: "Schedule", type: "string", priority: 1, jsonPath: ".metadata.labels.feedcrawl\\.io/crawlschedule" },
    ],
  });
}

export function crawlFeedCrd(): JsonSchema {
  return crd({
    kind: "CrawlFeed",
    plural: "crawlfeeds",
    shortNames: ["cfeed"],
    description:
      "One closed feed file of a CrawlJob, created by its runner after the file is stored; the operator delivers it to the ingest webhook.",
    spec: CrawlFeedSpec,
    status: CrawlFeedStatus,
    printerColumns: [
      { name: "Job", type: "string", jsonPath: ".metadata.labels.feedcrawl\\.io/crawljob" },
      { name: "Items", type: "integer", jsonPath: ".spec.items" },
      { name: "State", type: "string", jsonPath: ".status.delivery.state" },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
      { name: "URI", type: "string", priority: 1, jsonPath: ".spec.uri" },
      { name: "Attempts", type: "integer", priority: 1, jsonPath: ".status.delivery.attempts" },
    ],
  });
}

export function crawlScheduleCrd(): JsonSchema {
  return crd({
    kind: "CrawlSchedule",
    plural: "crawlschedules",
    shortNames: ["crawlsched"],
    description:
      "A CrawlJob template run on a cron schedule (modelled on CronJob): each run is a CrawlJob owned by the schedule.",
    spec: CrawlScheduleSpec,
    status: CrawlScheduleStatus,
    rules: [
      {
        rule: `size(self.metadata.name) <= ${MAX_SCHEDULE_NAME}`,
        message: `metadata.name: at most ${MAX_SCHEDULE_NAME} characters (its CrawlJobs are named <name>-<minutes since the epoch>)`,
      },
    ],
    printerColumns: [
      { name: "Schedule", type: "string", jsonPath: ".spec.schedule" },
      { name: "Timezone", type: "string", priority: 1, jsonPath: ".spec.timeZone" },
      { name: "Suspend", type: "boolean", jsonPath: ".spec.suspend" },
      { name: "Active", type: "integer", jsonPath: ".status.activeCount" },
      { name: "Last Schedule", type: "date", jsonPath: ".status.lastScheduleTime" },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
      { name: "Last Success", type: "date", priority: 1, jsonPath: ".status.lastSuccessfulTime" },
    ],
  });
}

const HEADER = "# Generated by crds/generate.ts from crds/schema/*.ts. Do not edit: run `node crds/generate.ts`.\n";

export function renderCrd(doc: JsonSchema): string {
  return HEADER + stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false });
}

/**
 * A standalone ESM module exporting `Check(value): boolean` for `type`:
 * TypeBox's own code generator (`Code`), its external values (the schema's
 * patterns, all RegExps) written as literals, and imports the code does not
 * use dropped. Loading TypeBox costs a process ~20 MB RSS; the modules
 * import only its small helpers (`typebox/guard` today).
 */
export function renderCheck(schemaFile: string, type: TSchema): string {
  const { Code: code, External } = Code(type);
  const variables = External.variables.map((value, i) => {
    if (!(value instanceof RegExp)) throw new Error(`${schemaFile}: external value ${i} is not a RegExp`);
    return `new RegExp(${JSON.stringify(value.source)}, ${JSON.stringify(value.flags)})`;
  });
  const lines = code.split("\n");
  const body = lines.filter((line) => !line.startsWith("import ")).join("\n");
  const imports = lines.filter((line) => {
    const name = /^import \{ (\w+) \}/.exec(line)?.[1];
    return name !== undefined && body.includes(`${name}.`);
  });
  return [
    `// Generated by crds/generate.ts from ${schemaFile} (TypeBox's Code()). Do not edit: run \`node crds/generate.ts\`.`,
    "// @ts-nocheck",
    ...imports,
    body.trim(),
    "",
    `SetExternal({ variables: [${variables.join(", ")}] });`,
    "",
  ].join("\n");
}

/** Every generated file, path relative to the repository root → content. */
export function generatedFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const doc of [crawlJobCrd(), crawlFeedCrd(), crawlScheduleCrd()]) {
    const name = `${GROUP}_${(doc.spec as { names: { plural: string } }).names.plural}.yaml`;
    const text = renderCrd(doc);
    files.set(join("crds", name), text);
    files.set(join("charts", "feedcrawl", "files", "crds", name), text);
  }
  files.set(join("spec", "generated", "crawljob-spec.ts"), renderCheck("crds/schema/crawljob.ts", CrawlJobSpec));
  files.set(join("spec", "generated", "feed-options.ts"), renderCheck("crds/schema/feeds.ts", FeedOptions));
  files.set(join("spec", "generated", "storage-spec.ts"), renderCheck("crds/schema/feeds.ts", StorageSpec));
  return files;
}

/** Paths of generated files whose committed content differs from the schema's. */
export function staleFiles(root = repoRoot): string[] {
  const stale: string[] = [];
  for (const [path, text] of generatedFiles()) {
    let current = "";
    try {
      current = readFileSync(join(root, path), "utf8");
    } catch {
      // missing counts as stale
    }
    if (current !== text) stale.push(path);
  }
  return stale;
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes("--check")) {
    const stale = staleFiles();
    for (const path of stale) process.stderr.write(`${path} is stale: run \`node crds/generate.ts\`\n`);
    return stale.length === 0 ? 0 : 1;
  }
  const { mkdirSync } = await import("node:fs");
  for (const [path, text] of generatedFiles()) {
    mkdirSync(dirname(join(repoRoot, path)), { recursive: true });
    writeFileSync(join(repoRoot, path), text);
    process.stdout.write(`wrote ${path}\n`);
  }
  return 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
