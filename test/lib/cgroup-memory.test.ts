import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { cgroupMemoryPeakBytes } from "../../lib/cgroup-memory.ts";

const dir = mkdtempSync(join(tmpdir(), "cgroup-memory-"));
const file = (name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};

test("reads the first cgroup file there is: v2's memory.peak, else v1's max usage", async () => {
  const v1 = file("max_usage_in_bytes", "187654144\n");
  assert.equal(await cgroupMemoryPeakBytes([join(dir, "missing"), v1]), 187_654_144);
  assert.equal(await cgroupMemoryPeakBytes([file("peak", "4096\n"), v1]), 4096);
});

test("no readable number: undefined, not 0", async () => {
  assert.equal(await cgroupMemoryPeakBytes([join(dir, "missing"), file("garbage", "max\n")]), undefined);
});
