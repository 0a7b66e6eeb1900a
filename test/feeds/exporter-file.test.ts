// The exporter end to end on local files (file:// and plain paths) and stdout:
// batching rules, storeEmpty, resume numbering, create-only, filters, drops, manifest,
// failed batches kept, one manifest per run, temp files of killed runs cleaned.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { after, before, test } from "node:test";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { Feeds } from "../../crds/schema/feeds.ts";
import { createFeedExporter, type FeedExporterOptions } from "../../runner/feeds/exporter.ts";
import { assertIdRange, capturingLogger, decompress, makeItem, parseFeed, quietLogger, sha256 } from "./helpers.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "feedcrawl-feeds-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const TIME = new Date("2026-11-25T10:00:00Z");
const MANIFEST = "_manifest-2026-11-25T10-00-00.json";

async function exporter(feeds: Feeds, extra: Partial<FeedExporterOptions> = {}) {
  const events: FeedClosed[] = [];
  const exp = await createFeedExporter({
    feeds,
    params: { name: "books", job: "books-job", shard: 0, time: TIME },
    logger: quietLogger(),
    onFeedClosed: async (ev) => {
      events.push(ev);
    },
    spool: { dir: path.join(dir, "spool") },
    ...extra,
  });
  return { exp, events };
}

async function readStored(ev: FeedClosed) {
  assert.ok(ev.uri.startsWith("file://"), ev.uri);
  const body = await readFile(new URL(ev.uri));
  assert.equal(body.length, ev.bytes, `bytes of ${ev.uri}`);
  assert.equal(sha256(body), ev.sha256, `sha256 of ${ev.uri}`);
  return parseFeed(decompress(body, ev.compression).toString("utf8"), ev.format);
}

test("item-count batches: ids from 1, counts per file, union equals input, gzip JSON arrays valid, manifest", async () => {
  const base = path.join(dir, "count");
  const template = `file://${base}/%(name)s/%(time)s/part-%(batch_id)03d.json.gz`;
  const { exp, events } = await exporter({
    [template]: { format: "json", batchItemCount: 10, postprocessing: ["gzip"] },
  });
  for (let i = 0; i < 25; i++) await exp.write(makeItem(i));
  await exp.close("finished");
  assert.deepEqual(
    events.map((e) => [e.batchId, e.items]),
    [
      [1, 10],
      [2, 10],
      [3, 5],
    ],
  );
  const ids: number[] = [];
  for (const ev of events) {
    assert.equal(ev.format, "json");
    assert.equal(ev.compression, "gzip");
    assert.equal(ev.feed, template);
    assert.equal(ev.shard, 0);
    const records = await readStored(ev);
    assert.equal(records.length, ev.items);
    ids.push(...records.map((r) => r.id as number));
  }
  assertIdRange(ids, 25);
  const folder = path.join(base, "books", "2026-11-25T10-00-00");
  assert.deepEqual((await readdir(folder)).sort(), [
    MANIFEST,
    "part-001.json.gz",
    "part-002.json.gz",
    "part-003.json.gz",
  ]);
  assert.equal(exp.manifestUri, `file://${folder}/${MANIFEST}`);
  const manifest = JSON.parse(await readFile(path.join(folder, MANIFEST), "utf8"));
  assert.deepEqual(manifest.files, events);
  assert.equal(manifest.reason, "finished");
  assert.deepEqual(manifest.failed, []);
});

test("storeEmpty: one empty first file, never an empty second batch", async () => {
  const t1 = path.join(dir, "empty1", "%(batch_id)d.json");
  const a = await exporter({ [t1]: { format: "json", batchItemCount: 5, storeEmpty: true } });
  await a.exp.close("finished");
  assert.equal(a.events.length, 1);
  assert.equal(a.events[0]?.items, 0);
  assert.deepEqual(await readStored(a.events[0] as FeedClosed), []);

  const t2 = path.join(dir, "empty2", "%(batch_id)d.csv");
  const b = await exporter({ [t2]: { format: "csv", batchItemCount: 5, storeEmpty: true } });
  for (let i = 0; i < 5; i++) await b.exp.write(makeItem(i));
  await b.exp.close("finished");
  assert.deepEqual(
    b.events.map((e) => [e.batchId, e.items]),
    [[1, 5]],
  );

  const t3 = path.join(dir, "empty3", "%(batch_id)d.jsonl");
  const c = await exporter({ [t3]: { format: "jsonlines", batchItemCount: 5 } });
  await c.exp.close("finished");
  assert.equal(c.events.length, 0);
  assert.deepEqual(await readdir(path.join(dir, "empty3")).catch(() => []), [MANIFEST]);
});

