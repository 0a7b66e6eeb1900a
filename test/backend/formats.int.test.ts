// Issue 16, feature 9: the reference backend loads every format feedcrawl
// writes — jsonlines, json, csv, xml — with compression chains and encodings,
// streaming, all-or-nothing, on the real PostgreSQL and on node:sqlite. Every
// feed is written by the runner's real exporter and announced by the
// operator's own payload code; bad data is 422 naming the item, with no row.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, afterEach, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { pino } from "pino";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { FeedOptions } from "../../crds/schema/feeds.ts";
import { configFromEnv } from "../../examples/ingest-backend/config.ts";
import { createIngestBackend, type IngestBackend } from "../../examples/ingest-backend/server.ts";
import { createBucket, pgDatabase, s3Client, type TestDatabase } from "../platform/fixtures.ts";
import { closedEvent, completedEvent, exportFeed, plainBytes, richItems, storedAs } from "./exported.ts";
import { deliver, listening, SECRET, sampleRss } from "./helpers.ts";

type Row = { feed_uri: string; line_no: number; item: unknown };

/** One store under test: how to start the backend on it and read its tables back. */
interface StoreUnderTest {
  start(): Promise<IngestBackend>;
  rows(): Promise<Row[]>;
  claims(): Promise<number>;
}

const CASES: {
  format: FeedOptions["format"];
  postprocessing: FeedOptions["postprocessing"];
  store: "pg" | "sqlite";
  /** Pretty-printed JSON: elements span lines. */
  indent?: number;
}[] = [
  { format: "jsonlines", postprocessing: [], store: "pg" },
  { format: "json", postprocessing: ["gzip", "zstd"], store: "pg", indent: 2 },
  { format: "csv", postprocessing: ["brotli"], store: "pg" },
  { format: "xml", postprocessing: ["gzip"], store: "pg" },
  { format: "jsonlines", postprocessing: ["gzip"], store: "sqlite" },
  { format: "json", postprocessing: ["zstd"], store: "sqlite" },
  { format: "csv", postprocessing: ["gzip"], store: "sqlite" },
  { format: "xml", postprocessing: ["brotli", "gzip"], store: "sqlite" },
];

function byFile(rows: Row[], specs: FeedClosed[]) {
  return specs.map((spec) => rows.filter((r) => r.feed_uri === spec.uri));
}

