// The reference backend's embedded store (node:sqlite, chosen when
// DATABASE_URL is unset): the same contract as PostgreSQL — exact rows,
// 409 on replay, nothing visible after a failed load — with feeds from the
// real S3 server and from a local folder (file://, as in the demo).
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import type { S3Client } from "@aws-sdk/client-s3";
import { pino } from "pino";
import { configFromEnv } from "../../examples/ingest-backend/config.ts";
import { createIngestBackend, type IngestBackend } from "../../examples/ingest-backend/server.ts";
import { createBucket, type Disposable, s3Client } from "../platform/fixtures.ts";
import { deliver, feedClosed, feedObject, feedPayload, JOB, makeItems, putFeed, SECRET } from "./helpers.ts";

describe("ingest backend on node:sqlite", () => {
  let s3: S3Client;
  let bucket: Disposable;
  let dir: string;
  let backend: IngestBackend;
  let seq = 0;

  before(async () => {
    s3 = s3Client();
    bucket = await createBucket("backend-sqlite");
  });
  after(async () => {
    await bucket?.cleanup();
    s3?.destroy();
  });
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "feedcrawl-backend-"));
    mkdirSync(join(dir, "feeds"));
    // No DATABASE_URL: the embedded store.
    const config = configFromEnv({
      WEBHOOK_SECRET: SECRET,
      SQLITE_PATH: join(dir, "ingest.sqlite"),
      FILE_FEEDS_ROOT: join(dir, "feeds"),
      PORT: "0",
    });
    backend = await createIngestBackend(config, { logger: pino({ level: "silent" }), s3 });
  });
  afterEach(async () => {
    try {
      await backend?.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** Reads the table with a separate connection, as any reader would. */
  function table(): { items: { line_no: number; item: string; feed_uri: string }[]; claims: unknown[] } {
    const db = new DatabaseSync(join(dir, "ingest.sqlite"), { readOnly: true });
    try {
      return {
        items: db.prepare("SELECT feed_uri, line_no, item FROM items ORDER BY feed_uri, line_no").all() as never,
        claims: db
          .prepare("SELECT webhook_id, rows FROM ingested_webhooks")
          .all()
          .map((r) => ({ ...r })),
      };
    } finally {
      db.close();
    }
  }

  async function s3Feed(items: unknown[]) {
    seq += 1;
    const key = `books/part-${seq}.jsonl.gz`;
    const object = feedObject(items, "gzip");
    await putFeed(s3, bucket.name, key, object.body);
    const feed = feedPayload(`s3://${bucket.name}/${key}`, object, items.length, "gzip", seq);
    const id = `${JOB.uid}:sqlite-${seq}`;
    return { id, event: feedClosed(id, feed), key, object };
  }

  it("chooses the embedded store without DATABASE_URL and loads exact rows", async () => {
    assert.equal(backend.store.kind, "sqlite");
    const items = makeItems(120);
    const { id, event } = await s3Feed(items);
    const response = await deliver(backend.url, id, event);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual(response.body, { webhookId: id, rows: 120, feeds: 1 });
    const { items: loaded, claims } = table();
    assert.deepEqual(
      loaded.map((r) => JSON.parse(r.item)),
      items,
    );
    assert.deepEqual(
      loaded.map((r) => r.line_no),
      items.map((_, i) => i + 1),
    );
    assert.deepEqual(claims, [{ webhook_id: id, rows: 120 }]);
    assert.equal(await backend.store.countItems(), 120);
  });

  it("answers 409 for a replay and for two concurrent deliveries, with no new rows", async () => {
    const { id, event } = await s3Feed(makeItems(50));
    const first = await Promise.all([deliver(backend.url, id, event), deliver(backend.url, id, event)]);
    assert.deepEqual(first.map((a) => a.status).sort(), [200, 409]);
    assert.equal((await deliver(backend.url, id, event)).status, 409);
    assert.equal(table().items.length, 50);
  });

  it("rolls back a load that fails mid-way (corrupt gzip): zero rows, 502", async () => {
    const items = makeItems(3000);
    const good = feedObject(items, "gzip");
    const corrupt = Buffer.concat([
      good.body.subarray(0, Math.floor(good.body.length * 0.6)),
      Buffer.alloc(4096, 0x5a),
    ]);
    const { id, event, key } = await s3Feed(items);
    await putFeed(s3, bucket.name, key, corrupt);
    const response = await deliver(backend.url, id, {
      ...event,
      feed: { ...event.feed, bytes: corrupt.length, sha256: feedObject([], "none").sha256 },
    });
    assert.equal(response.status, 502, JSON.stringify(response.body));
    assert.deepEqual(table(), { items: [], claims: [] });
  });

  it("answers 401 for a bad signature and 400 for a malformed body", async () => {
    const { id, event } = await s3Feed(makeItems(5));
    assert.equal((await deliver(backend.url, id, event, { signature: "v1,Zm9v" })).status, 401);
    assert.equal((await deliver(backend.url, id, "[]")).status, 400);
    assert.deepEqual(table(), { items: [], claims: [] });
  });

  it("reads file:// feeds under FILE_FEEDS_ROOT and refuses paths outside it", async () => {
    const items = makeItems(33);
    const object = feedObject(items, "zstd");
    const file = join(dir, "feeds", "part-00001.jsonl.zst");
    writeFileSync(file, object.body);
    const uri = pathToFileURL(file).href;
    const id = `${JOB.uid}:file-1`;
    const response = await deliver(backend.url, id, feedClosed(id, feedPayload(uri, object, 33, "zstd")));
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(table().items.length, 33);

    // A symlink inside the root that points outside it is refused too.
    const outside = join(dir, "secret.jsonl");
    writeFileSync(outside, '{"a":1}\n');
    symlinkSync(outside, join(dir, "feeds", "link.jsonl"));
    for (const target of [outside, join(dir, "feeds", "link.jsonl")]) {
      const bad = feedPayload(pathToFileURL(target).href, feedObject([{ a: 1 }], "none"), 1, "none");
      const refused = await deliver(backend.url, `${id}-${target.length}`, feedClosed(`x`, bad));
      assert.equal(refused.status, 422, target);
      assert.match(String(refused.body.error), /outside FILE_FEEDS_ROOT/);
    }
    assert.equal(table().items.length, 33);
  });
});