test("resumeAfter continues numbering and an existing batch file is never overwritten (Scrapy #5153)", async () => {
  const folder = path.join(dir, "resume");
  const template = path.join(folder, "part-%(batch_id)02d.jsonl");
  const { exp: first } = await exporter({ [template]: { format: "jsonlines", batchItemCount: 2 } });
  for (let i = 0; i < 4; i++) await first.write(makeItem(i));
  await first.close("shutdown");
  // A batch stored but never reported before a crash: part-03 exists, the runner only knows of 2.
  await writeFile(path.join(folder, "part-03.jsonl"), "precious\n");
  const { exp, events } = await exporter(
    { [template]: { format: "jsonlines", batchItemCount: 2 } },
    { resumeAfter: { [template]: 2 } },
  );
  for (let i = 4; i < 8; i++) await exp.write(makeItem(i));
  await exp.close("finished");
  assert.deepEqual(
    events.map((e) => e.batchId),
    [4, 5],
    "batch 3 was taken, so the first resumed batch moved on to 4",
  );
  assert.equal(await readFile(path.join(folder, "part-03.jsonl"), "utf8"), "precious\n");
  assert.deepEqual(
    (await readStored(events[0] as FeedClosed)).map((r) => r.id),
    [4, 5],
  );
  const names = (await readdir(folder)).filter((n) => !n.startsWith("_")).sort();
  assert.deepEqual(names, ["part-01.jsonl", "part-02.jsonl", "part-03.jsonl", "part-04.jsonl", "part-05.jsonl"]);
});

test("create-only by default: an unbatched file that exists fails the feed at open, before any item; overwrite replaces", async () => {
  const file = path.join(dir, "single", "items.jsonl");
  const a = await exporter({ [file]: { format: "jsonlines" } });
  await a.exp.write(makeItem(1));
  await a.exp.close("finished");
  // Found when the feed opens, naming the file — not after a whole crawl whose items would then be lost.
  await assert.rejects(
    exporter({ [file]: { format: "jsonlines" } }),
    (err: Error) =>
      err.message.includes(`Feed ${JSON.stringify(file)}: ${file} already exists`) &&
      /overwrite: true/.test(err.message),
  );
  assert.deepEqual(
    parseFeed(await readFile(file, "utf8"), "jsonlines").map((r) => r.id),
    [1],
  );
  const c = await exporter({ [file]: { format: "jsonlines", overwrite: true } });
  await c.exp.write(makeItem(3));
  await c.exp.close("finished");
  assert.deepEqual(
    parseFeed(await readFile(file, "utf8"), "jsonlines").map((r) => r.id),
    [3],
  );
  assert.deepEqual(
    (await readdir(path.dirname(file))).filter((n) => n.endsWith(".part")),
    [],
    "no temp files left",
  );
});

