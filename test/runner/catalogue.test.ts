// The fixture catalogue itself: deterministic, scales to 100k products, and
// its static copy holds the same pages the server serves.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { request } from "undici";
import { createCatalogue } from "../fixtures/catalogue.ts";

test("the same seed gives the same products; another seed other products", () => {
  const a = createCatalogue({ products: 50, seed: 1 }).expectedItems();
  const b = createCatalogue({ products: 50, seed: 1 }).expectedItems();
  const c = createCatalogue({ products: 50, seed: 2 }).expectedItems();
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.equal(new Set(a.map((i) => i.fields.url)).size, 50);
});

test("100k products: every product is addressable without holding them all", () => {
  const cat = createCatalogue({ products: 100_000 });
  assert.equal(cat.pages, 5000);
  const items = cat.expectedItems("http://h");
  assert.equal(items.length, 100_000);
  assert.equal(new Set(items.map((i) => i.fields.url)).size, 100_000);
  assert.equal(cat.product(99_999).id, 99_999);
});

test("writeStaticSite writes the trap-free pages the server serves", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "catalogue-static-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cat = createCatalogue({ products: 25, perPage: 10 });
  await cat.writeStaticSite(dir);
  assert.deepEqual(readdirSync(dir).sort(), ["catalogue", "index.html", "robots.txt"]);
  const p = cat.product(7);
  const page = readFileSync(join(dir, "catalogue", `${p.slug}_${p.id}`, "index.html"), "utf8");
  const server = await cat.listen({ traps: false, altHost: null });
  try {
    const res = await request(`${server.url}${cat.productPath(p)}`);
    assert.equal(await res.body.text(), page);
    const index = readFileSync(join(dir, "index.html"), "utf8");
    assert.ok(!index.includes("trap"), "no trap links in the static site");
    assert.equal((await request(`${server.url}/catalogue/page-3.html`)).statusCode, 200);
    const missing = await request(`${server.url}/catalogue/page-4.html`);
    await missing.body.dump();
    assert.equal(missing.statusCode, 404);
  } finally {
    await server.close();
  }
});