describe("reference backend: every feed format", () => {
  let dir: string;
  let backend: IngestBackend | undefined;
  let db: TestDatabase | undefined;
  let sql: pg.Client | undefined;
  let seq = 0;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "feedcrawl-formats-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    try {
      await backend?.close();
    } finally {
      backend = undefined;
      try {
        await sql?.end();
      } finally {
        sql = undefined;
        await db?.cleanup();
        db = undefined;
      }
    }
  });

  async function postgres(): Promise<StoreUnderTest> {
    db = await pgDatabase("formats");
    const client = new pg.Client({ connectionString: db.connectionString });
    sql = client;
    await client.connect();
    const url = db.connectionString;
    return {
      start: async () => {
        const config = configFromEnv({ WEBHOOK_SECRET: SECRET, DATABASE_URL: url, PORT: "0", FILE_FEEDS_ROOT: dir });
        backend = await createIngestBackend(config, { logger: pino({ level: "silent" }) });
        return backend;
      },
      rows: async () =>
        (await client.query("SELECT feed_uri, line_no, item FROM items ORDER BY feed_uri, line_no")).rows,
      claims: async () => (await client.query("SELECT count(*)::int AS n FROM ingested_webhooks")).rows[0].n,
    };
  }

  function sqlite(): StoreUnderTest {
    const file = join(dir, `ingest-${++seq}.sqlite`);
    const read = <T>(query: string) => {
      const reader = new DatabaseSync(file, { readOnly: true });
      try {
        return reader.prepare(query).all() as T[];
      } finally {
        reader.close();
      }
    };
    return {
      start: async () => {
        const config = configFromEnv({ WEBHOOK_SECRET: SECRET, SQLITE_PATH: file, PORT: "0", FILE_FEEDS_ROOT: dir });
        backend = await createIngestBackend(config, { logger: pino({ level: "silent" }) });
        return backend;
      },
      rows: async () =>
        read<{ feed_uri: string; line_no: number; item: string }>(
          "SELECT feed_uri, line_no, item FROM items ORDER BY feed_uri, line_no",
        ).map((r) => ({ ...r, item: JSON.parse(r.item) })),
      claims: async () => read<{ n: number }>("SELECT count(*) AS n FROM ingested_webhooks")[0]?.n ?? 0,
    };
  }

  const storeFor = (kind: "pg" | "sqlite") => (kind === "pg" ? postgres() : sqlite());

  for (const { format, postprocessing, store, indent } of CASES) {
    const chain = postprocessing?.join("+") || "none";
    it(`${store}: ${format} (${chain}) written by the exporter loads exactly its items, once`, async () => {
      const target = await storeFor(store);
      const { url } = await target.start();
      const items = richItems(120);
      const ext: Record<string, string> = { gzip: ".gz", brotli: ".br", zstd: ".zst" };
      const last = ext[postprocessing?.at(-1) ?? ""] ?? "";
      const name = `${store}-${format}-${chain}/part-%(batch_id)05d.${format}${last}`;
      const specs = await exportFeed(
        dir,
        name,
        { format, postprocessing, batchItemCount: 50, ...(indent ? { indent } : {}) },
        items,
      );
      assert.deepEqual(
        specs.map((s) => s.items),
        [50, 50, 20],
      );
      const { id, event } = completedEvent(specs);
      const answer = await deliver(url, id, event);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(answer.body, { webhookId: id, rows: 120, feeds: 3 });
      const files = byFile(await target.rows(), specs);
      assert.deepEqual(
        files.map((rows) => rows.map((r) => r.line_no)),
        specs.map((s) => Array.from({ length: s.items }, (_, i) => i + 1)),
        "line_no is the item's position in its file",
      );
      assert.deepEqual(
        files.flat().map((r) => r.item),
        items.map((item) => storedAs(format, item)),
      );
      // The same files again, as one feed.closed under its own webhook-id: already loaded (409), no new row.
      const again = closedEvent(specs[0] as FeedClosed);
      assert.equal((await deliver(url, again.id, again.event)).status, 409);
      assert.equal((await target.rows()).length, 120);
      assert.equal(await target.claims(), 1);
    });
  }

  it("pg: csv (gzip) and xml (zstd) written by the exporter to S3 load from S3 in one crawl.completed", async () => {
    const target = await postgres();
    const s3 = s3Client();
    const bucket = await createBucket("formats");
    try {
      const config = configFromEnv({
        WEBHOOK_SECRET: SECRET,
        DATABASE_URL: (db as TestDatabase).connectionString,
        PORT: "0",
      });
      backend = await createIngestBackend(config, { logger: pino({ level: "silent" }), s3 });
      const items = richItems(30);
      const csv = await exportFeed(
        dir,
        "s3/part-%(batch_id)d.csv.gz",
        { format: "csv", postprocessing: ["gzip"], batchItemCount: 20 },
        items,
        bucket.name,
      );
      const xml = await exportFeed(
        dir,
        "s3/part-%(batch_id)d.xml.zst",
        { format: "xml", postprocessing: ["zstd"] },
        items,
        bucket.name,
      );
      assert.ok([...csv, ...xml].every((spec) => spec.uri.startsWith(`s3://${bucket.name}/`)));
      const { id, event } = completedEvent([...csv, ...xml]);
      const answer = await deliver(backend.url, id, event);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(answer.body, { webhookId: id, rows: 60, feeds: 3 });
      const files = byFile(await target.rows(), [...csv, ...xml]);
      assert.deepEqual(
        files.map((rows) => rows.length),
        [20, 10, 30],
      );
      assert.deepEqual(
        files.flat().map((r) => r.item),
        [...items.map((i) => storedAs("csv", i)), ...items.map((i) => storedAs("xml", i))],
      );
    } finally {
      await backend?.close();
      backend = undefined;
      await bucket.cleanup();
      s3.destroy();
    }
  });

  it("pg: CSV cells with quoted commas, quotes and newlines come back whole", async () => {
    const target = await postgres();
    const { url } = await target.start();
    const items = [
      { id: "1", text: 'a, b, "c"', lines: "one\r\ntwo\nthree", empty: "" },
      { id: "2", text: ",", lines: '"\n"', empty: "" },
    ];
    const [spec] = await exportFeed(dir, "quoted/part.csv", { format: "csv" }, items);
    assert.ok(spec);
    const plain = plainBytes(spec).toString("utf8");
    assert.ok(plain.split("\r\n").length > items.length + 2, `newlines sit inside quoted cells:\n${plain}`);
    const { id, event } = closedEvent(spec);
    const answer = await deliver(url, id, event);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(
      (await target.rows()).map((r) => r.item),
      items,
    );
  });

  it("pg: a ;-delimited, '-quoted CSV written by the exporter loads exactly its items (the event carries the dialect)", async () => {
    const target = await postgres();
    const { url } = await target.start();
    const items = richItems(30).map((item, i) => ({ ...item, odd: `it's; "a, b"; ${i}`, quote: "'" }));
    const specs = await exportFeed(
      dir,
      "dialect/part-%(batch_id)d.csv.gz",
      { format: "csv", csvDelimiter: ";", csvQuoteChar: "'", postprocessing: ["gzip"], batchItemCount: 20 },
      items,
    );
    assert.deepEqual(
      specs.map((s) => [s.items, s.csvDelimiter, s.csvQuoteChar, s.csvHeader]),
      [
        [20, ";", "'", undefined],
        [10, ";", "'", undefined],
      ],
    );
    const first = specs[0] as FeedClosed;
    assert.match(
      plainBytes(first).toString("utf8"),
      /^id;title;price;tags;dims;note;odd;quote\r\n1;'Book 1, "quoted"\n/,
    );
    // The exporter's record reaches the event through the operator's payload code.
    const told = closedEvent(first);
    assert.equal(told.event.feed.csvDelimiter, ";");
    assert.equal(told.event.feed.csvQuoteChar, "'");
    assert.equal("csvHeader" in told.event.feed, false, "a file with a header line does not say so");
    // Read as `,` and `"` (an event without the dialect), the rows are not the header's width: 422, nothing loaded.
    const blind = closedEvent(first, { csvDelimiter: undefined, csvQuoteChar: undefined });
    const refused = await deliver(url, `${blind.id}-blind`, blind.event);
    assert.equal(refused.status, 422, JSON.stringify(refused.body));
    assert.match(String(refused.body.error), /record \d+ is not valid CSV/);
    assert.deepEqual(await target.rows(), []);
    const { id, event } = completedEvent(specs);
    const answer = await deliver(url, id, event);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body, { webhookId: id, rows: 30, feeds: 2 });
    assert.deepEqual(
      byFile(await target.rows(), specs).map((rows) => rows.map((r) => r.line_no)),
      specs.map((s) => Array.from({ length: s.items }, (_, i) => i + 1)),
    );
    assert.deepEqual(
      byFile(await target.rows(), specs)
        .flat()
        .map((r) => r.item),
      items.map((item) => storedAs("csv", item)),
    );
  });

  it("pg: a CSV without a header line is 422 naming csvIncludeHeader, and nothing of its crawl loads", async () => {
    const target = await postgres();
    const { url } = await target.start();
    const items = richItems(5);
    const [headerless] = await exportFeed(dir, "noheader/part.csv", { format: "csv", csvIncludeHeader: false }, items);
    const [good] = await exportFeed(dir, "noheader/good.jsonl", { format: "jsonlines" }, items);
    assert.ok(headerless && good);
    assert.equal(headerless.csvHeader, false);
    assert.equal(headerless.csvDelimiter, undefined, "the default delimiter is not carried");
    assert.equal(plainBytes(headerless).toString("utf8").split("\r\n")[0]?.startsWith("1,"), true, "no header line");
    const closed = closedEvent(headerless);
    assert.equal(closed.event.feed.csvHeader, false);
    const answer = await deliver(url, closed.id, closed.event);
    assert.equal(answer.status, 422, JSON.stringify(answer.body));
    assert.match(
      String(answer.body.error),
      /^Feed file:\/\/\S+\/part\.csv is a CSV without a header line .*set csvIncludeHeader: true on the feed$/,
    );
    // In a crawl.completed with a loadable feed: refused as a whole, before any byte is read.
    const { id, event } = completedEvent([good, headerless]);
    const all = await deliver(url, id, event);
    assert.equal(all.status, 422, JSON.stringify(all.body));
    assert.match(String(all.body.error), /without a header line/);
    assert.deepEqual(await target.rows(), []);
    assert.equal(await target.claims(), 0);
  });

  it("pg: XML nested lists and objects come back as arrays and objects", async () => {
    const target = await postgres();
    const { url } = await target.start();
    const items = [
      {
        id: 1,
        matrix: [["a", "b"], ["c"]],
        offers: [
          { shop: "x", price: 2 },
          { shop: "y & z", price: 3 },
        ],
        spec: { size: { w: 1, h: 2 }, colours: ["red", "blue"] },
      },
    ];
    const [spec] = await exportFeed(
      dir,
      "nested/part.xml.gz",
      { format: "xml", indent: 2, postprocessing: ["gzip"] },
      items,
    );
    assert.ok(spec);
    const { id, event } = closedEvent(spec);
    const answer = await deliver(url, id, event);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(
      (await target.rows()).map((r) => r.item),
      [
        {
          id: "1",
          matrix: [["a", "b"], ["c"]],
          offers: [
            { shop: "x", price: "2" },
            { shop: "y & z", price: "3" },
          ],
          spec: { size: { w: "1", h: "2" }, colours: ["red", "blue"] },
        },
      ],
    );
  });

  for (const store of ["pg", "sqlite"] as const) {
    it(`${store}: a truncated gzip is 422 with zero rows (502 when the webhook announced the whole file)`, async () => {
      const target = await storeFor(store);
      const { url } = await target.start();
      const [spec] = await exportFeed(
        dir,
        `trunc-${store}/part.json.gz`,
        { format: "json", postprocessing: ["gzip"] },
        richItems(2000),
      );
      assert.ok(spec);
      const file = fileURLToPath(spec.uri);
      const whole = readFileSync(file);
      const cut = whole.subarray(0, Math.floor(whole.length * 0.7));
      writeFileSync(file, cut);
      const { id, event } = closedEvent(spec);
      // The object is not what was announced: it may be fixed, so the operator retries.
      const changed = await deliver(url, id, event);
      assert.equal(changed.status, 502, JSON.stringify(changed.body));
      assert.match(String(changed.body.error), /bytes stored, the webhook announced/);
      // The runner announced the truncated file itself: no retry can help.
      const sha256 = createHash("sha256").update(cut).digest("hex");
      const truncated = { ...event, feed: { ...event.feed, bytes: cut.length, sha256 } };
      const answer = await deliver(url, id, truncated);
      assert.equal(answer.status, 422, JSON.stringify(answer.body));
      assert.match(String(answer.body.error), /could not be decompressed: unexpected end of file/);
      assert.deepEqual(await target.rows(), []);
      assert.equal(await target.claims(), 0);
    });
  }

  it("pg: bad data is 422 naming the line, item or record, and loads nothing", async () => {
    const target = await postgres();
    const { url } = await target.start();
    const cases: [string, string, string, RegExp][] = [
      ["bad.jsonl", "jsonlines", '{"a":1}\n{"a":2}\n{"a":\n', /line 3 is not JSON/],
      ["bad.json", "json", '[\n{"a":1},\n{"a":2},\n{"a":03}\n]\n', /item 3 \(line 4\) is not valid JSON/],
      ["list.json", "json", '[{"a":1}, [1]]', /item 2 \(line 1\) is not a JSON object/],
      ["bad.csv", "csv", "a,b\r\n1,2\r\n3,4\r\n5\r\n", /record 3 is not valid CSV: Invalid Record Length/],
      ["bad.xml", "xml", "<items><item><a>1</a></item><item><a>2</item></items>", /item 2: <a> is not closed/],
      ["nul.xml", "xml", "<items><item><a>\u0000</a></item></items>", /item 1 holds a NUL character/],
      ["huge.json", "json", '[{"a":1},\n{"a":1e999999}]', /cannot store .* \(line_no 2\): value overflows numeric/],
      ["cut.xml", "xml", "<items><item><a>1</a></item><item><a>2", /ends inside <a> \(item 2\): the file is truncated/],
    ];
    for (const [name, format, body, error] of cases) {
      writeFileSync(join(dir, name), body);
      const sha256 = createHash("sha256").update(body).digest("hex");
      const spec = {
        uri: `file://${join(dir, name)}`,
        format,
        items: 3,
        bytes: Buffer.byteLength(body),
        sha256,
        batchId: 1,
        shard: 0,
        closedAt: new Date().toISOString(),
      };
      const { id, event } = closedEvent(spec);
      const answer = await deliver(url, id, event);
      assert.equal(answer.status, 422, `${name}: ${JSON.stringify(answer.body)}`);
      assert.match(String(answer.body.error), error, name);
      assert.match(String(answer.body.error), new RegExp(`Feed file://\\S+/${name.replace(".", "\\.")}`, "i"));
    }
    assert.deepEqual(await target.rows(), []);
    assert.equal(await target.claims(), 0);
  });

  it("pg: decodes the feed's encoding: cp1252 CSV (event's encoding), utf-16 XML (BOM), utf-16be XML (no BOM), shift_jis XML (declaration)", async () => {
    const target = await postgres();
    const { url } = await target.start();
    const items = [{ title: "café crème", price: "€12" }];
    const [cp1252] = await exportFeed(dir, "enc/cp.csv", { format: "csv", encoding: "cp1252" }, items);
    const [utf16] = await exportFeed(dir, "enc/u16.xml", { format: "xml", encoding: "utf-16" }, items);
    const [u16be] = await exportFeed(dir, "enc/be.xml", { format: "xml", encoding: "utf-16be" }, items);
    const [sjis] = await exportFeed(dir, "enc/sj.xml", { format: "xml", encoding: "shift_jis" }, [
      { title: "本の題名" },
    ]);
    assert.ok(cp1252 && utf16 && u16be && sjis);
    assert.equal(plainBytes(cp1252).includes(0x80), true, "€ is the single byte 0x80 in cp1252");
    // The exporter's record names the encoding, and the operator's event carries it.
    assert.equal(cp1252.encoding, "cp1252");
    assert.equal(utf16.encoding, "utf-16");
    // An event without `encoding` (an older operator): a cp1252 file is not UTF-8: 422, naming where.
    const blind = closedEvent(cp1252, { encoding: undefined });
    const refused = await deliver(url, blind.id, blind.event);
    assert.equal(refused.status, 422, JSON.stringify(refused.body));
    assert.match(String(refused.body.error), /is not valid UTF-8 in decompressed bytes \d+–\d+/);
    const told = closedEvent(cp1252);
    assert.equal(told.event.feed.encoding, "cp1252");
    for (const { id, event } of [told, closedEvent(utf16), closedEvent(u16be), closedEvent(sjis)]) {
      const answer = await deliver(url, `${id}-enc`, event);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    }
    const loaded = Object.fromEntries((await target.rows()).map((r) => [r.feed_uri.split("/").pop(), r.item]));
    assert.deepEqual(loaded, {
      "cp.csv": items[0],
      "u16.xml": items[0],
      "be.xml": items[0],
      "sj.xml": { title: "本の題名" },
    });
    const unknown = closedEvent(cp1252, { encoding: "klingon" });
    const answer = await deliver(url, `${unknown.id}-x`, unknown.event);
    assert.equal(answer.status, 422);
    assert.match(String(answer.body.error), /encoding "klingon"/);
  });

  it("pg: a 200k-item JSON array loads with the backend's RSS growth bounded (streamed, not buffered)", async (t) => {
    db = await pgDatabase("formats-rss");
    const items = Array.from({ length: 200_000 }, (_, i) => ({
      id: i + 1,
      title: `Book ${i + 1} ${"lorem ipsum dolor sit amet ".repeat(10)}`,
      tags: ["a", "b", "c"],
    }));
    const [spec] = await exportFeed(dir, "big/part.json.gz", { format: "json", postprocessing: ["gzip"] }, items);
    assert.ok(spec);
    const plain = plainBytes(spec).length;
    const child = spawn(process.execPath, ["examples/ingest-backend/server.ts"], {
      env: {
        ...process.env,
        WEBHOOK_SECRET: SECRET,
        DATABASE_URL: db.connectionString,
        PORT: "0",
        FILE_FEEDS_ROOT: dir,
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      const url = await listening(child);
      const sampler = sampleRss(child.pid!, 25);
      let answer: Awaited<ReturnType<typeof deliver>>;
      try {
        const { id, event } = closedEvent(spec);
        answer = await deliver(url, id, event);
      } finally {
        sampler.stop();
      }
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.body.rows, 200_000);
      const growth = sampler.growth();
      t.diagnostic(
        `file ${Math.round(plain / 2 ** 20)} MiB uncompressed; RSS growth ${Math.round(growth / 2 ** 20)} MiB`,
      );
      assert.ok(plain > 50 * 2 ** 20, `the array is large (${plain} bytes)`);
      // Buffering the text alone would take twice the file (UTF-16 strings), the parsed array far more.
      assert.ok(
        growth < 96 * 2 ** 20,
        `RSS grew by ${Math.round(growth / 2 ** 20)} MiB for a ${Math.round(plain / 2 ** 20)} MiB array`,
      );
    } finally {
      child.kill("SIGKILL");
      await once(child, "exit").catch(() => {});
    }
    const check = new pg.Client({ connectionString: db.connectionString });
    await check.connect();
    try {
      const n = await check.query(
        "SELECT count(*)::int AS n, max(line_no) AS m, max((item->>'id')::int) AS i FROM items",
      );
      assert.deepEqual(n.rows[0], { n: 200_000, m: 200_000, i: 200_000 });
    } finally {
      await check.end();
    }
  });
});
