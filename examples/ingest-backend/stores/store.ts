// What the HTTP handler needs from a database: load every feed of one
// webhook in one transaction that also records the webhook-id, or nothing.
import type { FeedLine } from "../feed-reader.ts";
import type { Feed, WebhookEvent } from "../webhook.ts";

export interface FeedToLoad {
  feed: Feed;
  /** Opens the feed's lines; called once, when the store is ready for them. */
  lines(): AsyncIterable<FeedLine>;
}

export interface IngestResult {
  rows: number;
  feeds: number;
}

export interface IngestStore {
  readonly kind: "postgresql" | "sqlite";
  /** Creates the tables if they do not exist. */
  migrate(): Promise<void>;
  /**
   * Loads the feeds and records `webhookId` in the same transaction. Throws
   * 409 when the webhook-id (or one of its feeds) is already loaded, and rolls
   * back everything on any error: a half-loaded file is never visible.
   */
  ingest(webhookId: string, event: WebhookEvent, feeds: FeedToLoad[]): Promise<IngestResult>;
  /** Rows in the items table, or only those of webhook-ids starting with `webhookIdPrefix` (a CrawlJob's uid). */
  countItems(webhookIdPrefix?: string): Promise<number>;
  close(): Promise<void>;
}

/** `items` + `ingested_webhooks`, the same columns in both stores. */
export const TABLES_DOC = `
items(webhook_id, feed_uri, line_no, item)   unique (feed_uri, line_no)
ingested_webhooks(webhook_id primary key, event_type, crawljob_namespace, crawljob_name, crawljob_uid, feeds, rows, ingested_at)
`;
