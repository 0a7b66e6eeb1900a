// Finding 6 of issue 14: the reference backend against hostile clients on
// loopback and the real PostgreSQL (and S3). One file under several
// spellings of its URI loads once; data PostgreSQL can never store is 422
// (not retryable) with nothing loaded; slowloris connections are closed
// within the header/request timeouts; connections are capped; and unsigned
// (or forged) large bodies do not grow the backend process's memory.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
  listening,
  makeItems,
  putFeed,
  SECRET,
  sampleRss,
} from "./helpers.ts";

const logger = pino({ level: "silent" });

/** Opens a raw TCP connection to the backend; resolves once connected. */
async function openSocket(port: number): Promise<Socket> {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => {});
  await once(socket, "connect");
  return socket;
}

/** Milliseconds until `socket` is closed by the other end (or `limitMs` + 1 if it is still open then). */
function closedWithin(socket: Socket, limitMs: number): Promise<number> {
  const start = Date.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(limitMs + 1), limitMs);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(Date.now() - start);
    });
  });
}

describe("reference backend against hostile clients (issue 14, finding 6)", () => {
  let s3: S3Client;
  let bucket: Disposable;
  let db: TestDatabase;
  let sql: pg.Client;
  let backend: IngestBackend | undefined;
  let feedsRoot: string;

  before(async () => {
    s3 = s3Client();
    bucket = await createBucket("hostile");
    feedsRoot = mkdtempSync(join(tmpdir(), "feedcrawl-hostile-"));
  });
  after(async () => {
    await bucket?.cleanup();
    s3?.destroy();
    rmSync(feedsRoot, { recursive: true, force: true });
  });
  beforeEach(async () => {
    db = await pgDatabase("hostile");
    sql = new pg.Client({ connectionString: db.connectionString });
    await sql.connect();
  });
  afterEach(async () => {
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

  async function start(env: Record<string, string> = {}): Promise<IngestBackend> {
    const config = configFromEnv({
      WEBHOOK_SECRET: SECRET,
      DATABASE_URL: db.connectionString,
      PORT: "0",
      FILE_FEEDS_ROOT: feedsRoot,
      ...env,
    });
    backend = await createIngestBackend(config, { logger, s3 });
    return backend;
  }

  const port = (b: IngestBackend) => Number(new URL(b.url).port);
  const count = async () => Number((await sql.query("SELECT count(*)::int AS n FROM items")).rows[0].n);

  it("loads one file once under equivalent spellings of its URI (file:// and s3://)", async () => {
    const { url } = await start();
    const items = makeItems(25);
    const object = feedObject(items);
    writeFileSync(join(feedsRoot, "x.jsonl.gz"), object.body);
    const spellings = [
      `file://${feedsRoot}/x.jsonl.gz`,
      `file://${feedsRoot}/./x.jsonl.gz`,
      `file://${feedsRoot}//x.jsonl.gz`,
      `file://${feedsRoot}/%78.jsonl.gz`,
    ];
    const statuses = [];
    for (const [i, uri] of spellings.entries()) {
      const id = `${JOB.uid}:file-${i}`;
      statuses.push((await deliver(url, id, feedClosed(id, feedPayload(uri, object, items.length)))).status);
    }
    assert.deepEqual(statuses, [200, 409, 409, 409]);
    assert.equal(await count(), 25, "25 lines, loaded once");

    await putFeed(s3, bucket.name, "books/run/part-1.jsonl.gz", object.body);
    const s3Statuses = [];
    for (const [i, key] of [
      "books/run/part-1.jsonl.gz",
      "books/./run/part-1.jsonl.gz",
      "books//run/part-1.jsonl.gz",
    ].entries()) {
      const id = `${JOB.uid}:s3-${i}`;
      const feed = feedPayload(`s3://${bucket.name}/${key}`, object, items.length);
      s3Statuses.push((await deliver(url, id, feedClosed(id, feed))).status);
    }
    assert.deepEqual(s3Statuses, [200, 409, 409]);
    const uris = (await sql.query("SELECT DISTINCT feed_uri FROM items ORDER BY 1")).rows.map((r) => r.feed_uri);
    assert.deepEqual(uris, [`file://${feedsRoot}/x.jsonl.gz`, `s3://${bucket.name}/books/run/part-1.jsonl.gz`]);
  });

  it("answers 422 (not retryable) for a NUL or a lone surrogate in an item, and loads nothing", async () => {
    const { url } = await start();
    const bad = [
      { id: 1, title: "fine" },
      { id: 2, title: "nul \u0000 inside" },
    ];
    const lone = [{ id: 3, title: `lone ${"\ud800"} surrogate` }];
    for (const [i, items] of [bad, lone].entries()) {
      const object = feedObject(items);
      const key = `books/bad-${i}.jsonl.gz`;
      await putFeed(s3, bucket.name, key, object.body);
      const id = `${JOB.uid}:bad-${i}`;
      const answer = await deliver(url, id, feedClosed(id, feedPayload(`s3://${bucket.name}/${key}`, object, 1)));
      assert.equal(answer.status, 422, JSON.stringify(answer.body));
      assert.match(String(answer.body.error), i === 0 ? /line 2 holds a NUL character/ : /lone UTF-16 surrogate/);
    }
    assert.equal(await count(), 0);
    assert.equal((await sql.query("SELECT count(*)::int AS n FROM ingested_webhooks")).rows[0].n, 0);
  });

  it("closes slowloris connections (headers or body trickled) within the timeouts", async () => {
    const b = await start({ HEADERS_TIMEOUT_MS: "1000", REQUEST_TIMEOUT_MS: "2000" });
    const sockets: Socket[] = [];
    const timers: NodeJS.Timeout[] = [];
    try {
      const headers = "POST /bulk-ingest HTTP/1.1\r\nHost: backend\r\n";
      const signed =
        `${headers}webhook-id: x\r\nwebhook-timestamp: ${Math.floor(Date.now() / 1000)}\r\n` +
        "webhook-signature: v1,AAAA\r\ncontent-length: 100000\r\n\r\n";
      for (let i = 0; i < 60; i++) {
        const socket = await openSocket(port(b));
        // Half trickle header lines forever, half send complete headers and trickle the body.
        socket.write(i % 2 === 0 ? headers : signed);
        timers.push(setInterval(() => socket.writable && socket.write(i % 2 === 0 ? "x-slow: 1\r\n" : "a"), 200));
        sockets.push(socket);
      }
      const times = await Promise.all(sockets.map((s) => closedWithin(s, 6_000)));
      assert.ok(
        times.every((t) => t <= 6_000),
        `every slow connection was closed (ms: ${times.join(",")})`,
      );
    } finally {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
    }
  });

  it("caps open connections (MAX_CONNECTIONS)", async () => {
    const b = await start({ MAX_CONNECTIONS: "20" });
    const sockets = await Promise.all(Array.from({ length: 60 }, () => openSocket(port(b))));
    try {
      const closed = await Promise.all(sockets.map((s) => closedWithin(s, 1_500)));
      const open = closed.filter((t) => t > 1_500).length;
      assert.ok(open <= 20, `at most 20 connections stay open (${open} did)`);
      const held = await new Promise<number>((resolve) => b.server.getConnections((_, n) => resolve(n)));
      assert.ok(held <= 20, `the server holds ${held} connections`);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });

  it("100 concurrent unsigned (then forged) 8 MiB bodies do not grow the backend's RSS past a bound", async (t) => {
    const s3env = platform().s3;
    const child = spawn(process.execPath, ["examples/ingest-backend/server.ts"], {
      env: {
        ...process.env,
        WEBHOOK_SECRET: SECRET,
        DATABASE_URL: db.connectionString,
        PORT: "0",
        S3_ENDPOINT: s3env.endpoint,
        AWS_ACCESS_KEY_ID: s3env.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3env.secretAccessKey,
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      const url = await listening(child);
      const sampler = sampleRss(child.pid!);
      try {
        await flood(Number(new URL(url).port), 100, false);
        const unsigned = sampler.growth();
        assert.ok(unsigned < 64 * 1024 * 1024, `unsigned bodies grew RSS by ${Math.round(unsigned / 2 ** 20)} MiB`);
        // Forged (well-formed, fresh) signature headers: bodies are read, at most 4 at a time.
        await flood(Number(new URL(url).port), 100, true);
        const forged = sampler.growth();
        t.diagnostic(
          `RSS growth: unsigned ${Math.round(unsigned / 2 ** 20)} MiB, forged ${Math.round(forged / 2 ** 20)} MiB`,
        );
        assert.ok(forged < 256 * 1024 * 1024, `forged bodies grew RSS by ${Math.round(forged / 2 ** 20)} MiB`);
      } finally {
        sampler.stop();
      }
    } finally {
      child.kill("SIGKILL");
      await once(child, "exit").catch(() => {});
    }
  });
});

/**
 * `clients` concurrent POSTs that each announce and stream 8 MiB (one shared
 * 64 KiB chunk, so the test itself stays small), unsigned or with forged but
 * well-formed signature headers; resolves when every connection ended.
 */
async function flood(port: number, clients: number, forged: boolean): Promise<void> {
  const size = 8 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 0x7b);
  const signature = forged
    ? `webhook-id: forged\r\nwebhook-timestamp: ${Math.floor(Date.now() / 1000)}\r\nwebhook-signature: v1,AAAA\r\n`
    : "";
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const socket = await openSocket(port);
      const done = once(socket, "close").catch(() => {});
      socket.write(
        `POST /bulk-ingest HTTP/1.1\r\nHost: backend\r\ncontent-type: application/json\r\n${signature}` +
          `content-length: ${size}\r\nconnection: close\r\n\r\n`,
      );
      let sent = 0;
      const pump = () => {
        while (sent < size && socket.writable) {
          sent += chunk.length;
          if (!socket.write(chunk)) return void socket.once("drain", pump);
        }
      };
      pump();
      socket.on("data", () => {});
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 60_000))]);
      socket.destroy();
    }),
  );
}
