import assert from "node:assert/strict";
import { test } from "node:test";
import { parse } from "csv-parse/sync";
import { charset, type EncoderOptions, UnserializableItemError } from "../../runner/feeds/formats/encoder.ts";
import { canonicalFormat, createEncoder } from "../../runner/feeds/formats/index.ts";

const utf8: EncoderOptions = { encoding: charset("utf-8") };

function encode(format: Parameters<typeof createEncoder>[0], items: Record<string, unknown>[], opts = utf8): string {
  const enc = createEncoder(format, opts);
  return items.map((i) => enc.item(i)).join("") + enc.end();
}

const items = [
  { title: 'A "quoted", title', price: 12.5, tags: ["x", "y"], meta: { a: 1 } },
  { title: "Line\nbreak <b>&</b>", price: null, extra: true },
];

test("jsonlines: one object per line; jsonl and jl are aliases", () => {
  const text = encode("jsonlines", items);
  const lines = text.trimEnd().split("\n");
  assert.equal(lines.length, 2);
  assert.deepEqual(JSON.parse(lines[0] ?? ""), items[0]);
  assert.equal(canonicalFormat("jl"), "jsonlines");
  assert.equal(canonicalFormat("jsonl"), "jsonlines");
});

test("json: always a valid array, also empty and with indent", () => {
  assert.deepEqual(JSON.parse(encode("json", items)), items);
  assert.deepEqual(JSON.parse(encode("json", [])), []);
  const indented = encode("json", items, { ...utf8, indent: 2 });
  assert.deepEqual(JSON.parse(indented), items);
  assert.match(indented, /\n {2}"title"/);
});

test("fields select and order; exportEmptyFields writes missing ones as null", () => {
  const text = encode("jsonlines", items, { ...utf8, fields: ["price", "title", "missing"] });
  assert.equal(text.split("\n")[0], '{"price":12.5,"title":"A \\"quoted\\", title"}');
  const withEmpty = encode("jsonlines", items, { ...utf8, fields: ["price", "missing"], exportEmptyFields: true });
  assert.equal(withEmpty.split("\n")[0], '{"price":12.5,"missing":null}');
});

test("csv: header from the first item, quoting, nested values as JSON, parses back", () => {
  const text = encode("csv", items);
  const rows = parse(text, { columns: true }) as Record<string, string>[];
  assert.deepEqual(Object.keys(rows[0] ?? {}), ["title", "price", "tags", "meta"]);
  assert.equal(rows[0]?.title, 'A "quoted", title');
  assert.equal(rows[0]?.tags, "x,y", 'a list of strings is joined with "," (Scrapy\'s join_multivalued)');
  assert.equal(rows[0]?.meta, '{"a":1}');
  assert.equal(rows[1]?.title, "Line\nbreak <b>&</b>");
  assert.equal(rows[1]?.price, "");
  assert.ok(text.includes("\r\n"), "rows end with CRLF like Python's csv module");
  assert.equal(encode("csv", [], { ...utf8, fields: ["a", "b"] }), "a,b\r\n");
  assert.equal(encode("csv", []), "");
  const semi = encode("csv", [{ a: 1, b: 2 }], { ...utf8, csvDelimiter: ";", csvIncludeHeader: false });
  assert.equal(semi, "1;2\r\n");
});

test("xml: Scrapy's item/value layout, escaped text", () => {
  const text = encode("xml", [items[0] ?? {}, { title: "Line\nbreak <b>&</b>\u0001" }]);
  assert.ok(text.startsWith('<?xml version="1.0" encoding="utf-8"?>\n<items>'));
  assert.ok(text.includes("<tags><value>x</value><value>y</value></tags>"));
  assert.ok(text.includes("<meta><a>1</a></meta>"));
  assert.ok(text.includes("<title>Line\nbreak &lt;b&gt;&amp;&lt;/b&gt;\uFFFD</title>"));
  assert.ok(text.trimEnd().endsWith("</items>"));
  assert.equal(encode("xml", []), '<?xml version="1.0" encoding="utf-8"?>\n<items>\n</items>\n');
  const custom = encode("xml", [{ a: 1 }], {
    ...utf8,
    xmlRootElement: "products",
    xmlItemElement: "product",
    indent: 2,
  });
  assert.equal(
    custom,
    '<?xml version="1.0" encoding="utf-8"?>\n<products>\n  <product>\n    <a>1</a>\n  </product>\n</products>\n',
  );
});

test("items that cannot be serialised throw UnserializableItemError", () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  let deep: Record<string, unknown> = {};
  const root = deep;
  for (let i = 0; i < 100; i++) {
    deep.next = {};
    deep = deep.next as Record<string, unknown>;
  }
  for (const format of ["jsonlines", "json", "csv", "xml"] as const) {
    const enc = createEncoder(format, utf8);
    assert.throws(() => enc.item({ c: cyclic }), UnserializableItemError, format);
    assert.throws(() => enc.item({ d: root }), UnserializableItemError, format);
    assert.throws(() => enc.item({ f: () => 1 }), UnserializableItemError, format);
    assert.throws(() => enc.item({ m: new Map() }), UnserializableItemError, format);
  }
  assert.throws(() => createEncoder("xml", utf8).item({ "bad name": 1 }), UnserializableItemError);
  // A shared (not cyclic) object is fine.
  const shared = { x: 1 };
  assert.equal(encode("jsonlines", [{ a: shared, b: shared }]), '{"a":{"x":1},"b":{"x":1}}\n');
  // Dates become ISO text, bigints decimal text.
  assert.equal(encode("jsonlines", [{ d: new Date(0), n: 10n }]), '{"d":"1970-01-01T00:00:00.000Z","n":"10"}\n');
});

test("encodings: JSON and XML escape what latin1/ascii lack; CSV drops the item", () => {
  const latin1: EncoderOptions = { encoding: charset("iso-8859-1") };
  assert.equal(encode("jsonlines", [{ t: "café €" }], latin1), '{"t":"café \\u20ac"}\n');
  const ascii: EncoderOptions = { encoding: charset("ascii") };
  assert.equal(encode("jsonlines", [{ t: "café" }], ascii), '{"t":"caf\\u00e9"}\n');
  assert.ok(encode("xml", [{ t: "€😀" }], latin1).includes("<t>&#x20AC;&#x1F600;</t>"));
  assert.throws(() => createEncoder("csv", latin1).item({ t: "€" }), UnserializableItemError);
  // A dropped first item leaves no trace: the next item still gets the header.
  const csv = createEncoder("csv", latin1);
  assert.throws(() => csv.item({ t: "€", u: 1 }), UnserializableItemError);
  assert.equal(csv.item({ t: "é" }), "t\r\né\r\n");
  assert.equal(charset(undefined).name, "utf-8");
});
