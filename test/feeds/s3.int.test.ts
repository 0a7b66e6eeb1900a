// Feed exports against the real S3 server (versitygw) and toxiproxy. Every object is
// read back independently of the writer: list, get, decompress, parse.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { HeadObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { Feeds, StorageSpec } from "../../crds/schema/feeds.ts";
import { createFeedExporter, type FeedExporter, type FeedExporterOptions } from "../../runner/feeds/exporter.ts";
import { createS3Client } from "../../runner/feeds/storages/s3.ts";
import { platform } from "../platform/env.ts";
import { assertIdRange, capturingLogger, decompress, makeItem, parseFeed, quietLogger, sha256 } from "./helpers.ts";
import {
  createBucket,
  directClient,
  dropBucket,
  getObject,
  listKeys,
  listMultipartUploads,
  S3Proxy,
} from "./s3-helpers.ts";

const MANIFEST = "_manifest-2026-11-25T10-00-00.json";
let s3: S3Client;
let bucket: string;
let spoolDir: string;
const proxies: S3Proxy[] = [];
const exporters: FeedExporter[] = [];

before(async () => {
  s3 = directClient();
  bucket = await createBucket(s3, "feeds-int");
  spoolDir = await mkdtemp(path.join(os.tmpdir(), "feedcrawl-spool-"));
});

after(async () => {
  // A failed test may leave an exporter retrying: stop it before the bucket goes.
  for (const e of exporters) await e.abort();
  for (const p of proxies) await p.stop();
  await dropBucket(s3, bucket);
  await rm(spoolDir, { recursive: true, force: true });
});

function storage(endpoint = platform().s3.endpoint, extra: NonNullable<StorageSpec["s3"]> = {}): StorageSpec {
  return {
    s3: { endpoint, region: platform().s3.region, forcePathStyle: true, partSizeBytes: 5 * 1024 * 1024, ...extra },
  };
}

const credentials = () => ({ accessKeyId: platform().s3.accessKeyId, secretAccessKey: platform().s3.secretAccessKey });

async function exporter(feeds: Feeds, extra: Partial<FeedExporterOptions> = {}) {
  const events: FeedClosed[] = [];
  const exp = await createFeedExporter({
    feeds,
    storage: storage(),
    params: { name: "books", job: "books-job", shard: 0, time: new Date("2026-11-25T10:00:00Z") },
    logger: quietLogger(),
    onFeedClosed: async (ev) => {
      events.push(ev);
    },
    s3: { credentials: credentials(), backoff: { baseMs: 100, capMs: 500 } },
    spool: { dir: spoolDir },
    ...extra,
  });
  exporters.push(exp);
  return { exp, events };
}

function keyOf(uri: string) {
  const u = uri.slice(`s3://${bucket}/`.length);
  assert.ok(uri.startsWith(`s3://${bucket}/`), uri);
  return u;
}

/** Reads a reported object back and checks its bytes, sha256 and headers; returns its records. */
async function readBack(ev: FeedClosed) {
  const obj = await getObject(s3, bucket, keyOf(ev.uri));
  assert.equal(obj.body.length, ev.bytes, `bytes of ${ev.uri}`);
  assert.equal(sha256(obj.body), ev.sha256, `sha256 of ${ev.uri}`);
  if (ev.compression === "gzip") assert.equal(obj.contentEncoding, "gzip");
  const records = parseFeed(decompress(obj.body, ev.compression).toString("utf8"), ev.format);
  assert.equal(records.length, ev.items, `items in ${ev.uri}`);
  return records;
}

/** A payload that does not compress, so that a batch spans several 5 MiB parts. */
function bulkyItem(i: number) {
  return { type: "page", fields: { id: i, body: randomBytes(150).toString("base64") } };
}

