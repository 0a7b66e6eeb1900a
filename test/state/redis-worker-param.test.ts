// %(worker)s: each worker of a crawl shared over a Redis frontier writes its
// own feed files; without a shared frontier it is the shard index.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseUriTemplate, renderUri } from "../../spec/uri-template.ts";

const values = { name: "books", job: "run", time: "t", batch_id: 3, batch_time: "bt", shard: 2 };

test("%(worker)s names the worker, else the shard; it is a string parameter", () => {
  const t = parseUriTemplate("s3://b/%(name)s/%(worker)s-%(batch_id)03d.jsonl");
  assert.deepEqual(t.errors, []);
  assert.equal(renderUri(t, { ...values, worker: "laptop-1" }), "s3://b/books/laptop-1-003.jsonl");
  assert.equal(renderUri(t, values), "s3://b/books/2-003.jsonl");
  assert.match(parseUriTemplate("%(worker)d").errors[0] ?? "", /formats a string as a number/);
});
