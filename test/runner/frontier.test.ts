// The frontier keeps FIFO order across disk spills and cleans up; fingerprints
// canonicalise URLs and the compact set behaves like a Set.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { canonicalUrl, FingerprintSet, fingerprint } from "../../runner/fingerprint.ts";
import { Frontier } from "../../runner/frontier.ts";
import { newRequest } from "../../runner/request.ts";

test("the frontier is FIFO across spills, with at most 2 × memoryLimit requests in memory", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "frontier-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = new Frontier({ memoryLimit: 3, tmpDir: dir });
  const out: string[] = [];
  let maxInMemory = 0;
  for (let i = 0; i < 50; i++) {
    f.push(newRequest(`http://a.test/${i}`, i % 4, { meta: { i } }));
    maxInMemory = Math.max(maxInMemory, f.inMemory);
    if (i % 7 === 0) out.push((f.shift() as { url: string }).url);
  }
  assert.ok(f.spilled > 0, "some requests went to disk");
  assert.ok(maxInMemory <= 6, `in memory at most 6, saw ${maxInMemory}`);
  for (let r = f.shift(); r; r = f.shift()) out.push(r.url);
  assert.deepEqual(
    out,
    Array.from({ length: 50 }, (_, i) => `http://a.test/${i}`),
  );
  assert.equal(f.size, 0);
  f.push(newRequest("http://a.test/x", 0));
  f.close();
  assert.equal(readdirSync(dir).length, 0, "close() removes the spill directory");
});

test("a spilled request keeps its fields", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "frontier-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = new Frontier({ memoryLimit: 1, tmpDir: dir });
  const reqs = [0, 1, 2, 3].map((i) =>
    newRequest(`http://a.test/${i}`, i, {
      method: "POST",
      body: `b${i}`,
      meta: { n: i },
      redirects: 1,
      redirectChain: ["http://a.test/r"],
    }),
  );
  for (const r of reqs) f.push(r);
  assert.ok(existsSync(dir));
  for (const r of reqs) assert.deepEqual(f.shift(), r);
  f.close();
});

test("canonicalUrl drops the fragment and sorts query arguments", () => {
  assert.equal(canonicalUrl("HTTP://Example.COM:80/a?b=2&a=1#frag"), "http://example.com/a?a=1&b=2");
  assert.equal(canonicalUrl("http://example.com/a?"), "http://example.com/a");
  assert.deepEqual(fingerprint("get", "http://x.test/?b=1&a=2"), fingerprint("GET", "http://x.test/?a=2&b=1#z"));
  assert.notDeepEqual(fingerprint("GET", "http://x.test/"), fingerprint("POST", "http://x.test/"));
  assert.notDeepEqual(fingerprint("POST", "http://x.test/", "a"), fingerprint("POST", "http://x.test/", "b"));
});

test("FingerprintSet matches a Set through growth", () => {
  const set = new FingerprintSet(4);
  const ref = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const fp = fingerprint("GET", `http://h${i % 7}.test/p/${i % 15_000}`);
    const key = fp.join(":");
    assert.equal(set.add(fp), !ref.has(key));
    ref.add(key);
  }
  assert.equal(set.size, ref.size);
  assert.equal(set.has(fingerprint("GET", "http://h0.test/p/0")), true);
  assert.equal(set.has(fingerprint("GET", "http://nowhere.test/")), false);
  assert.equal(set.add([0, 0]), true);
  assert.equal(set.add([0, 0]), false);
});
