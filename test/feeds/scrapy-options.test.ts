// Scrapy's item_export_kwargs and encodings (issue 16, feature 8) end to end: the
// exporter writes real files, and each is decoded independently of the writer
// (TextDecoder — ICU, not iconv-lite — and csv-parse).
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { parse as parseCsv } from "csv-parse/sync";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import { FEED_ENCODINGS, type Feeds } from "../../crds/schema/feeds.ts";
import { createFeedExporter } from "../../runner/feeds/exporter.ts";
import { charset } from "../../runner/feeds/formats/encoder.ts";
import { quietLogger } from "./helpers.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "feedcrawl-scrapy-opts-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes `items` through one feed per template and returns each stored file's bytes, by template. */
async function run(feeds: Feeds, items: Record<string, unknown>[]) {
  const events: FeedClosed[] = [];
  const exp = await createFeedExporter({
    feeds,
    params: { name: "books", job: "books-job", shard: 0, time: new Date("2026-11-25T10:00:00Z") },
    logger: quietLogger(),
    onFeedClosed: async (ev) => {
      events.push(ev);
    },
    spool: { dir: path.join(dir, "spool") },
  });
  for (const fields of items) await exp.write({ type: "book", fields });
  await exp.close("finished");
  const out = new Map<string, Buffer>();
  for (const ev of events) out.set(ev.feed ?? ev.uri, await readFile(new URL(ev.uri)));
  return { out, stats: exp };
}

test("encodings beyond utf-8/latin1/ascii: shift_jis, cp1252, utf-16 decode back; what they lack is escaped", async () => {
  const items = [{ title: "本の題名", price: "€12", note: "naïve 😀" }];
  const at = (name: string) => `file://${dir}/enc/${name}`;
  const { out } = await run(
    {
      [at("sjis.jsonl")]: { format: "jsonlines", encoding: "shift_jis" },
      [at("cp1252.jsonl")]: { format: "jsonlines", encoding: "cp1252" },
      [at("utf16.xml")]: { format: "xml", encoding: "utf-16" },
      [at("win.csv")]: { format: "csv", encoding: "windows-1252", fields: ["price", "note"], storeEmpty: true },
    },
    items,
  );
  const sjis = new TextDecoder("shift_jis").decode(out.get(at("sjis.jsonl")));
  assert.match(sjis, /"title":"本の題名"/, "kanji are written in Shift_JIS, not escaped");
  assert.deepEqual(JSON.parse(sjis), items[0], "what Shift_JIS lacks (€, ï, 😀) is escaped, so the item reads back");
  const cp1252 = new TextDecoder("windows-1252").decode(out.get(at("cp1252.jsonl")));
  assert.match(cp1252, /"price":"€12"/, "€ is 0x80 in cp1252");
  assert.match(cp1252, /\\u672c/, "kanji escaped");
  assert.deepEqual(JSON.parse(cp1252), items[0]);
  const utf16 = out.get(at("utf16.xml")) ?? Buffer.alloc(0);
  assert.deepEqual([...utf16.subarray(0, 2)], [0xff, 0xfe], "Python's utf-16 starts with a BOM");
  const xml = new TextDecoder("utf-16le").decode(utf16);
  assert.match(xml, /encoding="utf-16"/);
  assert.match(xml, /<note>naïve 😀<\/note>/);
  // CSV cannot escape: the item with characters cp1252 lacks is dropped, the file has its header only.
  const csv = new TextDecoder("windows-1252").decode(out.get(at("win.csv")));
  assert.equal(csv, "price,note\r\n");
});

test("item_export_kwargs: sort_keys, ensure_ascii (JSON), quotechar and join_multivalued (CSV)", async () => {
  const items = [{ b: 1, a: { z: 2, y: "é" }, tags: ["x", "y"], t: "it's" }];
  const at = (name: string) => `file://${dir}/kw/${name}`;
  const { out } = await run(
    {
      [at("sorted.json")]: { format: "json", sortKeys: true, ensureAscii: true },
      [at("plain.jsonl")]: { format: "jsonlines" },
      [at("quote.csv")]: { format: "csv", csvQuoteChar: "'", csvJoinMultivalued: "|", fields: ["t", "tags", "a"] },
      [at("default.csv")]: { format: "csv", fields: ["tags"] },
    },
    items,
  );
  const json = out.get(at("sorted.json"))?.toString("ascii") ?? "";
  assert.equal(json, '[\n{"a":{"y":"\\u00e9","z":2},"b":1,"t":"it\'s","tags":["x","y"]}\n]\n');
  assert.equal(
    out.get(at("plain.jsonl"))?.toString("utf8"),
    '{"b":1,"a":{"z":2,"y":"é"},"tags":["x","y"],"t":"it\'s"}\n',
  );
  const quoted = out.get(at("quote.csv"))?.toString("utf8") ?? "";
  assert.ok(quoted.includes("'it''s'"), quoted);
  const rows = parseCsv(quoted, { columns: true, quote: "'", escape: "'" }) as Record<string, string>[];
  assert.deepEqual(rows, [{ t: "it's", tags: "x|y", a: '{"z":2,"y":"é"}' }]);
  assert.equal(out.get(at("default.csv"))?.toString("utf8"), 'tags\r\n"x,y"\r\n', "Scrapy joins with ','");
});

test("every encoding the schema offers resolves and round-trips what it holds", () => {
  for (const name of FEED_ENCODINGS) {
    const cs = charset(name);
    const bytes = cs.newEncoder()("Price 12");
    assert.ok(bytes.length >= 8, name);
    assert.equal(cs.fits(0x41), true, name);
  }
  assert.equal(charset("cp1252").fits(0x20ac), true, "€ is in cp1252");
  assert.equal(charset("cp1252").fits(0x672c), false);
  assert.throws(() => charset("klingon"), /unknown encoding "klingon"/);
});
