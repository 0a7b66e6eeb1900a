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
});