test("a batch that cannot be stored at close is kept, never deleted, and the error and log say where", async () => {
  // The target appears while the crawl runs (another process): the link at close fails.
  const file = path.join(dir, "race", "items.jsonl");
  const { logger, lines } = capturingLogger();
  const b = await exporter({ [file]: { format: "jsonlines" } }, { logger });
  await b.exp.write(makeItem(1));
  await b.exp.write(makeItem(2));
  await writeFile(file, "precious\n");
  const closing = b.exp.close("finished");
  await assert.rejects(closing, /items\.jsonl already exists.*its bytes are kept in /);
  assert.equal(b.events.length, 0, "no closed event for a batch that was not stored");
  assert.equal(await readFile(file, "utf8"), "precious\n", "the other file is untouched");
  const failed = b.exp.failedFeeds[0];
  assert.equal(failed?.items, 2);
  const kept = failed?.keptAt as string;
  assert.equal(path.dirname(kept), path.dirname(file), "kept beside its target");
  assert.match(path.basename(kept), /^unstored-[0-9a-f]{8}-items\.jsonl$/);
  assert.deepEqual(
    parseFeed(await readFile(kept, "utf8"), "jsonlines").map((r) => r.id),
    [1, 2],
    "every collected item is in the kept file",
  );
  assert.ok(failed?.error.includes(kept), failed?.error);
  const logged = lines.find((l) => l.msg === "Feed batch failed: not stored");
  assert.equal(logged?.keptAt, kept);
  const manifest = JSON.parse(await readFile(path.join(dir, "race", MANIFEST), "utf8"));
  assert.equal(manifest.failed[0].keptAt, kept);
  // A later run into the folder leaves the kept file alone (it is no temp file).
  await rm(file);
  const again = await exporter({ [file]: { format: "jsonlines" } });
  await again.exp.close("finished");
  assert.deepEqual(
    parseFeed(await readFile(kept, "utf8"), "jsonlines").map((r) => r.id),
    [1, 2],
  );
});

test("each run writes its own manifest: a rerun into the same folder never replaces one", async () => {
  const folder = path.join(dir, "reruns");
  const template = path.join(folder, "%(time)s-%(batch_id)d.jsonl");
  const feeds: Feeds = { [template]: { format: "jsonlines", batchItemCount: 10 } };
  const first = await exporter(feeds);
  await first.exp.write(makeItem(1));
  await first.exp.close("finished");
  const firstText = await readFile(path.join(folder, MANIFEST), "utf8");
  // The same start second (a quick rerun, or the tests' fixed time): the next free name.
  const second = await exporter(feeds, { resumeAfter: { [template]: 1 } });
  await second.exp.write(makeItem(2));
  await second.exp.close("finished");
  // A later run: named by its own time.
  const third = await exporter(feeds, {
    params: { name: "books", job: "books-job", shard: 0, time: new Date("2026-11-25T11:00:00Z") },
  });
  await third.exp.write(makeItem(3));
  await third.exp.close("finished");

  assert.equal(await readFile(path.join(folder, MANIFEST), "utf8"), firstText, "the first run's manifest is unchanged");
  assert.equal(second.exp.manifestUri, `file://${folder}/_manifest-2026-11-25T10-00-00-2.json`);
  assert.equal(third.exp.manifestUri, `file://${folder}/_manifest-2026-11-25T11-00-00.json`);
  // Each manifest lists its own run's files (in run order here, not name order: "-2" sorts first).
  const runs = [MANIFEST, "_manifest-2026-11-25T10-00-00-2.json", "_manifest-2026-11-25T11-00-00.json"];
  assert.deepEqual((await readdir(folder)).filter((n) => n.startsWith("_manifest")).sort(), [...runs].sort());
  const listed = [];
  for (const name of runs) {
    const m = JSON.parse(await readFile(path.join(folder, name), "utf8"));
    listed.push(m.files.map((f: FeedClosed) => path.basename(new URL(f.uri).pathname)));
  }
  assert.deepEqual(listed, [
    ["2026-11-25T10-00-00-1.jsonl"],
    ["2026-11-25T10-00-00-2.jsonl"],
    ["2026-11-25T11-00-00-1.jsonl"],
  ]);
});

