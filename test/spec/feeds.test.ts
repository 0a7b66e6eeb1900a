import assert from "node:assert/strict";
import { test } from "node:test";
import type { Feeds } from "../../crds/schema/feeds.ts";
import { validateFeeds } from "../../spec/feeds.ts";
import { normalizeScrapyFeedKeys } from "../../spec/scrapy-keys.ts";

const U = "s3://crawl-data/%(name)s/%(time)s/part-%(batch_id)05d.jsonl.gz";

async function errorsOf(feeds: unknown, storage?: unknown, parallelism?: number) {
  return await validateFeeds(feeds as Feeds, storage as never, { parallelism });
}

test("a good spec has no errors", async () => {
  assert.deepEqual(
    await errorsOf(
      {
        [U]: { format: "jsonlines", batchItemCount: 5000, postprocessing: ["gzip"], compressionLevel: 9 },
        "file:///tmp/out/%(name)s-%(batch_time)s.csv": { format: "csv", batchMaxSeconds: 60, fields: ["a"] },
        "stdout:": { format: "jl" },
        "out/%(name)s.xml.zst": { format: "xml", postprocessing: ["zstd"], itemTypes: ["product"] },
      },
      { s3: { endpoint: "http://127.0.0.1:9000", forcePathStyle: true } },
    ),
    [],
  );
  assert.deepEqual(await validateFeeds(undefined, undefined), []);
});

test("each problem names the feed and the option", async () => {
  const errors = await errorsOf({
    "s3://b/%(name)s.jsonl": { format: "parquet", batchItemCount: 10, postprocessing: ["lzma"], bogus: 1 },
  });
  const byPath = new Map(errors.map((e) => [e.path, e.message]));
  const base = 'spec.feeds["s3://b/%(name)s.jsonl"]';
  assert.match(byPath.get(`${base}.format`) ?? "", /unknown format "parquet"/);
  assert.match(byPath.get(`${base}.postprocessing[0]`) ?? "", /unknown postprocessing "lzma"/);
  assert.match(byPath.get(`${base}.bogus`) ?? "", /unknown option/);
  assert.match(byPath.get(`${base}.batchItemCount`) ?? "", /%\(batch_id\)d or %\(batch_time\)s/);
});

test("batched URI without a batch placeholder is refused for every batch option", async () => {
  for (const option of ["batchItemCount", "batchMaxBytes", "batchMaxSeconds"]) {
    const errors = await errorsOf({ "out/x.jsonl": { format: "jsonlines", [option]: 1 } });
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.path, `spec.feeds["out/x.jsonl"].${option}`);
  }
});

test("URI problems: scheme, bucket, params, widths", async () => {
  const cases: [string, RegExp][] = [
    ["ftp://host/x.jsonl", /unsupported URI scheme "ftp:"/],
    ["gs://b/x.jsonl", /unsupported URI scheme "gs:"/],
    ["s3:///x.jsonl", /no bucket/],
    ["s3://bucket", /no object key/],
    ["s3://%(name)s/x.jsonl", /bucket must not contain/],
    ["s3://b/%(site)s.jsonl", /unknown URI parameter %\(site\)/],
    ["s3://b/%(batch_id)099d.jsonl", /width 99/],
  ];
  for (const [uri, re] of cases) {
    const errors = await errorsOf({ [uri]: { format: "jsonlines" } });
    assert.ok(
      errors.some((e) => e.path === `spec.feeds[${JSON.stringify(uri)}]` && re.test(e.message)),
      `${uri}: ${JSON.stringify(errors)}`,
    );
  }
});