test("batched gzip feeds in three formats: every object read back, counts, union, sha256, manifest", async () => {
  const prefix = "formats/%(name)s/%(time)s";
  const feeds: Feeds = {
    [`s3://${bucket}/${prefix}/jl/part-%(batch_id)05d.jsonl.gz`]: {
      format: "jsonlines",
      batchItemCount: 1000,
      postprocessing: ["gzip"],
    },
    [`s3://${bucket}/${prefix}/json/part-%(batch_id)05d.json.gz`]: {
      format: "json",
      batchItemCount: 1000,
      postprocessing: ["gzip"],
    },
    [`s3://${bucket}/${prefix}/csv/part-%(batch_id)05d.csv.gz`]: {
      format: "csv",
      batchItemCount: 1000,
      postprocessing: ["gzip"],
      fields: ["id", "title", "price", "tags"],
    },
  };
  const { exp, events } = await exporter(feeds);
  for (let i = 0; i < 2500; i++) await exp.write(makeItem(i));
  await exp.close("finished");

  assert.equal(events.length, 9);
  const listed = await listKeys(s3, bucket, "formats/");
  const folder = "formats/books/2026-11-25T10-00-00";
  // The manifest sits next to the first feed's files.
  assert.deepEqual(listed, [
    ...["csv", "jl", "json"].flatMap((d) => [
      ...(d === "jl" ? [`${folder}/jl/${MANIFEST}`] : []),
      ...[1, 2, 3].map((n) => `${folder}/${d}/part-0000${n}.${d === "jl" ? "jsonl" : d}.gz`),
    ]),
  ]);
  for (const template of Object.keys(feeds)) {
    const mine = events.filter((e) => e.feed === template);
    assert.deepEqual(
      mine.map((e) => [e.batchId, e.items]),
      [
        [1, 1000],
        [2, 1000],
        [3, 500],
      ],
    );
    const ids: number[] = [];
    for (const ev of mine) ids.push(...(await readBack(ev)).map((r) => Number(r.id)));
    assertIdRange(ids, 2500, `union of ${template}`);
  }
  const manifest = JSON.parse((await getObject(s3, bucket, `${folder}/jl/${MANIFEST}`)).body.toString());
  assert.equal(exp.manifestUri, `s3://${bucket}/${folder}/jl/${MANIFEST}`);
  assert.deepEqual(manifest.files, events);
  assert.deepEqual(await listMultipartUploads(s3, bucket), []);
});

test("a multi-part batch streams while it fills and is stored once, intact", async () => {
  const template = `s3://${bucket}/big/part-%(batch_id)d.jsonl`;
  const { exp, events } = await exporter({ [template]: { format: "jsonlines", batchMaxBytes: 5.5 * 1024 * 1024 } });
  for (let i = 0; i < 30_000; i++) await exp.write(bulkyItem(i));
  await exp.close("finished");
  assert.equal(events.length, 2);
  assert.ok((events[0]?.bytes ?? 0) >= 5.5 * 1024 * 1024, "the first batch spans two parts (5 MiB each)");
  const ids: number[] = [];
  for (const ev of events) ids.push(...(await readBack(ev)).map((r) => Number(r.id)));
  assertIdRange(ids, 30_000);
  assert.deepEqual(await listMultipartUploads(s3, bucket), []);
});

test("create-only: an existing object is never overwritten", async () => {
  // Unbatched, the object exists: the feed fails when it opens, before any item, naming the object.
  const key = "single/items.jsonl";
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: "precious\n" }));
  await assert.rejects(
    exporter({ [`s3://${bucket}/${key}`]: { format: "jsonlines" } }),
    new RegExp(`s3://${bucket}/single/items\\.jsonl already exists`),
  );
  // Unbatched, the object appears during the run: the batch fails at close, nothing is
  // reported, the object is unchanged, and the items stay in the spool file the error names.
  const late = "single/late.jsonl";
  const a = await exporter({ [`s3://${bucket}/${late}`]: { format: "jsonlines" } });
  await a.exp.write(makeItem(1));
  await a.exp.write(makeItem(2));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: late, Body: "precious\n" }));
  await assert.rejects(a.exp.close("finished"), /already exists.*its bytes are kept in /);
  assert.deepEqual(a.events, []);
  assert.equal((await getObject(s3, bucket, late)).body.toString(), "precious\n");
  const kept = a.exp.failedFeeds[0]?.keptAt as string;
  assert.equal(path.dirname(kept), spoolDir, "kept in the spool");
  assert.deepEqual(
    parseFeed(await readFile(kept, "utf8"), "jsonlines").map((r) => r.id),
    [1, 2],
  );

  // Batched: an object that appears while the batch is open (another writer, a restarted
  // runner) makes the completion fail with 412; the batch is stored under the next id.
  const template = `s3://${bucket}/race/part-%(batch_id)d.jsonl`;
  const b = await exporter({ [template]: { format: "jsonlines", batchItemCount: 100 } });
  await b.exp.write(makeItem(1));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "race/part-1.jsonl", Body: "precious\n" }));
  await b.exp.write(makeItem(2));
  await b.exp.close("finished");
  assert.deepEqual(
    b.events.map((e) => [e.batchId, e.uri, e.items]),
    [[2, `s3://${bucket}/race/part-2.jsonl`, 2]],
  );
  assert.equal((await getObject(s3, bucket, "race/part-1.jsonl")).body.toString(), "precious\n");
  assert.deepEqual(
    (await readBack(b.events[0] as FeedClosed)).map((r) => r.id),
    [1, 2],
  );

  // overwrite: true replaces.
  const c = await exporter({ [`s3://${bucket}/${key}`]: { format: "jsonlines", overwrite: true } });
  await c.exp.write(makeItem(3));
  await c.exp.close("finished");
  assert.deepEqual(
    (await readBack(c.events[0] as FeedClosed)).map((r) => r.id),
    [3],
  );
  // Two runs into one folder in the same second: two manifests, the first one not replaced.
  assert.deepEqual(await listKeys(s3, bucket, "single/_manifest"), [
    "single/_manifest-2026-11-25T10-00-00-2.json",
    `single/${MANIFEST}`,
  ]);
  const first = JSON.parse((await getObject(s3, bucket, `single/${MANIFEST}`)).body.toString());
  assert.deepEqual(
    first.failed.map((f: { uri: string; keptAt: string }) => [f.uri, f.keptAt]),
    [[`s3://${bucket}/${late}`, kept]],
  );
  assert.deepEqual(await listMultipartUploads(s3, bucket), []);
});

