// Acceptance for Scrapy compatibility (issue 16, feature 8): FEEDS dicts copied from
// Scrapy's own docs (test/fixtures/scrapy-feeds-docs.yaml) either validate unchanged or
// are refused, each refusal naming the field and the feedcrawl option to write instead.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { loadManifest, validateCrawlJobSpec } from "../../spec/validate.ts";

const FIXTURE = path.join(import.meta.dirname, "../fixtures/scrapy-feeds-docs.yaml");
const SPIDER = {
  name: "books",
  startUrls: ["https://books.example/"],
  extract: [{ name: "MyItemClass1", fields: { name: { selector: "h1", text: true } } }],
};

/** Runs one `feeds` map the way `feedcrawl validate` does: a manifest file, loadManifest, validateCrawlJobSpec. */
async function validate(feeds: unknown) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "feedcrawl-scrapy-"));
  try {
    const file = path.join(dir, "job.yaml");
    await writeFile(file, JSON.stringify({ spider: SPIDER, feeds }));
    const { spec } = await loadManifest(file);
    return { spec, errors: await validateCrawlJobSpec(spec) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const docs = parse(await readFile(FIXTURE, "utf8")) as Record<string, Record<string, unknown>>;
const f = (uri: string, key: string) => `spec.feeds[${JSON.stringify(uri)}].${key}`;

/** Every error expected for each example, by path, with what its message must name. */
const EXPECTED: Record<string, [string, RegExp][]> = {
  "settings-example": [
    [f("/home/user/documents/items.xml", "item_filter"), /write itemFilter: \[\{field.*itemTypes/],
    [f("items.csv.gz", "item_filter"), /write itemFilter/],
    [f("items.csv.gz", "postprocessing[0]"), /"MyPlugin1".*built in are gzip, brotli, zstd/],
  ],
  "postprocessing-example": [
    [f("items.jsonl.gz", "postprocessing[0]"), /custom plugin.*gzip, brotli, zstd/],
    [f("items.jsonl.gz", "postprocessing[2]"), /"MyPlugin2".*custom plugin/],
  ],
  "builtin-plugins": [
    [f("items.jsonl.xz", "postprocessing[0]"), /LZMA\/xz compression is not offered.*use zstd/],
    [f("items.jsonl.bz2", "postprocessing[0]"), /bz2 compression is not offered.*use zstd or gzip/],
    [f("items.jsonl.bz2", "bz2_compresslevel"), /use postprocessing \[zstd\]/],
  ],
  "batch-example": [],
  "uri-params-example": [
    [f("file:///tmp/%(spider_name)s.jsonl", "uri_params"), /Python function.*%\(name\)s, %\(job\)s/],
    [`spec.feeds["file:///tmp/%(spider_name)s.jsonl"]`, /spider_name/],
  ],
  "export-fields-example": [[f("renamed.csv", "fields"), /list the fields \(fields: \[foo, bar\]\)/]],
  "export-kwargs-example": [],
};

test("every example of Scrapy's feed-exports docs validates or is refused with the replacement named", async () => {
  assert.deepEqual(Object.keys(docs).sort(), Object.keys(EXPECTED).sort(), "every fixture example has expectations");
  for (const [example, feeds] of Object.entries(docs)) {
    const { errors } = await validate(feeds);
    const expected = EXPECTED[example] ?? [];
    assert.deepEqual(
      errors.map((e) => e.path).sort(),
      expected.map(([p]) => p).sort(),
      `${example}: ${JSON.stringify(errors, null, 1)}`,
    );
    for (const [p, pattern] of expected) {
      const messages = errors.filter((e) => e.path === p).map((e) => e.message);
      assert.ok(
        messages.some((m) => pattern.test(m)),
        `${example} ${p}: ${JSON.stringify(messages)} should match ${pattern}`,
      );
    }
  }
});

test("what maps is mapped: the docs' options arrive as feedcrawl's", async () => {
  const settings = (await validate(docs["settings-example"])).spec.feeds ?? {};
  assert.deepEqual(settings["items.json"], {
    format: "json",
    encoding: "utf8",
    storeEmpty: false,
    itemTypes: ["MyItemClass1", "MyItemClass2"],
    indent: 4,
    exportEmptyFields: true,
  });
  assert.equal(settings["items.csv.gz"]?.compressionLevel, 5);
  assert.deepEqual(settings["items.csv.gz"]?.postprocessing, ["MyPlugin1", "gzip"]);
  const fields = (await validate(docs["export-fields-example"])).spec.feeds ?? {};
  assert.deepEqual(fields["items.csv"], { format: "csv", fields: ["foo", "bar", "baz"] });
  const kwargs = (await validate(docs["export-kwargs-example"])).spec.feeds ?? {};
  assert.deepEqual(kwargs["items.json"], { format: "json", sortKeys: true, ensureAscii: true });
  assert.deepEqual(kwargs["items.csv"], {
    format: "csv",
    csvQuoteChar: "'",
    csvDelimiter: ";",
    csvJoinMultivalued: "|",
  });
  const batch = (await validate(docs["batch-example"])).spec.feeds ?? {};
  assert.equal(batch["dirname/%(batch_id)d-filename%(batch_time)s.json"]?.batchItemCount, 100);
});
