#!/usr/bin/env node
// The reference bulk-ingest backend: receives feedcrawl's signed webhook, reads
// the feed file it names (S3 or a local folder) as a stream, and bulk-loads it
// into PostgreSQL (COPY) or, without DATABASE_URL, an embedded SQLite file.
//
//   WEBHOOK_SECRET=… DATABASE_URL=postgres://… node examples/ingest-backend/server.ts
//
// It answers after the load: 200 once the rows are committed, 409 when the
// webhook-id was loaded before, 401/400/422 for requests it will never accept,
// 5xx when it could not load (the operator retries). See docs/backend.md.
//
// Hostile clients: connections are capped (MAX_CONNECTIONS), headers and the
// whole request must arrive in time (HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS),
// a request without well-formed, fresh signature headers is refused before a
// byte of its body is read, and at most MAX_BODY_READS (4) bodies (each at
// most 8 MiB) are read at once before their signature is checked.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { S3Client } from "@aws-sdk/client-s3";
import { pino } from "pino";
import { Semaphore } from "../../lib/semaphore.ts";
import { type BackendConfig, configFromEnv } from "./config.ts";
import { IngestError, tooLarge, unauthorized } from "./errors.ts";
import { canonicalFeed, checkLoadable, type FeedSources, feedLines } from "./feed-reader.ts";
import { PostgresStore } from "./stores/postgres.ts";
import { SqliteStore } from "./stores/sqlite.ts";
import type { IngestStore } from "./stores/store.ts";
import { type Feed, feedsOf, TIMESTAMP_TOLERANCE_S, verifyEvent, webhookKey } from "./webhook.ts";

/** Larger than any event the operator sends (a crawl.completed lists ~400 bytes per feed). */
const MAX_BODY_BYTES = 8 * 1024 * 1024;
/** Bodies read at once before their signature is checked: at most this × MAX_BODY_BYTES in memory. */
const MAX_BODY_READS = 4;

/**
 * Why the request cannot be a signed webhook, from its headers alone: the
 * body is then never read (an unauthenticated client cannot make us buffer
 * megabytes). The signature itself is verified on the body afterwards.
 */
function headerProblem(headers: IncomingMessage["headers"], nowMs: number): IngestError | undefined {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signature = headers["webhook-signature"];
  if (typeof id !== "string" || typeof timestamp !== "string" || typeof signature !== "string") {
    return unauthorized("Webhook signature rejected: webhook-id, webhook-timestamp and webhook-signature are required");
  }
  if (id.length > 512 || signature.length > 8192 || !/^\d{1,12}$/.test(timestamp)) {
    return unauthorized("Webhook signature rejected: malformed signature headers");
  }
  const age = nowMs / 1000 - Number(timestamp);
  if (age > TIMESTAMP_TOLERANCE_S) return unauthorized("Webhook signature rejected: Message timestamp too old");
  if (age < -TIMESTAMP_TOLERANCE_S) return unauthorized("Webhook signature rejected: Message timestamp too new");
  const declared = Number(headers["content-length"] ?? 0);
  if (declared > MAX_BODY_BYTES) return tooLarge(`Webhook body of ${declared} bytes is over ${MAX_BODY_BYTES}`);
  return undefined;
}

export interface IngestBackend {
  /** The webhook's URL, e.g. http://127.0.0.1:8088/bulk-ingest. */
  url: string;
  server: Server;
  store: IngestStore;
  /** Counters since start: what the demo prints. */
  stats: { requests: number; loaded: number; duplicates: number; rejected: number; failed: number; rows: number };
  close(): Promise<void>;
}

export interface IngestBackendOptions {
  logger?: pino.Logger;
  /** An S3 client to use instead of one built from the config (tests). */
  s3?: S3Client;
}

export function createStore(config: BackendConfig, logger: pino.Logger): IngestStore {
  if (config.databaseUrl) {
    return new PostgresStore({
      connectionString: config.databaseUrl,
      chunkRows: config.chunkRows,
      onChunk: ({ webhookId, feedUri, rows }) => logger.debug({ webhookId, feedUri, rows }, "Copied a chunk of feed"),
    });
  }
  return new SqliteStore({ path: config.sqlitePath });
}

/**
 * Reads the body into `buffer` (MAX_BODY_BYTES long) and returns the part
 * filled. Bytes that arrive after an error are dropped, since the buffer goes
 * back to the pool then.
 */
function readBody(req: IncomingMessage, buffer: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? Number.NaN);
    const limit = Number.isInteger(declared) && declared >= 0 ? declared : MAX_BODY_BYTES;
    if (limit > MAX_BODY_BYTES) return reject(tooLarge(`Webhook body of ${declared} bytes is over ${MAX_BODY_BYTES}`));
    let size = 0;
    const fail = (err: Error) => {
      req.removeListener("data", onData);
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      if (size + chunk.length > limit) {
        req.destroy();
        return fail(
          tooLarge(`Webhook body is over ${limit === declared ? "its content-length" : MAX_BODY_BYTES} bytes`),
        );
      }
      chunk.copy(buffer, size);
      size += chunk.length;
    };
    req.on("data", onData);
    req.on("end", () => resolve(buffer.subarray(0, size)));
    req.on("error", fail);
  });
}

function send(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  if (res.headersSent) return;
  res.writeHead(status, { "content-type": "application/json" });
  res.end(`${JSON.stringify(body)}\n`);
}

