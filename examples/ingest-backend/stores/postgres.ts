// The PostgreSQL store: one transaction per webhook that first claims the
// webhook-id (a primary key: the durable idempotency key), then streams each
// feed into `items` with COPY in bounded chunks, then commits. A crash or an
// error anywhere rolls back the claim and every row with it.
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { alreadyIngested, storeUnavailable, unprocessable } from "../errors.ts";
import type { FeedLine } from "../feed-reader.ts";
import type { WebhookEvent } from "../webhook.ts";
import type { FeedToLoad, IngestResult, IngestStore } from "./store.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ingested_webhooks (
  webhook_id          text PRIMARY KEY,
  event_type          text NOT NULL,
  crawljob_namespace  text NOT NULL,
  crawljob_name       text NOT NULL,
  crawljob_uid        text NOT NULL,
  feeds               integer NOT NULL,
  rows                bigint NOT NULL DEFAULT 0,
  ingested_at         timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS items (
  webhook_id  text NOT NULL,
  feed_uri    text NOT NULL,
  line_no     integer NOT NULL,
  item        jsonb NOT NULL,
  PRIMARY KEY (feed_uri, line_no)
);
CREATE INDEX IF NOT EXISTS items_webhook_id ON items (webhook_id);
`;

/** An arbitrary constant: serialises concurrent migrations of several backend replicas. */
const MIGRATION_LOCK = 7_312_004;

/** COPY's text format: backslash, tab, newline and carriage return must be escaped. */
function copyField(text: string): string {
  return text.replace(/[\\\t\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r"));
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === "23505";
}

/**
 * Data errors no retry can fix (the feed reader refuses NUL and lone
 * surrogates first; this catches what else the server refuses): class 22,
 * data_exception — 22P05 untranslatable_character, 22021
 * character_not_in_repertoire, 22P02 invalid_text_representation (jsonb
 * input), 22003 numeric_value_out_of_range (a JSON number like 1e999999) —
 * and 54000 program_limit_exceeded (a jsonb value over PostgreSQL's limits).
 */
function isDataError(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code ?? "";
  return code.startsWith("22") || code === "54000";
}

/** The item a COPY error is about: PostgreSQL names the line of the COPY, we know that line's item. */
function failedItem(err: unknown, lineNos: readonly number[]): string {
  const where = (err as { where?: string } | null)?.where ?? "";
  const copyLine = /COPY items, line (\d+)/.exec(where)?.[1];
  const lineNo = copyLine === undefined ? undefined : lineNos[Number(copyLine) - 1];
  return lineNo === undefined ? "" : ` (line_no ${lineNo})`;
}

export interface PostgresStoreOptions {
  connectionString: string;
  /** Rows per COPY command: bounds what one statement holds, and gives progress points. */
  chunkRows: number;
  /** Called after each chunk, e.g. for progress logs. */
  onChunk?: (info: { webhookId: string; feedUri: string; rows: number }) => void;
}

export class PostgresStore implements IngestStore {
  readonly kind = "postgresql" as const;
  readonly #pool: pg.Pool;
  readonly #options: PostgresStoreOptions;

  constructor(options: PostgresStoreOptions) {
    this.#options = options;
    this.#pool = new pg.Pool({ connectionString: options.connectionString, max: 8, connectionTimeoutMillis: 10_000 });
    // An idle client that loses its connection must not crash the process.
    this.#pool.on("error", () => {});
  }

  async migrate(): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
      await client.query(SCHEMA);
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => {});
      client.release();
    }
  }

  async ingest(webhookId: string, event: WebhookEvent, feeds: FeedToLoad[]): Promise<IngestResult> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw storeUnavailable(`PostgreSQL is unavailable: ${(err as Error).message}`, err);
    }
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      // Claim the webhook-id first. A concurrent delivery of the same id waits
      // here on the primary key until this transaction ends, then sees it (409).
      const claimed = await client.query(
        `INSERT INTO ingested_webhooks (webhook_id, event_type, crawljob_namespace, crawljob_name, crawljob_uid, feeds)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (webhook_id) DO NOTHING RETURNING webhook_id`,
        [webhookId, event.type, event.crawlJob.namespace, event.crawlJob.name, event.crawlJob.uid, feeds.length],
      );
      if (claimed.rowCount === 0) {
        await client.query("ROLLBACK");
        throw alreadyIngested(`Webhook ${webhookId} is already loaded`);
      }
      let rows = 0;
      for (const { feed, lines } of feeds) {
        rows += await this.#copyFeed(client, webhookId, feed.uri, lines());
      }
      await client.query("UPDATE ingested_webhooks SET rows = $2 WHERE webhook_id = $1", [webhookId, rows]);
      await client.query("COMMIT");
      return { rows, feeds: feeds.length };
    } catch (err) {
      await client.query("ROLLBACK").catch((rollbackErr: Error) => {
        broken = rollbackErr;
      });
      if (isUniqueViolation(err)) {
        // The same feed file was loaded before under another webhook-id.
        throw alreadyIngested(`Webhook ${webhookId}: a feed in it is already loaded (${(err as Error).message})`);
      }
      if ((err as Error).name === "IngestError") throw err;
      if (isDataError(err)) {
        const { feedUri, item } = (err as { failedAt?: { feedUri: string; item: string } }).failedAt ?? {};
        const at = feedUri ? ` in feed ${feedUri}${item}` : "";
        throw unprocessable(`PostgreSQL cannot store webhook ${webhookId}'s data${at}: ${(err as Error).message}`);
      }
      throw storeUnavailable(`PostgreSQL could not load webhook ${webhookId}: ${(err as Error).message}`, err);
    } finally {
      // A client whose COPY was cut or whose ROLLBACK failed is discarded, not reused.
      client.release(broken ?? undefined);
    }
  }

  /** COPY one feed's lines in chunks of `chunkRows` rows; returns the rows loaded. */
  async #copyFeed(
    client: pg.PoolClient,
    webhookId: string,
    feedUri: string,
    lines: AsyncIterable<FeedLine>,
  ): Promise<number> {
    const source = lines[Symbol.asyncIterator]();
    const prefix = `${copyField(webhookId)}\t${copyField(feedUri)}\t`;
    const chunkRows = this.#options.chunkRows;
    let total = 0;
    let done = false;
    /** The line_no of each row of the current COPY, to name the item a data error is about. */
    let lineNos: number[] = [];
    try {
      while (!done) {
        let inChunk = 0;
        lineNos = [];
        // One chunk: at most chunkRows rows, pulled from the shared line iterator.
        const chunk = async function* () {
          while (inChunk < chunkRows) {
            const next = await source.next();
            if (next.done) {
              done = true;
              return;
            }
            inChunk += 1;
            lineNos.push(next.value.lineNo);
            yield `${prefix}${next.value.lineNo}\t${copyField(next.value.json)}\n`;
          }
        };
        // pipeline ends the COPY on success and destroys it (CopyFail) on a read error.
        await pipeline(
          Readable.from(chunk()),
          client.query(copyFrom("COPY items (webhook_id, feed_uri, line_no, item) FROM STDIN")),
        ).catch((err: unknown) => {
          if (isDataError(err)) Object.assign(err as object, { failedAt: { feedUri, item: failedItem(err, lineNos) } });
          throw err;
        });
        total += inChunk;
        if (inChunk > 0) this.#options.onChunk?.({ webhookId, feedUri, rows: total });
      }
    } finally {
      // Closes the feed's stream when a COPY failed before the last line.
      await source.return?.();
    }
    return total;
  }

  async countItems(webhookIdPrefix?: string): Promise<number> {
    const result =
      webhookIdPrefix === undefined
        ? await this.#pool.query("SELECT count(*)::bigint AS n FROM items")
        : await this.#pool.query("SELECT count(*)::bigint AS n FROM items WHERE starts_with(webhook_id, $1)", [
            webhookIdPrefix,
          ]);
    return Number(result.rows[0].n);
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
