import assert from "node:assert/strict";
import { test } from "node:test";
import {
  formatUriTime,
  isBatchTemplate,
  parseUriTemplate,
  renderUri,
  staticBatchPrefix,
} from "../../spec/uri-template.ts";

const values = {
  name: "books",
  job: "books-run",
  time: "2026-11-25T10-00-00",
  batch_id: 7,
  batch_time: "2026-11-25T10-03-12.345",
  shard: 2,
};

test("renders every parameter with printf widths and flags", () => {
  const t = parseUriTemplate("s3://b/%(name)s/%(job)s/%(time)s/%(shard)d/part-%(batch_id)05d-%(batch_time)s.jsonl");
  assert.deepEqual(t.errors, []);
  assert.equal(
    renderUri(t, values),
    "s3://b/books/books-run/2026-11-25T10-00-00/2/part-00007-2026-11-25T10-03-12.345.jsonl",
  );
  assert.equal(renderUri(parseUriTemplate("%(batch_id)3d|%(batch_id)-3d|%(name)8s"), values), "  7|7  |   books");
  assert.equal(renderUri(parseUriTemplate("%(batch_id)i"), values), "7");
});

test("keeps % that is not a placeholder, and %% is a literal %", () => {
  const t = parseUriTemplate("file:///tmp/a%20b/100%%/%(name)s");
  assert.deepEqual(t.errors, []);
  assert.equal(renderUri(t, values), "file:///tmp/a%20b/100%/books");
});

test("reports unknown parameters, bad conversions and widths", () => {
  assert.match(parseUriTemplate("%(site)s").errors[0] ?? "", /unknown URI parameter %\(site\)/);
  assert.match(parseUriTemplate("%(name)d").errors[0] ?? "", /formats a string as a number/);
  assert.match(parseUriTemplate("%(batch_id)").errors[0] ?? "", /needs a conversion/);
  assert.match(parseUriTemplate("%(batch_id)099d").errors[0] ?? "", /width 99/);
  assert.match(parseUriTemplate("%(batch_id).2d").errors[0] ?? "", /precision/);
  assert.throws(() => renderUri(parseUriTemplate("%(nope)s"), values), /invalid/);
});

test("time params hold no colon (S3 keys, Windows paths)", () => {
  const d = new Date("2026-11-25T10:03:12.345Z");
  assert.equal(formatUriTime(d), "2026-11-25T10-03-12");
  assert.equal(formatUriTime(d, true), "2026-11-25T10-03-12.345");
  assert.doesNotMatch(formatUriTime(d, true), /:/);
});

test("batch templates and their static folder", () => {
  const t = parseUriTemplate("s3://b/%(name)s/%(time)s/part-%(batch_id)05d.jsonl.gz");
  assert.ok(isBatchTemplate(t));
  assert.equal(renderUri(staticBatchPrefix(t), values), "s3://b/books/2026-11-25T10-00-00/");
  assert.ok(!isBatchTemplate(parseUriTemplate("s3://b/%(name)s.jsonl")));
  assert.ok(isBatchTemplate(parseUriTemplate("s3://b/%(batch_time)s.jsonl")));
  assert.equal(renderUri(staticBatchPrefix(parseUriTemplate("out/%(name)s.csv")), values), "out/");
  assert.equal(renderUri(staticBatchPrefix(parseUriTemplate("s3://b/x/%(batch_id)d/f.csv")), values), "s3://b/x/");
});
