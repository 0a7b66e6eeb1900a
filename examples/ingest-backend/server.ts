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
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { S3Client } from "@aws-sdk/client-s3";
import { pino } from "pino";
import { type BackendConfig, configFromEnv } from "./config.ts";
import { IngestError, tooLarge } from "./errors.ts";
import { checkLoadable, type FeedSources, feedLines } from "./feed-reader.ts";
import { PostgresStore } from "./stores/postgres.ts";
import { SqliteStore } from "./stores/sqlite.ts";
import type { IngestStore } from "./stores/store.ts";
import { feedsOf, verifyEvent, webhookVerifier } from "./webhook.ts";

/** Larger than any event the operator sends (a crawl.completed lists ~400 bytes per feed). */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

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

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > MAX_BODY_BYTES)
      return reject(tooLarge(`Webhook body of ${declared} bytes is over ${MAX_BODY_BYTES}`));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.destroy();
        reject(tooLarge(`Webhook body is over ${MAX_BODY_BYTES} bytes`));
      } else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function send(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  if (res.headersSent) return;
  res.writeHead(status, { "content-type": "application/json" });
  res.end(`${JSON.stringify(body)}\n`);
}

/** Starts the backend (migrating the tables first) and resolves once it listens. */
export async function createIngestBackend(
  config: BackendConfig,
  options: IngestBackendOptions = {},
): Promise<IngestBackend> {
  const logger = options.logger ?? pino({ level: config.logLevel, name: "ingest-backend" });
  const verifier = webhookVerifier(config.webhookSecret);
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

  async function handleWebhook(req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.requests += 1;
    const started = performance.now();
    const abort = new AbortController();
    inFlight.add(abort);
    let webhookId: string | undefined;
    try {
      const body = await readBody(req);
      const verified = verifyEvent(verifier, body, req.headers);
      webhookId = verified.webhookId;
      const feeds = feedsOf(verified.event);
      for (const feed of feeds) checkLoadable(feed, sources);
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

  const server = createServer((req, res) => {
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
  });
  // The operator's timeout (spec.ingest.webhook.timeoutSeconds) is what bounds a request, not ours.
  server.requestTimeout = 0;
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