/** Answers a request whose body was not read, and closes the connection (the rest of the body is never read). */
function refuseUnread(req: IncomingMessage, res: ServerResponse, status: number, body: Record<string, unknown>): void {
  res.setHeader("connection", "close");
  send(res, status, body);
  // A short grace so the client can read the answer, then the socket goes, whatever it still sends.
  res.once("finish", () => setTimeout(() => req.socket.destroy(), 1_000).unref());
}

/** Starts the backend (migrating the tables first) and resolves once it listens. */
export async function createIngestBackend(
  config: BackendConfig,
  options: IngestBackendOptions = {},
): Promise<IngestBackend> {
  const logger = options.logger ?? pino({ level: config.logLevel, name: "ingest-backend" });
  const signingKey = webhookKey(config.webhookSecret);
  const store = createStore(config, logger);
  await store.migrate();
  const s3 =
    options.s3 ??
    new S3Client({
      region: config.s3.region,
      forcePathStyle: config.s3.forcePathStyle,
      ...(config.s3.endpoint ? { endpoint: config.s3.endpoint } : {}),
    });
  const sources: FeedSources = { s3, ...(config.fileFeedsRoot ? { fileFeedsRoot: config.fileFeedsRoot } : {}) };
  const stats = { requests: 0, loaded: 0, duplicates: 0, rejected: 0, failed: 0, rows: 0 };
  const inFlight = new Set<AbortController>();
  const bodyReads = new Semaphore(MAX_BODY_READS);
  // One buffer per concurrent read, reused: a fresh 8 MiB Buffer per request
  // waits for the GC, and 100 forged 8 MiB bodies grew RSS by 169 MiB so.
  // Untouched pages of a buffer cost no RSS.
  const bodyBuffers: Buffer[] = [];

  async function handleWebhook(req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.requests += 1;
    const early = headerProblem(req.headers, Date.now());
    if (early) {
      stats.rejected += 1;
      logger.warn({ status: early.status }, `Webhook refused before its body: ${early.message}`);
      return refuseUnread(req, res, early.status, { error: early.message });
    }
    const started = performance.now();
    const abort = new AbortController();
    inFlight.add(abort);
    let webhookId: string | undefined;
    try {
      const verified = await bodyReads.run(async () => {
        const buffer = bodyBuffers.pop() ?? Buffer.allocUnsafe(MAX_BODY_BYTES);
        try {
          // Verified (and parsed into new objects) before the buffer is reused.
          return verifyEvent(signingKey, await readBody(req, buffer), req.headers);
        } finally {
          bodyBuffers.push(buffer);
        }
      });
      webhookId = verified.webhookId;
      const feeds: Feed[] = [];
      for (const feed of feedsOf(verified.event)) {
        checkLoadable(feed, sources);
        feeds.push(await canonicalFeed(feed, sources));
      }
      const result = await store.ingest(
        webhookId,
        verified.event,
        feeds.map((feed) => ({ feed, lines: () => feedLines(feed, sources, abort.signal) })),
      );
      stats.loaded += 1;
      stats.rows += result.rows;
      const ms = Math.round(performance.now() - started);
      logger.info({ webhookId, type: verified.event.type, ...result, ms }, "Loaded webhook's feeds");
      send(res, 200, { webhookId, ...result });
    } catch (err) {
      const status = err instanceof IngestError ? err.status : 500;
      const message = (err as Error).message;
      if (status === 409) stats.duplicates += 1;
      else if (status >= 500) stats.failed += 1;
      else stats.rejected += 1;
      const log = status >= 500 ? logger.error.bind(logger) : logger.warn.bind(logger);
      log({ webhookId, status, err: status >= 500 ? err : undefined }, `Webhook refused: ${message}`);
      send(res, status, { error: message, ...(webhookId ? { webhookId } : {}) });
    } finally {
      inFlight.delete(abort);
    }
  }

  const server = createServer(
    {
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: Math.max(config.requestTimeoutMs, config.headersTimeoutMs),
      // How often those two are checked (Node's default is 30 s).
      connectionsCheckingInterval: Math.min(1_000, config.headersTimeoutMs),
    },
    (req, res) => {
      const url = new URL(req.url ?? "/", "http://backend");
      if (url.pathname === config.path) {
        if (req.method !== "POST") return send(res, 405, { error: "POST only" });
        void handleWebhook(req, res);
        return;
      }
      if (url.pathname === "/healthz" && req.method === "GET") {
        store.countItems().then(
          (items) => send(res, 200, { status: "ok", store: store.kind, items }),
          (err: Error) => send(res, 503, { status: "unavailable", error: err.message }),
        );
        return;
      }
      send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
    },
  );
  // Receiving the request is bounded above; the load after it is bounded by the
  // operator's timeout (spec.ingest.webhook.timeoutSeconds), not ours.
  server.maxConnections = config.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  const url = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${port}${config.path}`;
  logger.info({ url, store: store.kind }, "Ingest backend is listening");
  let closing: Promise<void> | undefined;

  return {
    url,
    server,
    store,
    stats,
    close() {
      closing ??= (async () => {
        // In-flight loads are aborted: their transactions roll back, the operator retries them.
        for (const abort of inFlight) abort.abort();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        try {
          await store.close();
        } finally {
          if (!options.s3) s3.destroy();
        }
      })();
      return closing;
    },
  };
}

async function main(): Promise<void> {
  const config = configFromEnv();
  const backend = await createIngestBackend(config);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`ingest-backend: ${signal}, stopping\n`);
    backend.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

if (import.meta.main) {
  main().catch((err: Error) => {
    process.stderr.write(`ingest-backend: ${err.message}\n`);
    process.exit(1);
  });
}