test("an upload cut mid-way is aborted and retried from the spool: nothing lost, nothing doubled, no orphaned parts", async () => {
  const proxy = await new S3Proxy().start();
  proxies.push(proxy);
  const { logger, lines } = capturingLogger();
  const template = `s3://${bucket}/cut/part-%(batch_id)d.jsonl`;
  const { exp, events } = await exporter(
    { [template]: { format: "jsonlines", batchItemCount: 25_000 } },
    { storage: storage(proxy.endpoint), logger },
  );
  // Every connection dies after 1 MiB towards S3: batch 1's 5 MiB parts cannot get through.
  await proxy.cutAfter(1024 * 1024);
  for (let i = 0; i < 30_000; i++) await exp.write(bulkyItem(i));
  const closing = exp.close("finished");
  // While the cut lasts nothing may be reported.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(events.length, 0, "no closed event while the upload cannot complete");
  assert.deepEqual(await listKeys(s3, bucket, "cut/"), [], "no partial object is visible");
  await proxy.heal();
  await closing;

  const failures = lines.filter((l) => l.msg?.startsWith("Feed upload failed")).length;
  assert.ok(failures >= 1, "the cut made uploads fail and retry");
  assert.deepEqual(
    events.map((e) => [e.batchId, e.items]),
    [
      [1, 25_000],
      [2, 5_000],
    ],
  );
  const ids: number[] = [];
  for (const ev of events) ids.push(...(await readBack(ev)).map((r) => Number(r.id)));
  assertIdRange(ids, 30_000);
  assert.deepEqual(await listKeys(s3, bucket, "cut/"), [`cut/${MANIFEST}`, "cut/part-1.jsonl", "cut/part-2.jsonl"]);
  assert.deepEqual(await listMultipartUploads(s3, bucket), [], "failed multipart uploads were aborted");
});

test("a completed upload whose answer is lost is recognised as this batch's own object, not a conflict", async () => {
  // The request reaches S3 and succeeds; the client then sees a reset connection (as when a
  // proxy or NAT drops the socket between the answer and the client). The middleware sits
  // outside the SDK's own retries, so the exporter's retry meets 412 on its next attempt.
  const client = directClient();
  client.config.maxAttempts = async () => 3;
  let dropped = 0;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const result = await next(args);
      if (dropped === 0 && ["PutObjectCommand", "CompleteMultipartUploadCommand"].includes(context.commandName ?? "")) {
        dropped++;
        throw Object.assign(new Error("socket hang up"), { name: "Error", code: "ECONNRESET" });
      }
      return result;
    },
    { step: "initialize", name: "loseFirstAnswer" },
  );
  const template = `s3://${bucket}/lost-answer/part-%(batch_id)d.jsonl`;
  const { exp, events } = await exporter(
    { [template]: { format: "jsonlines", batchItemCount: 50 } },
    {
      s3: { client, backoff: { baseMs: 50, capMs: 200 } },
    },
  );
  for (let i = 0; i < 120; i++) await exp.write(makeItem(i));
  await exp.close("finished");
  assert.equal(dropped, 1, "one answer was lost");
  assert.deepEqual(
    events.map((e) => [e.batchId, e.items]),
    [
      [1, 50],
      [2, 50],
      [3, 20],
    ],
  );
  assert.deepEqual(await listKeys(s3, bucket, "lost-answer/"), [
    `lost-answer/${MANIFEST}`,
    "lost-answer/part-1.jsonl",
    "lost-answer/part-2.jsonl",
    "lost-answer/part-3.jsonl",
  ]);
  const ids: number[] = [];
  for (const ev of events) ids.push(...(await readBack(ev)).map((r) => Number(r.id)));
  assertIdRange(ids, 120);
});

