// The API server fills in the CRD's `default:`s before the operator validates a
// CrawlJob: a default that the validator then refuses (an option of another
// feed format, a sitemap-only setting) would fail every job on a cluster while
// `feedcrawl validate` says OK. This applies the generated CRD's defaults the
// way the API server does and validates the result.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { loadManifest, validateCrawlJobSpec } from "../../spec/validate.ts";

interface Schema {
  type?: string;
  default?: unknown;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
}

const crd = parse(readFileSync(new URL("../../crds/feedcrawl.io_crawljobs.yaml", import.meta.url), "utf8"));
const specSchema: Schema = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec;

/** Structural defaulting: absent properties with a default are set, then every present value is walked. */
function applyDefaults(value: unknown, schema: Schema): unknown {
  if (Array.isArray(value)) return schema.items ? value.map((v) => applyDefaults(v, schema.items as Schema)) : value;
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [name, prop] of Object.entries(schema.properties ?? {})) {
    if (!(name in out) && prop.default !== undefined) out[name] = structuredClone(prop.default);
    if (name in out) out[name] = applyDefaults(out[name], prop);
  }
  if (typeof schema.additionalProperties === "object")
    for (const name of Object.keys(out))
      if (!schema.properties?.[name]) out[name] = applyDefaults(out[name], schema.additionalProperties);
  return out;
}

describe("CRD defaults", () => {
  for (const example of ["books-local.yaml"]) {
    it(`leave examples/${example} valid once the API server has filled them in`, async () => {
      const { spec } = await loadManifest(new URL(`../../examples/${example}`, import.meta.url).pathname);
      assert.deepEqual(await validateCrawlJobSpec(spec), []);
      assert.deepEqual(await validateCrawlJobSpec(applyDefaults(spec, specSchema)), []);
    });
  }

  it("leave a spec with every feed format and no sitemaps valid", async () => {
    const spec = {
      spider: {
        name: "s",
        startUrls: ["https://example.com/"],
        extract: [{ name: "p", fields: { t: { selector: "h1" } } }],
        settings: { robotsTxtObey: true },
      },
      feeds: Object.fromEntries(
        ["jsonlines", "json", "csv", "xml"].map((format) => [`file:///tmp/out/%(batch_id)d.${format}`, { format }]),
      ),
    };
    const defaulted = applyDefaults(spec, specSchema) as { feeds: Record<string, unknown> };
    assert.notDeepEqual(defaulted, spec, "the CRD fills in some defaults (else this test proves nothing)");
    assert.deepEqual(await validateCrawlJobSpec(defaulted), []);
  });
});
