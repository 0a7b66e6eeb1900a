// The backend's settings, from environment variables (twelve-factor style),
// so the same file runs on a laptop, in the demo and in a container.

export interface BackendConfig {
  /** Interface to listen on; 0.0.0.0 in a container. */
  host: string;
  /** 0 picks a free port (tests and the demo). */
  port: number;
  /** Path of the bulk-ingest webhook. */
  path: string;
  /** The signing secret shared with the operator: `whsec_<base64>` or raw text. */
  webhookSecret: string;
  /** PostgreSQL connection string; when unset the embedded node:sqlite store is used. */
  databaseUrl?: string;
  /** The SQLite file of the embedded store. */
  sqlitePath: string;
  /** Rows per COPY chunk (PostgreSQL) or per yielded batch (SQLite). */
  chunkRows: number;
  /** `file://` feeds are read only under this folder (the demo's); unset: refused. */
  fileFeedsRoot?: string;
  s3: { endpoint?: string; region: string; forcePathStyle: boolean };
  logLevel: string;
  /** Open connections at most; more are closed on accept (server.maxConnections). */
  maxConnections: number;
  /** Time a client has to send the request headers (slowloris), ms. */
  headersTimeoutMs: number;
  /** Time a client has to send the whole request, body included, ms (not the load: that is the operator's timeout). */
  requestTimeoutMs: number;
}

function integer(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined || value === "") return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < min)
    throw new Error(`${name} must be an integer >= ${min}, got "${value}"`);
  return parsed;
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): BackendConfig {
  const webhookSecret = env.WEBHOOK_SECRET;
  if (!webhookSecret) {
    throw new Error(
      "WEBHOOK_SECRET is not set: use the value of the Secret named by spec.ingest.webhook.signingSecretRef",
    );
  }
  const endpoint = env.S3_ENDPOINT || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  return {
    host: env.HOST || "127.0.0.1",
    port: integer("PORT", env.PORT, 8088, 0),
    path: env.WEBHOOK_PATH || "/bulk-ingest",
    webhookSecret,
    ...(env.DATABASE_URL ? { databaseUrl: env.DATABASE_URL } : {}),
    sqlitePath: env.SQLITE_PATH || "ingest.sqlite",
    chunkRows: integer("COPY_CHUNK_ROWS", env.COPY_CHUNK_ROWS, 10_000, 1),
    ...(env.FILE_FEEDS_ROOT ? { fileFeedsRoot: env.FILE_FEEDS_ROOT } : {}),
    s3: {
      ...(endpoint ? { endpoint } : {}),
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1",
      // S3-compatible servers (MinIO, versitygw) want path-style addressing; AWS itself does not.
      forcePathStyle: env.S3_FORCE_PATH_STYLE ? env.S3_FORCE_PATH_STYLE === "true" : endpoint !== undefined,
    },
    logLevel: env.LOG_LEVEL || "info",
    maxConnections: integer("MAX_CONNECTIONS", env.MAX_CONNECTIONS, 256, 1),
    headersTimeoutMs: integer("HEADERS_TIMEOUT_MS", env.HEADERS_TIMEOUT_MS, 10_000, 100),
    requestTimeoutMs: integer("REQUEST_TIMEOUT_MS", env.REQUEST_TIMEOUT_MS, 30_000, 100),
  };
}
