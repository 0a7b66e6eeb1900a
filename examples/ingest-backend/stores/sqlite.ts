// The embedded store (Node's built-in node:sqlite): the same contract as the
// PostgreSQL store, for the demo and for trying the backend with nothing
// installed. One connection, so loads are serialised: one transaction at a time.
import { DatabaseSync } from "node:sqlite";
import { alreadyIngested, storeUnavailable } from "../errors.ts";
import type { WebhookEvent } from "../webhook.ts";
import type { FeedToLoad, IngestResult, IngestStore } from "./store.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ingested_webhooks (
  webhook_id          TEXT PRIMARY KEY,
  event_type          TEXT NOT NULL,
  crawljob_namespace  TEXT NOT NULL,
  crawljob_name       TEXT NOT NULL,
  crawljob_uid        TEXT NOT NULL,
  feeds               INTEGER NOT NULL,
  rows                INTEGER NOT NULL DEFAULT 0,
  ingested_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE TABLE IF NOT EXISTS items (
  webhook_id  TEXT NOT NULL,
  feed_uri    TEXT NOT NULL,
  line_no     INTEGER NOT NULL,
  item        TEXT NOT NULL CHECK (json_valid(item)),
  PRIMARY KEY (feed_uri, line_no)
) STRICT;
CREATE INDEX IF NOT EXISTS items_webhook_id ON items (webhook_id);
`;

export interface SqliteStoreOptions {
  /** The database file (":memory:" for tests). */
  path: string;
}

export class SqliteStore implements IngestStore {
  readonly kind = "sqlite" as const;
  readonly #db: DatabaseSync;
  /** The tail of the queue of loads: node:sqlite has one connection, so one transaction at a time. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: SqliteStoreOptions) {
    this.#db = new DatabaseSync(options.path);
    // WAL: readers (the demo's summary, a user's sqlite3 shell) never see an open transaction's rows.
    this.#db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;");
  }

  async migrate(): Promise<void> {
    this.#db.exec(SCHEMA);
  }

  ingest(webhookId: string, event: WebhookEvent, feeds: FeedToLoad[]): Promise<IngestResult> {
    const run = this.#queue.then(() => this.#ingest(webhookId, event, feeds));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #ingest(webhookId: string, event: WebhookEvent, feeds: FeedToLoad[]): Promise<IngestResult> {
    const db = this.#db;
    const seen = db.prepare("SELECT 1 FROM ingested_webhooks WHERE webhook_id = ?").get(webhookId);
    if (seen) throw alreadyIngested(`Webhook ${webhookId} is already loaded`);
    db.exec("BEGIN IMMEDIATE");
    try {
      db.prepare(
        `INSERT INTO ingested_webhooks (webhook_id, event_type, crawljob_namespace, crawljob_name, crawljob_uid, feeds)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(webhookId, event.type, event.crawlJob.namespace, event.crawlJob.name, event.crawlJob.uid, feeds.length);
      const insert = db.prepare("INSERT INTO items (webhook_id, feed_uri, line_no, item) VALUES (?, ?, ?, ?)");
      let rows = 0;
      for (const { feed, lines } of feeds) {
        for await (const line of lines()) {
          insert.run(webhookId, feed.uri, line.lineNo, line.json);
          rows += 1;
        }
      }
      db.prepare("UPDATE ingested_webhooks SET rows = ? WHERE webhook_id = ?").run(rows, webhookId);
      db.exec("COMMIT");
      return { rows, feeds: feeds.length };
    } catch (err) {
      if (db.isTransaction) db.exec("ROLLBACK");
      const code = (err as { errstr?: string; message?: string }).message ?? "";
      if (/UNIQUE constraint failed/.test(code)) {
        throw alreadyIngested(`Webhook ${webhookId}: a feed in it is already loaded (${code})`);
      }
      if ((err as Error).name === "IngestError") throw err;
      throw storeUnavailable(`SQLite could not load webhook ${webhookId}: ${(err as Error).message}`, err);
    }
  }

  async countItems(webhookIdPrefix?: string): Promise<number> {
    const row = (
      webhookIdPrefix === undefined
        ? this.#db.prepare("SELECT count(*) AS n FROM items").get()
        : this.#db
            .prepare("SELECT count(*) AS n FROM items WHERE substr(webhook_id, 1, length(?)) = ?")
            .get(webhookIdPrefix, webhookIdPrefix)
    ) as { n: number };
    return Number(row.n);
  }

  async close(): Promise<void> {
    await this.#queue;
    this.#db.close();
  }
}
