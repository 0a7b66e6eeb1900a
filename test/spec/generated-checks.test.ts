// The runner checks a spec with TypeBox's generated code (spec/generated/) and
// loads TypeBox only to explain a refusal. The generated checks must decide
// exactly as TypeBox's compiled ones do, and a valid spec must not load TypeBox.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { Compile } from "typebox/compile";
import { CrawlJobSpec } from "../../crds/schema/crawljob.ts";
import { FeedOptions, StorageSpec } from "../../crds/schema/feeds.ts";
import { Check as crawlJobSpecValid } from "../../spec/generated/crawljob-spec.ts";
import { Check as feedOptionsValid } from "../../spec/generated/feed-options.ts";
import { Check as storageSpecValid } from "../../spec/generated/storage-spec.ts";
import { loadManifest } from "../../spec/validate.ts";

const books = (await loadManifest("examples/books-local.yaml")).spec as unknown as Record<string, unknown>;
const e2e = (await loadManifest("examples/crawljob-e2e.yaml")).spec as unknown as Record<string, unknown>;
const spider = books.spider as Record<string, unknown>;

/** Specs either side of the schema: every kind of keyword the schema uses (patterns, lengths, enums, ranges, unknown fields). */
const specs: Record<string, unknown> = {
  books,
  e2e,
  "unknown top-level field": { ...books, extra: 1 },
  "unknown spider field": { ...books, spider: { ...spider, extra: 1 } },
  "spider name against its pattern": { ...books, spider: { ...spider, name: "Not A Name" } },
  "spider name too long": { ...books, spider: { ...spider, name: "a".repeat(64) } },
  "startUrls not a list": { ...books, spider: { ...spider, startUrls: "https://x/" } },
  "no spider": { feeds: books.feeds },
  "feed format unknown": { ...books, feeds: { "out/x.jsonl": { format: "yaml" } } },
  "negative batch size": { ...books, feeds: { "out/%(batch_id)d.jsonl": { format: "jsonl", batchItemCount: -1 } } },
  "storage field unknown": { ...books, storage: { s3: { endpoint: "http://s3", bogus: true } } },
  "storage retry out of range": { ...books, storage: { s3: { retrySeconds: 10 ** 6 } } },
  "suspend not boolean": { ...books, suspend: "yes" },
  "astral characters count once": { ...books, spider: { ...spider, name: "s😀" } },
};

describe("the generated schema checks", () => {
  it("decide every spec as TypeBox's compiled check does, valid and invalid alike", () => {
    const typebox = { spec: Compile(CrawlJobSpec), options: Compile(FeedOptions), storage: Compile(StorageSpec) };
    let valid = 0;
    for (const [name, spec] of Object.entries(specs)) {
      const expected = typebox.spec.Check(spec);
      assert.equal(crawlJobSpecValid(spec), expected, name);
      if (expected) valid += 1;
      const s = spec as Record<string, unknown>;
      for (const options of Object.values((s.feeds ?? {}) as Record<string, unknown>))
        assert.equal(feedOptionsValid(options), typebox.options.Check(options), `${name}: feed options`);
      if (s.storage !== undefined)
        assert.equal(storageSpecValid(s.storage), typebox.storage.Check(s.storage), `${name}: storage`);
    }
    assert.ok(valid >= 2 && valid < Object.keys(specs).length, `both kinds present (${valid} valid)`);
  });

  it("a valid spec is validated without loading TypeBox; an invalid one loads it for its messages", () => {
    // A fresh process, since this one loaded TypeBox above; module.registerHooks sees every resolution.
    const script = `
      import { registerHooks } from "node:module";
      const loaded = [];
      registerHooks({ resolve(specifier, context, next) {
        if (/^typebox(\\/(compile|system|value|type))?$/.test(specifier)) loaded.push(specifier);
        return next(specifier, context);
      } });
      const { loadManifest, validateCrawlJobSpec } = await import("./spec/validate.ts");
      const { spec } = await loadManifest("examples/books-local.yaml");
      const valid = await validateCrawlJobSpec(spec);
      const before = [...loaded];
      const invalid = await validateCrawlJobSpec({ ...spec, bogus: 1 });
      console.log(JSON.stringify({ valid, before, invalid, after: loaded }));`;
    const out = JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" }));
    assert.deepEqual(out.valid, []);
    assert.deepEqual(out.before, [], "TypeBox was loaded for a valid spec");
    assert.deepEqual(out.invalid, [{ path: "spec.bogus", message: "unknown field" }]);
    assert.ok(out.after.includes("typebox/compile"), JSON.stringify(out.after));
  });
});
