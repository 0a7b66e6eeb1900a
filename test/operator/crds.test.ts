// The CRDs are generated from the TypeBox schema: the committed YAML must be
// current, and the output must be a structural schema Kubernetes accepts.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import {
  crawlFeedCrd,
  crawlJobCrd,
  crawlScheduleCrd,
  generatedFiles,
  staleFiles,
  toStructural,
} from "../../crds/generate.ts";

type Node = Record<string, unknown>;

function walk(node: Node, path: string, visit: (node: Node, path: string) => void) {
  visit(node, path);
  for (const [name, child] of Object.entries((node.properties as Record<string, Node>) ?? {}))
    walk(child, `${path}.${name}`, visit);
  if (node.items) walk(node.items as Node, `${path}[]`, visit);
  if (node.additionalProperties && typeof node.additionalProperties === "object") {
    walk(node.additionalProperties as Node, `${path}{}`, visit);
  }
}

const schemaOf = (crd: Node) => ((crd.spec as Node).versions as Node[])[0]!.schema as { openAPIV3Schema: Node };

test("the committed CRD YAML matches the schema (run `node crds/generate.ts` when this fails)", () => {
  assert.deepEqual(staleFiles(), []);
});

test("the chart's copies are identical to crds/", () => {
  const files = generatedFiles();
  for (const [path, text] of files) {
    if (!path.startsWith("charts")) continue;
    const twin = path.replace(/^charts\/feedcrawl\/files\/crds\//, "crds/");
    assert.equal(text, files.get(twin));
    assert.equal(readFileSync(path, "utf8"), readFileSync(twin, "utf8"));
  }
});

test("the YAML parses back to the generated objects", () => {
  for (const crd of [crawlJobCrd(), crawlFeedCrd(), crawlScheduleCrd()]) {
    const name = (crd.metadata as Node).name as string;
    const file = `crds/${name.split(".").slice(1).join(".")}_${name.split(".")[0]}.yaml`;
    assert.deepEqual(parse(readFileSync(file, "utf8")), crd);
  }
});

for (const crd of [crawlJobCrd(), crawlFeedCrd(), crawlScheduleCrd()]) {
  const kind = ((crd.spec as Node).names as Node).kind as string;

  test(`${kind}: structural — no JSON Schema constructs Kubernetes rejects, every node typed`, () => {
    walk(schemaOf(crd).openAPIV3Schema, kind, (node, path) => {
      for (const key of ["anyOf", "oneOf", "allOf", "const", "patternProperties", "$id", "$schema", "not"]) {
        assert.ok(!(key in node), `${path} has ${key}`);
      }
      assert.ok(
        node.type !== undefined || node["x-kubernetes-preserve-unknown-fields"] === true,
        `${path} has no type`,
      );
      assert.ok(!(node.properties && node.additionalProperties), `${path} has properties and additionalProperties`);
    });
  });

  test(`${kind}: every list and string in spec is bounded`, () => {
    const spec = (schemaOf(crd).openAPIV3Schema.properties as Record<string, Node>).spec!;
    walk(spec, `${kind}.spec`, (node, path) => {
      if (node.type === "array") assert.ok(typeof node.maxItems === "number", `${path} has no maxItems`);
      if (node.type === "string") {
        assert.ok(
          typeof node.maxLength === "number" || Array.isArray(node.enum) || node.format === "date-time",
          `${path} has no maxLength`,
        );
      }
      if (node.type === "object" && node.additionalProperties) {
        assert.ok(typeof node.maxProperties === "number", `${path} map has no maxProperties`);
      }
    });
  });
}

test("CrawlJob names: short name crawl (not cj), category feedcrawl, status subresource, printer columns", () => {
  const spec = crawlJobCrd().spec as Node;
  const names = spec.names as Node;
  assert.deepEqual(names.shortNames, ["crawl"]);
  assert.deepEqual(names.categories, ["feedcrawl"]);
  const version = (spec.versions as Node[])[0]!;
  assert.deepEqual(version.subresources, { status: {} });
  const columns = (version.additionalPrinterColumns as Node[]).filter((c) => !c.priority).map((c) => c.name);
  assert.deepEqual(columns, ["Phase", "Pages", "Items", "Feeds", "Age"]);
});

test("CrawlFeed names: short name cfeed, printer columns JOB ITEMS STATE AGE, immutable spec", () => {
  const spec = crawlFeedCrd().spec as Node;
  assert.deepEqual((spec.names as Node).shortNames, ["cfeed"]);
  const version = (spec.versions as Node[])[0]!;
  const columns = (version.additionalPrinterColumns as Node[]).filter((c) => !c.priority).map((c) => c.name);
  assert.deepEqual(columns, ["Job", "Items", "State", "Age"]);
  const feedSpec = (schemaOf(crawlFeedCrd()).openAPIV3Schema.properties as Record<string, Node>).spec!;
  assert.deepEqual(feedSpec["x-kubernetes-validations"], [
    { rule: "self == oldSelf", message: "spec is immutable: a CrawlFeed records a file already stored" },
  ]);
});

test("CEL rules, defaults and enums survive the conversion", () => {
  const text = readFileSync("crds/feedcrawl.io_crawljobs.yaml", "utf8");
  assert.match(text, /uri\.contains\('%\(batch_id\)'\)/);
  assert.match(text, /url\(self\)\.getScheme\(\) in \['http', 'https'\]/);
  assert.match(text, /self\.spider\.startUrls\.all\(u, u\.startsWith\('http:\/\/'\)/);
  assert.match(text, /size\(self\.metadata\.name\) <= 56/);
  const root = schemaOf(crawlJobCrd()).openAPIV3Schema;
  const spec = (root.properties as Record<string, Node>).spec!;
  const ingest = (spec.properties as Record<string, Node>).ingest!;
  const webhook = (ingest.properties as Record<string, Node>).webhook!;
  const mode = (webhook.properties as Record<string, Node>).mode!;
  assert.deepEqual(mode.enum, ["perFeed", "onCompletion"]);
  assert.equal(mode.default, "perFeed");
  const status = (root.properties as Record<string, Node>).status!;
  const conditions = (status.properties as Record<string, Node>).conditions!;
  assert.equal(conditions["x-kubernetes-list-type"], "map");
  assert.ok((status.properties as Node).shardStats);
  assert.ok((status.properties as Node).completionDelivery);
});

test("toStructural: records → additionalProperties, unions of constants → enum, const → enum", () => {
  assert.deepEqual(toStructural({ type: "object", patternProperties: { "^.*$": { type: "string", maxLength: 3 } } }), {
    type: "object",
    additionalProperties: { type: "string", maxLength: 3 },
  });
  assert.deepEqual(toStructural({ anyOf: [{ const: "a" }, { const: "b" }] }), { type: "string", enum: ["a", "b"] });
  assert.deepEqual(toStructural({ const: 3 }), { type: "number", enum: [3] });
  assert.deepEqual(
    toStructural({ type: "object", properties: { a: { type: "string", maxLength: 1 } }, additionalProperties: false }),
    {
      type: "object",
      properties: { a: { type: "string", maxLength: 1 } },
    },
  );
  const mixed = toStructural({ anyOf: [{ type: "boolean" }, { type: "array", items: { type: "string" } }] });
  assert.equal(mixed["x-kubernetes-preserve-unknown-fields"], true);
  assert.equal(mixed.type, undefined);
});
