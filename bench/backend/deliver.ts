// The operator's part in the bench: one signed Standard Webhooks POST per
// closed feed, the payload of DESIGN.md's "feed.closed" event.
import { createHash } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { type Agent, request } from "undici";
import type { FeedClosed } from "../../runner/feeds/exporter.ts";

export const CRAWLJOB = { namespace: "bench", name: "books", uid: "00000000-0000-4000-8000-00000000bench" };

export function feedClosedEvent(feed: FeedClosed) {
  const url = new URL(feed.uri);
  const id = `${CRAWLJOB.uid}:${createHash("sha256").update(feed.uri).digest("hex").slice(0, 32)}`;
  return {
    id,
    body: JSON.stringify({
      type: "feed.closed",
      id,
      crawlJob: CRAWLJOB,
      feed: {
        uri: feed.uri,
        bucket: url.hostname,
        key: url.pathname.slice(1),
        format: feed.format,
        compression: feed.compression,
        items: feed.items,
        bytes: feed.bytes,
        sha256: feed.sha256,
        batchId: feed.batchId,
        shard: feed.shard,
      },
    }),
  };
}

/** POSTs the signed event; resolves with the response status, and the time from the call to the 2xx. */
export async function deliverFeed(
  webhookUrl: string,
  secret: string,
  feed: FeedClosed,
  dispatcher: Agent,
): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const { id, body } = feedClosedEvent(feed);
  const timestamp = new Date();
  const signature = new Webhook(secret).sign(id, timestamp, body);
  const res = await request(webhookUrl, {
    method: "POST",
    dispatcher,
    headers: {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
      "webhook-signature": signature,
    },
    body,
  });
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode >= 300) {
    throw new Error(`Webhook for ${feed.uri} answered ${res.statusCode}: ${text.slice(0, 300)}`);
  }
  return { status: res.statusCode, ms: performance.now() - started };
}
