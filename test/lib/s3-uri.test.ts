// lib/s3-uri.ts: the one s3://bucket/key parser.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseS3Uri } from "../../lib/s3-uri.ts";

describe("parseS3Uri", () => {
  it("splits bucket and key at the first slash", () => {
    assert.deepEqual(parseS3Uri("s3://feeds/a/b/part-1.jsonl"), { bucket: "feeds", key: "a/b/part-1.jsonl" });
    assert.deepEqual(parseS3Uri("s3://b/k"), { bucket: "b", key: "k" });
    assert.deepEqual(parseS3Uri("s3://b/k/"), { bucket: "b", key: "k/" });
  });

  it("names what is missing", () => {
    assert.throws(() => parseS3Uri("s3://"), /no bucket/);
    assert.throws(() => parseS3Uri("s3:///key"), /no bucket/);
    assert.throws(() => parseS3Uri("s3://bucket"), /no object key/);
    assert.throws(() => parseS3Uri("s3://bucket/"), /no object key/);
    assert.throws(() => parseS3Uri("https://bucket/key"), /looks like s3:\/\/bucket\/key/);
    assert.throws(() => parseS3Uri("s3:bucket/key"), /looks like s3:\/\/bucket\/key/);
  });

  it("with keyOptional, takes a bucket or a folder: the key is the prefix", () => {
    const opts = { keyOptional: true };
    assert.deepEqual(parseS3Uri("s3://feeds", opts), { bucket: "feeds", key: "" });
    assert.deepEqual(parseS3Uri("s3://feeds/", opts), { bucket: "feeds", key: "" });
    assert.deepEqual(parseS3Uri("s3://feeds/books/2026-11-25T10-00-00/", opts), {
      bucket: "feeds",
      key: "books/2026-11-25T10-00-00/",
    });
    assert.deepEqual(parseS3Uri("s3://feeds/a/part-1.jsonl", opts), { bucket: "feeds", key: "a/part-1.jsonl" });
    // A bucket is still required, and the scheme still checked.
    assert.throws(() => parseS3Uri("s3://", opts), /no bucket/);
    assert.throws(() => parseS3Uri("s3:///prefix/", opts), /no bucket/);
    assert.throws(() => parseS3Uri("file:///tmp/x/", opts), /looks like s3:\/\/bucket\/key/);
  });
});
