// The reference backend's format parsers and decoder on their own: the same
// items whatever the chunking (a multi-byte character, an escaped quote or a
// tag split between two reads), and errors that name the item.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import iconv from "iconv-lite";
import { decodeText } from "../../examples/ingest-backend/decode.ts";
import { FeedDataError } from "../../examples/ingest-backend/errors.ts";
import { parserFor } from "../../examples/ingest-backend/formats/index.ts";
import type { Feed } from "../../examples/ingest-backend/webhook.ts";

async function* pieces<T extends string | Buffer>(whole: T, size: number): AsyncGenerator<T> {
  for (let i = 0; i < whole.length; i += size) yield whole.slice(i, i + size) as T;
}

async function parse(format: string, text: string, size: number): Promise<[number, string][]> {
  const parser = parserFor(format);
  assert.ok(parser, format);
  const out: [number, string][] = [];
  for await (const item of parser(pieces(text, size))) out.push([item.lineNo, item.json]);
  return out;
}

const SAMPLES: Record<string, { text: string; items: unknown[] }> = {
  json: {
    text: '[\n{"a":"x]}\\\\\\"{","b":[1,{"c":[]}]},\n  {"é":"📚"}\n]\n',
    items: [{ a: 'x]}\\"{', b: [1, { c: [] }] }, { é: "📚" }],
  },
  jsonlines: { text: '{"a":1}\r\n\n{"b":"📚"}', items: [{ a: 1 }, { b: "📚" }] },
  csv: {
    text: 'a,b\r\n"x, ""y""","line\r\nbreak"\r\n📚,\r\n',
    items: [
      { a: 'x, "y"', b: "line\r\nbreak" },
      { a: "📚", b: "" },
    ],
  },
  xml: {
    text: '<?xml version="1.0" encoding="utf-8"?>\n<items>\n<item><t>a &amp; &#x1F4DA;</t><l><value>1</value></l><o><k>v</k></o><e/></item>\n</items>\n',
    items: [{ t: "a & 📚", l: ["1"], o: { k: "v" }, e: "" }],
  },
};

describe("backend format parsers", () => {
  for (const [format, { text, items }] of Object.entries(SAMPLES)) {
    it(`${format}: the same items in one chunk and in chunks of 1, 2 and 3 characters`, async () => {
      const whole = await parse(format, text, text.length);
      assert.deepEqual(
        whole.map(([, json]) => JSON.parse(json)),
        items,
      );
      for (const size of [1, 2, 3]) assert.deepEqual(await parse(format, text, size), whole, `chunks of ${size}`);
    });
  }

  it("json: positions count items (line_no), and the errors name them", async () => {
    assert.deepEqual(
      (await parse("json", '[{"a":1},{"a":2}]', 4)).map(([n]) => n),
      [1, 2],
    );
    const refused = async (text: string) =>
      parse("json", text, 5).then(
        () => "",
        (err: Error) => {
          assert.ok(err instanceof FeedDataError, err.message);
          return err.message;
        },
      );
    assert.match(await refused('[{"a":1},\n{"a":2},]'), /trailing comma before "]" at line 2/);
    assert.match(await refused('[{"a":1},\n"x"]'), /item 2 \(line 2\) is not a JSON object/);
    assert.match(await refused('[{"a":1}'), /without the array's closing "\]"/);
    assert.match(await refused(""), /is empty/);
    assert.match(await refused('[{"a":1}] {}'), /after the array's closing/);
  });

  it("decodes UTF-8 split inside a character, UTF-16 by its BOM, and names a bad UTF-8 byte", async () => {
    const feed = { uri: "file:///x", format: "jsonlines", items: 1, bytes: 1 } as Feed;
    const text = async (bytes: Buffer, f: Feed = feed) => {
      let out = "";
      for await (const part of decodeText(pieces(bytes, 1), f)) out += part;
      return out;
    };
    assert.equal(await text(Buffer.from('{"t":"é📚"}')), '{"t":"é📚"}');
    assert.equal(await text(iconv.encode('{"t":"é📚"}', "utf-16", { addBOM: true })), '{"t":"é📚"}');
    assert.equal(await text(iconv.encode("€", "cp1252"), { ...feed, encoding: "cp1252" }), "€");
    await assert.rejects(text(Buffer.from([0x7b, 0x80, 0x7d])), /is not valid UTF-8 in decompressed bytes 0–3/);
  });
});