test("temp files of killed runs in the feed folder are removed at open and counted; nothing else is touched", async () => {
  const folder = path.join(dir, "stale");
  await mkdir(folder, { recursive: true });
  const hourAgo = new Date(Date.now() - 3600_000);
  const old = async (name: string) => {
    await writeFile(path.join(folder, name), "x");
    await utimes(path.join(folder, name), hourAgo, hourAgo);
  };
  // A killed run's batch temp file and write probe: removed.
  await old(".part-7.jsonl.0a1b2c3d.part");
  await old(".feedcrawl-write-check-deadbeef");
  // Not feedcrawl's names, or a live run's file (touched within the last minutes): kept.
  await old("notes.part");
  await old(".part-7.jsonl.part");
  await old("unstored-0a1b2c3d-part-1.jsonl");
  await writeFile(path.join(folder, ".part-9.jsonl.99aabbcc.part"), "a live run's batch");
  const { logger, lines } = capturingLogger();
  const { exp } = await exporter(
    { [path.join(folder, "part-%(batch_id)d.jsonl")]: { format: "jsonlines", batchItemCount: 5 } },
    { logger },
  );
  const cleaned = lines.find((l) => l.msg === "Feed folder held temp files of killed runs: removed");
  assert.equal(cleaned?.removed, 2);
  assert.equal(cleaned?.folder, `${folder}/`);
  assert.deepEqual((await readdir(folder)).sort(), [
    ".part-7.jsonl.part",
    ".part-9.jsonl.99aabbcc.part",
    "notes.part",
    "unstored-0a1b2c3d-part-1.jsonl",
  ]);
  await exp.close("finished");
});