test("an S3 outage of a while (server unreachable) loses no items", async () => {
  const proxy = await new S3Proxy().start();
  proxies.push(proxy);
  const template = `s3://${bucket}/outage/part-%(batch_id)d.jsonl`;
  const { exp, events } = await exporter(
    { [template]: { format: "jsonlines", batchItemCount: 500 } },
    { storage: storage(proxy.endpoint) },
  );
  for (let i = 0; i < 700; i++) await exp.write(makeItem(i));
  await proxy.setEnabled(false);
  for (let i = 700; i < 1600; i++) await exp.write(makeItem(i)); // the crawl goes on: batches wait in the spool
  const closing = exp.close("finished");
  await new Promise((r) => setTimeout(r, 1000));
  await proxy.setEnabled(true);
  await closing;
  assert.deepEqual(
    events.map((e) => [e.batchId, e.items]),
    [
      [1, 500],
      [2, 500],
      [3, 500],
      [4, 100],
    ],
  );
  const ids: number[] = [];
  for (const ev of events) ids.push(...(await readBack(ev)).map((r) => Number(r.id)));
  assertIdRange(ids, 1600);
  assert.deepEqual(await listMultipartUploads(s3, bucket), []);
});

test("the spool is bounded: past its budget the crawl waits for S3, then goes on", async () => {
  const proxy = await new S3Proxy().start();
  proxies.push(proxy);
  await mkdir(spoolDir, { recursive: true }); // an exporter that closed empty removed it
  const dir = await mkdtemp(path.join(spoolDir, "bounded-"));
  const template = `s3://${bucket}/bounded/part-%(batch_id)d.jsonl`;
  const { exp, events } = await exporter(
    { [template]: { format: "jsonlines", batchItemCount: 500 } },
    { storage: storage(proxy.endpoint), spool: { dir, maxBytes: 150_000 } },
  );
  await proxy.setEnabled(false);
  let written = 0;
  const writing = (async () => {
    for (; written < 3000; written++) await exp.write(makeItem(written));
  })();
  // Wait until the writer is stuck (no progress for a second).
  for (let last = -1; last !== written; ) {
    last = written;
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.ok(written < 3000, `writes wait when the spool is full (wrote ${written})`);
  const onDisk = (await readdir(dir)).length;
  let bytes = 0;
  for (const f of await readdir(dir)) bytes += (await stat(path.join(dir, f))).size;
  assert.ok(bytes <= 150_000 + 60_000, `spool holds ${bytes} bytes in ${onDisk} files`);
  assert.equal(events.length, 0);
  await proxy.setEnabled(true);
  await writing;
  await exp.close("finished");
  const ids: number[] = [];
  for (const ev of events) ids.push(...(await readBack(ev)).map((r) => Number(r.id)));
  assertIdRange(ids, 3000);
});

test("an upload that fails past the retry budget is reported failed, never closed; no object, no parts", async () => {
  const proxy = await new S3Proxy().start();
  proxies.push(proxy);
  const failed: string[] = [];
  const template = `s3://${bucket}/lost/part-%(batch_id)d.jsonl`;
  const { exp, events } = await exporter(
    { [template]: { format: "jsonlines", batchItemCount: 100_000 } },
    {
      storage: storage(proxy.endpoint, { retrySeconds: 1 }),
      onFeedFailed: async (ev) => {
        failed.push(ev.uri);
      },
    },
  );
  await proxy.cutAfter(1024 * 1024);
  for (let i = 0; i < 25_000; i++) await exp.write(bulkyItem(i));
  await assert.rejects(exp.close("finished"), /part-1\.jsonl.*25000 items/);
  assert.equal(events.length, 0);
  assert.deepEqual(failed, [`s3://${bucket}/lost/part-1.jsonl`]);
  await proxy.heal();
  await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "lost/part-1.jsonl" })), /NotFound|404/);
  assert.deepEqual(
    (await listMultipartUploads(s3, bucket)).filter((u) => u.Key?.startsWith("lost/")),
    [],
    "the failed attempts' multipart uploads were aborted",
  );
  const manifest = JSON.parse((await getObject(s3, bucket, `lost/${MANIFEST}`)).body.toString());
  assert.equal(manifest.failed.length, 1);
  assert.equal(manifest.failed[0].items, 25_000);
  // Nothing collected is deleted: the spool file the manifest names holds every item.
  const kept = parseFeed(await readFile(manifest.failed[0].keptAt, "utf8"), "jsonlines");
  assertIdRange(
    kept.map((r) => Number(r.id)),
    25_000,
    "items in the kept spool file",
  );
});

