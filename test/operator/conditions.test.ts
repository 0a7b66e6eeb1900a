import assert from "node:assert/strict";
import { test } from "node:test";
import { getCondition, setCondition } from "../../operator/runtime/conditions.ts";

const t0 = new Date("2026-11-25T10:00:00.123Z");
const t1 = new Date("2026-11-25T10:05:00Z");

test("a new condition gets lastTransitionTime now (seconds precision)", () => {
  const list = setCondition([], { type: "Succeeded", status: "Unknown", reason: "Crawling", message: "m" }, t0);
  assert.equal(list[0]!.lastTransitionTime, "2026-11-25T10:00:00Z");
});

test("lastTransitionTime changes only when the status changes; reason/message/generation update in place", () => {
  let list = setCondition(
    [],
    { type: "Succeeded", status: "Unknown", reason: "Crawling", message: "a", observedGeneration: 1 },
    t0,
  );
  list = setCondition(
    list,
    { type: "Succeeded", status: "Unknown", reason: "Ingesting", message: "b", observedGeneration: 2 },
    t1,
  );
  const c = getCondition(list, "Succeeded")!;
  assert.equal(c.lastTransitionTime, "2026-11-25T10:00:00Z");
  assert.equal(c.reason, "Ingesting");
  assert.equal(c.message, "b");
  assert.equal(c.observedGeneration, 2);
  list = setCondition(list, { type: "Succeeded", status: "True", reason: "CrawlSucceeded", message: "c" }, t1);
  assert.equal(getCondition(list, "Succeeded")!.lastTransitionTime, "2026-11-25T10:05:00Z");
  assert.equal(list.length, 1);
});

test("other conditions are kept, the input list is not mutated", () => {
  const before = setCondition([], { type: "Validated", status: "True", reason: "Valid", message: "" }, t0);
  const after = setCondition(before, { type: "Succeeded", status: "Unknown", reason: "Pending", message: "" }, t1);
  assert.equal(before.length, 1);
  assert.deepEqual(
    after.map((c) => c.type),
    ["Validated", "Succeeded"],
  );
});
