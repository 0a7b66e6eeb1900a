// The reference bulk-ingest backend against the real PostgreSQL and the real
// S3 server (versitygw): signed webhooks load exact rows with COPY; bad or
// stale signatures, malformed bodies and replays are refused; a load that
// fails mid-way leaves nothing behind and asks the operator to retry.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import type { S3Client } from "@aws-sdk/client-s3";
import pg from "pg";
import { pino } from "pino";
import { configFromEnv } from "../../examples/ingest-backend/config.ts";
import { createIngestBackend, type IngestBackend } from "../../examples/ingest-backend/server.ts";
import { platform } from "../platform/env.ts";
import { createBucket, type Disposable, pgDatabase, s3Client, type TestDatabase } from "../platform/fixtures.ts";
import {
  deliver,
  feedClosed,
  feedObject,
  feedPayload,
  JOB,
  makeItems,
  putFeed,
  SECRET,
  type TestItem,
} from "./helpers.ts";

/** A pino logger whose lines the test can read (e.g. "Copied a chunk of feed"). */
function captureLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split("\n")) if (line) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { logger: pino({ level: "debug" }, sink), lines };
}

describe("ingest backend on PostgreSQL + S3", () => {
  let s3: S3Client;
  let bucket: Disposable;
  let db: TestDatabase;
  let backend: IngestBackend | undefined;
  let sql: pg.Client;
  let logs: Record<string, unknown>[];
  let seq = 0;

  before(async () => {
    s3 = s3Client();
    bucket = await createBucket("backend");
  });
  after(async () => {
    await bucket?.cleanup();
    s3?.destroy();
  });

  async function start(chunkRows = 10_000): Promise<IngestBackend> {
    const { logger, lines } = captureLogger();
    logs = lines;
    const config = configFromEnv({
      WEBHOOK_SECRET: SECRET,
      DATABASE_URL: db.connectionString,
      PORT: "0",
      COPY_CHUNK_ROWS: String(chunkRows),
    });
    backend = await createIngestBackend(config, { logger, s3 });
    return backend;
  }

  beforeEach(async () => {
    db = await pgDatabase("backend");
    sql = new pg.Client({ connectionString: db.connectionString });
    await sql.connect();
  });
  afterEach(async () => {
    // Each step runs even when an earlier one fails: no connection or database is left behind.
    try {
      await backend?.close();
    } finally {
      backend = undefined;
      try {
        await sql?.end();
      } finally {
        await db?.cleanup();
      }
    }
  });

  /** Stores a feed of `items` in S3 and returns its feed.closed event and webhook-id. */
  async function storedFeed(items: unknown[], compression: "gzip" | "brotli" | "zstd" | "none" = "gzip") {
    seq += 1;
    const key = `books/run-${seq}/part-${String(seq).padStart(5, "0")}.jsonl${compression === "gzip" ? ".gz" : ""}`;
    const object = feedObject(items, compression);
    await putFeed(s3, bucket.name, key, object.body);
    const feed = feedPayload(`s3://${bucket.name}/${key}`, object, items.length, compression, seq);
    const id = `${JOB.uid}:feed-${seq}`;
    return { id, feed, event: feedClosed(id, feed), object, key };
  }

  async function rows(): Promise<{ webhook_id: string; feed_uri: string; line_no: number; item: TestItem }[]> {
    return (await sql.query("SELECT webhook_id, feed_uri, line_no, item FROM items ORDER BY feed_uri, line_no")).rows;
  }

  async function claims(): Promise<{ webhook_id: string; rows: string; event_type: string }[]> {
    return (await sql.query("SELECT webhook_id, rows, event_type FROM ingested_webhooks ORDER BY webhook_id")).rows;
  }

  it("loads a signed feed.closed into exact rows, one per item, in one answer (200)", async () => {
    const { url } = await start();
    const items = makeItems(250);
    const { id, feed, event } = await storedFeed(items);
    const response = await deliver(url, id, event);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual(response.body, { webhookId: id, rows: 250, feeds: 1 });
    const loaded = await rows();
    assert.equal(loaded.length, 250);
    assert.deepEqual(
      loaded.map((r) => r.item),
      items,
      "every item, byte for byte (tabs, backslashes, newlines, unicode)",
    );
    assert.deepEqual(
      loaded.map((r) => r.line_no),
      items.map((_, i) => i + 1),
    );
    assert.ok(loaded.every((r) => r.webhook_id === id && r.feed_uri === feed.uri));
    assert.deepEqual(await claims(), [{ webhook_id: id, rows: "250", event_type: "feed.closed" }]);
  });

  it("copies in bounded chunks inside one transaction (chunk of 7 rows, 50 items)", async () => {
    const { url } = await start(7);
    const items = makeItems(50);
    const { id, event } = await storedFeed(items);
    const response = await deliver(url, id, event);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal((await rows()).length, 50);
    const chunks = logs.filter((l) => l.msg === "Copied a chunk of feed").map((l) => l.rows);
    assert.deepEqual(chunks, [7, 14, 21, 28, 35, 42, 49, 50]);
  });

  it("answers 401 for a bad signature and loads nothing", async () => {
    const { url } = await start();
    const { id, event } = await storedFeed(makeItems(10));
    const wrongSecret = await deliver(url, id, event, {
      secret: `whsec_${Buffer.from("x".repeat(32)).toString("base64")}`,
    });
    assert.equal(wrongSecret.status, 401);
    assert.match(String(wrongSecret.body.error), /signature/i);
    const garbage = await deliver(url, id, event, { signature: "v1,AAAA" });
    assert.equal(garbage.status, 401);
    assert.deepEqual(await rows(), []);
    assert.deepEqual(await claims(), []);
  });

  it("answers 401 for a stale timestamp (a replayed capture) and loads nothing", async () => {
    const { url } = await start();
    const { id, event } = await storedFeed(makeItems(10));
    const stale = await deliver(url, id, event, { timestamp: new Date(Date.now() - 10 * 60_000) });
    assert.equal(stale.status, 401);
    assert.match(String(stale.body.error), /too old/);
    const future = await deliver(url, id, event, { timestamp: new Date(Date.now() + 10 * 60_000) });
    assert.equal(future.status, 401);
    assert.deepEqual(await rows(), []);
  });

  it("answers 400 for a malformed body (not JSON, unknown type, missing fields)", async () => {
    const { url } = await start();
    const notJson = await deliver(url, "id-1", "{not json");
    assert.equal(notJson.status, 400);
    assert.match(String(notJson.body.error), /not JSON/);
    const unknownType = await deliver(url, "id-2", { type: "feed.opened", id: "id-2", crawlJob: JOB });
    assert.equal(unknownType.status, 400);
    assert.match(String(unknownType.body.error), /feed\.opened/);
    const missing = await deliver(url, "id-3", { type: "feed.closed", id: "id-3", crawlJob: JOB, feed: {} });
    assert.equal(missing.status, 400);
    assert.match(String(missing.body.error), /\/feed/);
    assert.deepEqual(await claims(), []);
  });

  it("answers 409 for a webhook-id it already loaded, with no new rows", async () => {
    const { url } = await start();
    const { id, event } = await storedFeed(makeItems(40));
    assert.equal((await deliver(url, id, event)).status, 200);
    const replay = await deliver(url, id, event);
    assert.equal(replay.status, 409);
    assert.equal((await rows()).length, 40);
    // The same file under another webhook-id is a duplicate too (unique feed_uri + line_no).
    const other = await deliver(url, `${id}-other`, { ...event, id: `${id}-other` });
    assert.equal(other.status, 409);
    assert.equal((await rows()).length, 40);
    assert.equal((await claims()).length, 1);
  });

  it("loads two concurrent deliveries of one webhook-id once (200 + 409)", async () => {
    const { url } = await start(5);
    const { id, event } = await storedFeed(makeItems(300));
    const answers = await Promise.all([deliver(url, id, event), deliver(url, id, event)]);
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 409]);
    assert.equal((await rows()).length, 300);
  });

  it("rolls back a load that fails mid-way (corrupt gzip after many lines): zero rows, 5xx, then a retry loads", async () => {
    const { url } = await start(50);
    const items = makeItems(3000);
    const good = feedObject(items, "gzip");
    // Keep the first 60% of the compressed bytes, then garbage: gunzip yields lines, then fails.
    const corrupt = Buffer.concat([
      good.body.subarray(0, Math.floor(good.body.length * 0.6)),
      Buffer.alloc(4096, 0x5a),
    ]);
    const { id, event, key } = await storedFeed(items);
    await putFeed(s3, bucket.name, key, corrupt);
    const announced = {
      ...event,
      feed: { ...event.feed, bytes: corrupt.length, sha256: feedObject([], "none").sha256 },
    };
    const failed = await deliver(url, id, announced);
    assert.equal(failed.status, 502, JSON.stringify(failed.body));
    assert.match(String(failed.body.error), new RegExp(`Feed s3://${bucket.name}/${key}`));
    const copied = logs.filter((l) => l.msg === "Copied a chunk of feed").length;
    assert.ok(copied >= 10, `rows were copied before the failure (${copied} chunks)`);
    assert.deepEqual(await rows(), [], "no half-loaded file is visible");
    assert.deepEqual(await claims(), [], "the webhook-id is not claimed, so the operator's retry can load it");

    // The operator retries under the same webhook-id once the object is right.
    await putFeed(s3, bucket.name, key, good.body);
    const retried = await deliver(url, id, event);
    assert.equal(retried.status, 200, JSON.stringify(retried.body));
    assert.equal((await rows()).length, 3000);
  });

  it("refuses (502, zero rows) an object whose sha256 differs from the webhook's", async () => {
    const { url } = await start();
    const { id, event, key } = await storedFeed(makeItems(20));
    const swapped = feedObject(makeItems(20, 1000), "gzip");
    await putFeed(s3, bucket.name, key, swapped.body);
    const response = await deliver(url, id, { ...event, feed: { ...event.feed, bytes: swapped.bytes } });
    assert.equal(response.status, 502);
    assert.match(String(response.body.error), /sha256/);
    assert.deepEqual(await rows(), []);
  });

  it("answers 502 for a missing object, so the operator retries", async () => {
    const { url } = await start();
    const { id, event } = await storedFeed(makeItems(3));
    const missing = {
      ...event,
      feed: { ...event.feed, uri: `s3://${bucket.name}/nope.jsonl.gz`, key: "nope.jsonl.gz" },
    };
    const response = await deliver(url, id, missing);
    assert.equal(response.status, 502);
    assert.deepEqual(await claims(), []);
  });

  it("loads every feed of a crawl.completed event (gzip, brotli, zstd, plain) in one transaction", async () => {
    const { url } = await start(11);
    const parts = [
      await storedFeed(makeItems(30, 0), "gzip"),
      await storedFeed(makeItems(25, 100), "brotli"),
      await storedFeed(makeItems(20, 200), "zstd"),
      await storedFeed(makeItems(15, 300), "none"),
    ];
    const id = `${JOB.uid}:completed`;
    const event = { type: "crawl.completed", id, crawlJob: JOB, feeds: parts.map((p) => p.feed) };
    const response = await deliver(url, id, event);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual(response.body, { webhookId: id, rows: 90, feeds: 4 });
    const ids = (await rows()).map((r) => r.item.id).sort((a, b) => a - b);
    assert.deepEqual(ids, [
      ...makeItems(30, 0).map((i) => i.id),
      ...makeItems(25, 100).map((i) => i.id),
      ...makeItems(20, 200).map((i) => i.id),
      ...makeItems(15, 300).map((i) => i.id),
    ]);
    assert.deepEqual(await claims(), [{ webhook_id: id, rows: "90", event_type: "crawl.completed" }]);
  });

  it("answers 422 for a feed it cannot load (unknown format, file:// without FILE_FEEDS_ROOT)", async () => {
    const { url } = await start();
    const { id, event } = await storedFeed(makeItems(3));
    const parquet = await deliver(url, id, { ...event, feed: { ...event.feed, format: "parquet" } });
    assert.equal(parquet.status, 422);
    assert.match(
      String(parquet.body.error),
      /format "parquet": this backend loads jsonlines, jsonl, jl, json, csv, xml/,
    );
    const local = await deliver(url, id, { ...event, feed: { ...event.feed, uri: "file:///etc/passwd" } });
    assert.equal(local.status, 422);
    assert.match(String(local.body.error), /FILE_FEEDS_ROOT/);
    assert.deepEqual(await claims(), []);
  });

  it("loses and duplicates nothing when the backend process is killed mid-COPY (SIGKILL), then redelivered", async () => {
    const items = makeItems(30_000);
    const { id, event } = await storedFeed(items);
    const s3env = platform().s3;
    const env = {
      ...process.env,
      WEBHOOK_SECRET: SECRET,
      DATABASE_URL: db.connectionString,
      PORT: "0",
      LOG_LEVEL: "debug",
      S3_ENDPOINT: s3env.endpoint,
      AWS_ACCESS_KEY_ID: s3env.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3env.secretAccessKey,
    };
    /** Starts `node examples/ingest-backend/server.ts` as a user would; resolves with its URL and its log lines. */
    const spawnBackend = async (chunkRows: number) => {
      const child = spawn(process.execPath, ["examples/ingest-backend/server.ts"], {
        env: { ...env, COPY_CHUNK_ROWS: String(chunkRows) },
        stdio: ["ignore", "pipe", "inherit"],
      });
      const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
      const events: Record<string, unknown>[] = [];
      const url = await new Promise<string>((resolve, reject) => {
        child.once("exit", (code) => reject(new Error(`backend exited with ${code} before listening`)));
        lines.on("line", (line) => {
          const entry = JSON.parse(line) as Record<string, unknown>;
          events.push(entry);
          if (entry.msg === "Ingest backend is listening") resolve(String(entry.url));
        });
      });
      return { child, url, events };
    };
    const kill = async (child: ChildProcess) => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await once(child, "exit");
      }
    };

    // Small chunks: many progress points to kill it between.
    const first = await spawnBackend(50);
    try {
      const pending = deliver(first.url, id, event).catch((err: Error) => err);
      // Kill it once a few chunks are in the open transaction.
      const deadline = Date.now() + 30_000;
      while (first.events.filter((e) => e.msg === "Copied a chunk of feed").length < 3) {
        assert.ok(Date.now() < deadline, "the backend copied chunks");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await kill(first.child);
      assert.ok((await pending) instanceof Error, "the operator sees a connection error and will retry");
    } finally {
      await kill(first.child);
    }
    assert.deepEqual(await rows(), [], "the killed transaction left no row");
    assert.deepEqual(await claims(), []);

    const second = await spawnBackend(10_000);
    try {
      const retried = await deliver(second.url, id, event);
      assert.equal(retried.status, 200, JSON.stringify(retried.body));
      const count = await sql.query("SELECT count(*)::int AS n, count(DISTINCT line_no)::int AS d FROM items");
      assert.deepEqual(count.rows[0], { n: 30_000, d: 30_000 });
    } finally {
      await kill(second.child);
    }
  });
});