test("the bucket is checked before crawling: missing bucket, bad credentials", async () => {
  await assert.rejects(
    exporter({ "s3://no-such-bucket-feedcrawl/x/%(batch_id)d.jsonl": { format: "jsonlines", batchItemCount: 5 } }),
    /Feed "s3:\/\/no-such-bucket-feedcrawl\/x\/%\(batch_id\)d\.jsonl": bucket "no-such-bucket-feedcrawl" .* does not exist/,
  );
  await assert.rejects(
    exporter(
      { [`s3://${bucket}/x.jsonl`]: { format: "jsonlines" } },
      { s3: { credentials: { accessKeyId: "nobody", secretAccessKey: "wrong-secret" } } },
    ),
    new RegExp(`bucket "${bucket}" .* is not accessible with these credentials`),
  );
});

/** A client that records the input of every object-creating command it sends. */
function recordingClient(): { client: S3Client; sent: { command: string; input: Record<string, unknown> }[] } {
  const sent: { command: string; input: Record<string, unknown> }[] = [];
  const client = createS3Client(storage().s3, credentials());
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String(context.commandName);
      if (/^(CreateMultipartUpload|PutObject)Command$/.test(command))
        sent.push({ command, input: args.input as Record<string, unknown> });
      return next(args);
    },
    { step: "initialize", name: "recordObjectParams" },
  );
  return { client, sent };
}

test("S3 acl, server-side encryption and storage class: sent on every object, stored, or refused before the crawl", async () => {
  const outcomes: string[] = [];
  const cases: [string, NonNullable<StorageSpec["s3"]>, Record<string, string>][] = [
    ["acl-class", { acl: "private", storageClass: "STANDARD" }, { ACL: "private", StorageClass: "STANDARD" }],
    ["sse-s3", { serverSideEncryption: "AES256" }, { ServerSideEncryption: "AES256" }],
    [
      "sse-kms",
      { serverSideEncryption: "aws:kms", sseKmsKeyId: "feedcrawl-test-key" },
      { ServerSideEncryption: "aws:kms", SSEKMSKeyId: "feedcrawl-test-key" },
    ],
  ];
  for (const [name, extra, params] of cases) {
    const { client, sent } = recordingClient();
    const template = `s3://${bucket}/object-params/${name}/part-%(batch_id)d.jsonl`;
    let started: Awaited<ReturnType<typeof exporter>>;
    try {
      started = await exporter(
        { [template]: { format: "jsonlines", batchItemCount: 2 } },
        { storage: storage(undefined, extra), s3: { client, backoff: { baseMs: 50, capMs: 100 } } },
      );
    } catch (err) {
      // Refused by this server: clearly, naming the settings, before any item.
      const text = (err as Error).message;
      assert.match(text, /is not writable under "object-params\/.*" with .* \(spec\.storage\.s3\): /, text);
      for (const v of Object.values(params)) assert.ok(text.includes(v), `${text} names ${v}`);
      outcomes.push(`${name}: refused (${text.split("): ").pop()})`);
      continue;
    }
    const { exp, events } = started;
    for (let i = 0; i < 3; i++) await exp.write(makeItem(i));
    await exp.close("finished");
    assert.equal(events.length, 2, name);
    for (const ev of events) assert.equal((await readBack(ev)).length, ev.items);
    // The write check, both batches and the manifest carried the parameters.
    const creates = sent.filter((s) => !String(s.input.Key).includes(".feedcrawl-write-check-"));
    assert.equal(creates.length, 3, `${name}: two batches and the manifest: ${JSON.stringify(creates)}`);
    for (const s of sent) for (const [k, v] of Object.entries(params)) assert.equal(s.input[k], v, `${name} ${k}`);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: keyOf(events[0]?.uri ?? "") }));
    if (extra.storageClass)
      assert.ok(head.StorageClass === undefined || head.StorageClass === extra.storageClass, head.StorageClass);
    outcomes.push(`${name}: stored (HEAD StorageClass ${head.StorageClass}, SSE ${head.ServerSideEncryption})`);
  }
  console.log(`versitygw: ${outcomes.join("; ")}`);
  assert.ok(outcomes[0]?.startsWith("acl-class: stored"), outcomes[0]);
});
