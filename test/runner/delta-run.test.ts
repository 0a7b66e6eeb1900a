// The delta run's item filter: an item's hash depends on its type and content,
// not on the order of its fields; a changed field or another type is new.
import assert from "node:assert/strict";
import { test } from "node:test";
import { itemHash } from "../../runner/delta/delta-run.ts";

test("itemHash: the same content in any key order is one item; a changed value or type is another", () => {
  const a = { type: "product", fields: { url: "u", price: 1.5, tags: ["x", "y"], meta: { b: 1, a: 2 } } };
  const reordered = { type: "product", fields: { meta: { a: 2, b: 1 }, tags: ["x", "y"], price: 1.5, url: "u" } };
  assert.equal(itemHash(a), itemHash(reordered));
  assert.match(itemHash(a), /^[0-9a-f]{32}$/);
  assert.notEqual(itemHash(a), itemHash({ ...a, fields: { ...a.fields, price: 1.6 } }));
  assert.notEqual(itemHash(a), itemHash({ ...a, fields: { ...a.fields, tags: ["y", "x"] } }), "list order counts");
  assert.notEqual(itemHash(a), itemHash({ ...a, type: "offer" }));
});