test("batchMaxBytes and batchMaxSeconds close files too", async () => {
  const t = path.join(dir, "bytes", "%(batch_id)d.jsonl");
  const { exp, events } = await exporter({ [t]: { format: "jsonlines", batchMaxBytes: 1000 } });
  let oneItem = 0;
  for (let i = 0; i < 50; i++) {
    oneItem = Math.max(oneItem, JSON.stringify(makeItem(i).fields).length + 1);
    await exp.write(makeItem(i));
  }
  await exp.close("finished");
  assert.ok(events.length > 2, `${events.length} files`);
  for (const ev of events.slice(0, -1)) {
    assert.ok(ev.bytes >= 1000 && ev.bytes < 1000 + oneItem, `file ${ev.batchId} is ${ev.bytes} bytes`);
  }
  assert.equal(
    events.reduce((n, e) => n + e.items, 0),
    50,
  );

  const ts = path.join(dir, "seconds", "%(batch_time)s.jsonl");
  const s = await exporter({ [ts]: { format: "jsonlines", batchMaxSeconds: 1 } });
  await s.exp.write(makeItem(1));
  // The timer closes the batch with no further write.
  for (let i = 0; i < 100 && s.events.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(s.events.length, 1);
  assert.equal(s.events[0]?.items, 1);
  assert.doesNotMatch(s.events[0]?.uri ?? "", /:\d\d/, "no colon in batch_time");
  await s.exp.write(makeItem(2));
  await s.exp.close("finished");
  assert.deepEqual(
    s.events.map((e) => e.batchId),
    [1, 2],
  );
});

test("routing by item type and field conditions; unserialisable items dropped and counted", async () => {
  const products = path.join(dir, "route", "products-%(batch_id)d.csv");
  const cheap = path.join(dir, "route", "cheap.jsonl");
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on("data", (c) => chunks.push(c));
  const { exp, events } = await exporter(
    {
      [products]: { format: "csv", itemTypes: ["product"], batchItemCount: 100, fields: ["id", "title", "tags"] },
      [cheap]: {
        format: "jsonlines",
        itemFilter: [
          { field: "price", exists: true },
          { field: "id", matches: "^1" },
        ],
      },
      "stdout:": { format: "jsonlines", itemTypes: ["review"] },
    },
    { stdout: out },
  );
  const loop: unknown[] = [];
  loop.push(loop);
  await exp.write(makeItem(1));
  await exp.write(makeItem(2));
  await exp.write(makeItem(10));
  await exp.write({ type: "review", fields: { id: 5, text: "good" } });
  await exp.write({ type: "product", fields: { id: 99, title: "cyclic", tags: loop } });
  await exp.close("finished");
  const byFeed = new Map(events.map((e) => [e.feed, e]));
  const csv = await readStored(byFeed.get(products) as FeedClosed);
  assert.deepEqual(
    csv.map((r) => r.id),
    ["1", "2", "10"],
  );
  assert.equal(csv[0]?.tags, "t1,x", 'a list of strings is one cell joined with "," as in Scrapy');
  const jl = await readStored(byFeed.get(cheap) as FeedClosed);
  assert.deepEqual(
    jl.map((r) => r.id),
    [1, 10],
  );
  assert.equal(Buffer.concat(chunks).toString(), '{"id":5,"text":"good"}\n');
  assert.equal(byFeed.get("stdout:")?.uri, "stdout:");
  assert.equal(exp.itemsDropped[products], 1);
  assert.equal(exp.itemsDropped[cheap], 0, "the cyclic item had no price: the filter did not take it");
  const manifest = JSON.parse(await readFile(path.join(dir, "route", MANIFEST), "utf8"));
  assert.equal(manifest.itemsDropped[products], 1);
});

test("bad feeds and unwritable folders fail before any item, naming the feed", async () => {
  await assert.rejects(
    exporter({ "out/x.jsonl": { format: "jsonlines", batchItemCount: 3 } }),
    /spec\.feeds\["out\/x\.jsonl"\]\.batchItemCount/,
  );
  const blocker = path.join(dir, "blocker");
  await writeFile(blocker, "a file, not a folder");
  await assert.rejects(
    exporter({ [path.join(blocker, "sub", "x.jsonl")]: { format: "jsonlines" } }),
    (err: Error) =>
      err.message.includes(JSON.stringify(path.join(blocker, "sub", "x.jsonl"))) &&
      /cannot create files/.test(err.message),
  );
});

test("gzip, brotli and zstd: the stored bytes decompress to the feed, names and counts agree", async () => {
  const feeds: Feeds = {};
  for (const [step, ext] of [
    ["gzip", "gz"],
    ["brotli", "br"],
    ["zstd", "zst"],
  ] as const) {
    feeds[path.join(dir, "compress", `%(batch_id)d.jsonl.${ext}`)] = {
      format: "jsonlines",
      batchItemCount: 40,
      postprocessing: [step],
      compressionLevel: 1,
    };
  }
  feeds[path.join(dir, "compress", "%(batch_id)d.xml.gz")] = {
    format: "xml",
    batchItemCount: 40,
    postprocessing: ["gzip"],
  };
  const { exp, events } = await exporter(feeds);
  for (let i = 0; i < 50; i++) await exp.write(makeItem(i));
  await exp.close("finished");
  assert.equal(events.length, 8);
  for (const ev of events.filter((e) => e.format === "jsonlines")) {
    assert.ok(["gzip", "brotli", "zstd"].includes(ev.compression ?? ""), ev.compression);
    const records = await readStored(ev);
    assert.equal(records[0]?.id, ev.batchId === 1 ? 0 : 40);
  }
  for (const ev of events.filter((e) => e.format === "xml")) {
    const body = await readFile(new URL(ev.uri));
    const xml = decompress(body, ev.compression).toString();
    assert.equal(xml.match(/<item>/g)?.length, ev.items);
    assert.ok(xml.trimEnd().endsWith("</items>"));
  }
});

test("the closed event names a CSV file's dialect only where it differs from `,`, `\"` and a header line", async () => {
  const at = (name: string) => path.join(dir, "dialect", name);
  const { exp, events } = await exporter({
    [at("defaults.csv")]: { format: "csv", csvDelimiter: ",", csvQuoteChar: '"', csvIncludeHeader: true },
    [at("tabs.csv")]: { format: "csv", csvDelimiter: "\t", csvQuoteChar: "'", csvIncludeHeader: false },
    [at("lines.jsonl")]: { format: "jsonlines" },
  });
  for (let i = 0; i < 3; i++) await exp.write(makeItem(i));
  await exp.close("finished");
  const dialect = (name: string) => {
    const ev = events.find((e) => e.uri.endsWith(`/${name}`)) as FeedClosed;
    return [ev.csvDelimiter, ev.csvQuoteChar, ev.csvHeader];
  };
  assert.deepEqual(dialect("defaults.csv"), [undefined, undefined, undefined]);
  assert.deepEqual(dialect("tabs.csv"), ["\t", "'", false]);
  assert.deepEqual(dialect("lines.jsonl"), [undefined, undefined, undefined]);
  const tabs = (await readFile(at("tabs.csv"), "utf8")).split("\r\n");
  assert.equal(tabs.length, 4, "three rows, no header line");
  assert.ok(tabs[0]?.startsWith("0\t"), tabs[0]);
});