test("option types, ranges, compression names and levels", async () => {
  const base = 'spec.feeds["out/x-%(batch_id)d.json.gz"]';
  const errors = await errorsOf({
    "out/x-%(batch_id)d.json.gz": {
      format: "json",
      batchItemCount: "ten",
      postprocessing: ["gzip"],
      compressionLevel: 15,
      storeEmpty: "yes",
      fields: [1],
    },
  });
  const paths = errors.map((e) => e.path);
  assert.ok(paths.includes(`${base}.batchItemCount`), JSON.stringify(errors));
  assert.ok(paths.includes(`${base}.compressionLevel`));
  assert.ok(paths.includes(`${base}.storeEmpty`));
  assert.ok(paths.includes(`${base}.fields[0]`));
  const noExt = await errorsOf({ "out/x.jsonl": { format: "jsonlines", postprocessing: ["gzip"] } });
  assert.match(noExt[0]?.message ?? "", /must end with "\.gz"/);
  const levelAlone = await errorsOf({ "out/x.jsonl": { format: "jsonlines", compressionLevel: 3 } });
  assert.equal(levelAlone[0]?.path, 'spec.feeds["out/x.jsonl"].compressionLevel');
  const indented = await errorsOf({ "out/x.jsonl": { format: "jsonlines", indent: 2 } });
  assert.equal(indented[0]?.path, 'spec.feeds["out/x.jsonl"].indent');
  assert.match((await errorsOf({ "out/x.jsonl": {} }))[0]?.message ?? "", /required/);
  assert.equal((await errorsOf({ "out/x.jsonl": "jsonlines" }))[0]?.path, 'spec.feeds["out/x.jsonl"]');
  assert.equal((await errorsOf([]))[0]?.path, "spec.feeds");
});

test("two feeds writing the same files, and shards without %(shard)d", async () => {
  const dup = await errorsOf({ "out/a.jsonl": { format: "jsonlines" }, "file://out/a.jsonl": { format: "jsonlines" } });
  assert.equal(dup.length, 1);
  assert.match(dup[0]?.message ?? "", /same files as feed "out\/a.jsonl"/);
  const same = await errorsOf({ "stdout:": { format: "jsonlines" }, "-": { format: "csv" } });
  assert.equal(same.length, 1);
  assert.match(same[0]?.message ?? "", /same files/);
  const shards = await errorsOf(
    { [U]: { format: "jsonlines", batchItemCount: 5, postprocessing: ["gzip"] } },
    undefined,
    3,
  );
  assert.match(shards[0]?.message ?? "", /%\(shard\)d/);
  const ok = await errorsOf(
    { "s3://b/%(shard)d/%(batch_id)d.jsonl": { format: "jsonlines", batchItemCount: 5 } },
    undefined,
    3,
  );
  assert.deepEqual(ok, []);
});

test("storage spec", async () => {
  const errors = await errorsOf({}, { s3: { endpoint: "ftp://x", partSizeBytes: 10, nope: 1 } });
  const paths = errors.map((e) => e.path);
  assert.ok(paths.includes("spec.storage.s3.endpoint"));
  assert.ok(paths.includes("spec.storage.s3.partSizeBytes"));
  assert.ok(paths.includes("spec.storage.s3.nope"));
});

test("Scrapy's snake_case FEEDS keys map to ours; unknown ones stay for validation to name", async () => {
  const scrapy = {
    "s3://b/%(name)s/%(batch_id)d.csv.gz": {
      format: "CSV",
      batch_item_count: 100,
      store_empty: true,
      item_classes: ["myproject.items.product"],
      item_export_kwargs: { export_empty_fields: true, delimiter: ";" },
      postprocessing: ["scrapy.extensions.postprocessing.GzipPlugin"],
      gzip_compresslevel: 5,
      overwrite: false,
      fields: ["a"],
      uri_params: "myproject.uri_params",
    },
  };
  const ours = normalizeScrapyFeedKeys(scrapy) as Record<string, Record<string, unknown>>;
  assert.deepEqual(ours["s3://b/%(name)s/%(batch_id)d.csv.gz"], {
    format: "csv",
    batchItemCount: 100,
    storeEmpty: true,
    itemTypes: ["product"],
    exportEmptyFields: true,
    csvDelimiter: ";",
    postprocessing: ["gzip"],
    compressionLevel: 5,
    overwrite: false,
    fields: ["a"],
    uri_params: "myproject.uri_params",
  });
  const errors = await validateFeeds(ours as Feeds, undefined);
  assert.deepEqual(
    errors.map((e) => [e.path, e.message]),
    [
      [
        'spec.feeds["s3://b/%(name)s/%(batch_id)d.csv.gz"].uri_params',
        "Scrapy's uri_params names a Python function, which a CrawlJob cannot run: the URI template takes the fixed parameters %(name)s, %(job)s, %(time)s, %(batch_id)d, %(batch_time)s, %(shard)d; write any other fixed value into the URI itself, and remove this option",
      ],
    ],
  );
  assert.equal(normalizeScrapyFeedKeys("x"), "x");
});
