// The bulk-ingest webhook as a backend sees it: verify the Standard Webhooks
// signature on the exact bytes received, then parse and check the event.

import { Webhook, WebhookVerificationError } from "standardwebhooks";
import Type from "typebox";
import { Compile } from "typebox/compile";
import { badRequest, unauthorized } from "./errors.ts";

/** One feed file as the operator describes it (DESIGN.md, "The bulk-ingest webhook"). */
const Feed = Type.Object({
  uri: Type.String({ minLength: 1, maxLength: 2048 }),
  bucket: Type.Optional(Type.String({ minLength: 1 })),
  key: Type.Optional(Type.String({ minLength: 1 })),
  format: Type.String({ minLength: 1 }),
  compression: Type.Optional(Type.String()),
  /** The feed's `encoding` option; absent (today's operator): a BOM, XML's declaration, else UTF-8. */
  encoding: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  /** CSV: the delimiter and quote character when not `,` and `"`; csvHeader false: no header line (refused, 422). */
  csvDelimiter: Type.Optional(Type.String({ minLength: 1, maxLength: 1 })),
  csvQuoteChar: Type.Optional(Type.String({ minLength: 1, maxLength: 1 })),
  csvHeader: Type.Optional(Type.Boolean()),
  items: Type.Integer({ minimum: 0 }),
  bytes: Type.Integer({ minimum: 0 }),
  sha256: Type.Optional(Type.String({ pattern: "^[0-9a-f]{64}$" })),
  batchId: Type.Optional(Type.Integer({ minimum: 0 })),
  shard: Type.Optional(Type.Integer({ minimum: 0 })),
});
export type Feed = Type.Static<typeof Feed>;

const CrawlJobRef = Type.Object({
  namespace: Type.String(),
  name: Type.String({ minLength: 1 }),
  uid: Type.String(),
});

const FeedClosed = Type.Object({
  type: Type.Literal("feed.closed"),
  id: Type.String({ minLength: 1 }),
  crawlJob: CrawlJobRef,
  feed: Feed,
});

const CrawlCompleted = Type.Object({
  type: Type.Literal("crawl.completed"),
  id: Type.String({ minLength: 1 }),
  crawlJob: CrawlJobRef,
  manifest: Type.Optional(Type.String()),
  feeds: Type.Array(Feed, { maxItems: 100_000 }),
});

export type WebhookEvent = Type.Static<typeof FeedClosed> | Type.Static<typeof CrawlCompleted>;
const checkers = { "feed.closed": Compile(FeedClosed), "crawl.completed": Compile(CrawlCompleted) };

/**
 * The verifier for the shared secret, read the way the operator reads it: a
 * value starting with `whsec_` is a Standard Webhooks secret (base64 after
 * the prefix); anything else is used as raw key bytes (UTF-8).
 */
export function webhookVerifier(secret: string): Webhook {
  const text = secret.trim();
  if (text.startsWith("whsec_")) return new Webhook(text);
  return new Webhook(new Uint8Array(Buffer.from(secret, "utf8")), { format: "raw" });
}

/**
 * Verifies the signature and timestamp (±5 minutes: a replayed or delayed
 * request is refused) and returns the event. 401 for a bad or stale
 * signature, 400 for a body that is not a well-formed event.
 */
export function verifyEvent(
  verifier: Webhook,
  body: Buffer,
  headers: Record<string, string | string[] | undefined>,
): { webhookId: string; event: WebhookEvent } {
  const flat: Record<string, string> = {};
  for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
    const value = headers[name];
    if (typeof value === "string") flat[name] = value;
  }
  try {
    verifier.verify(body, flat, { jsonParse: false });
  } catch (err) {
    if (err instanceof WebhookVerificationError) throw unauthorized(`Webhook signature rejected: ${err.message}`);
    throw err;
  }
  const webhookId = flat["webhook-id"] as string;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw badRequest(`Webhook body is not JSON: ${(err as Error).message}`);
  }
  const type = (parsed as { type?: unknown } | null)?.type;
  const check = typeof type === "string" ? checkers[type as keyof typeof checkers] : undefined;
  if (!check)
    throw badRequest(`Webhook body has type ${JSON.stringify(type)}: expected feed.closed or crawl.completed`);
  if (!check.Check(parsed)) {
    const first = [...check.Errors(parsed)].slice(0, 3);
    const detail = first.map((e) => `${e.instancePath || "/"} ${e.message}`).join("; ");
    throw badRequest(`Webhook body is not a valid ${type} event: ${detail}`);
  }
  return { webhookId, event: parsed as WebhookEvent };
}

/** The feeds an event asks to load: one for feed.closed, every listed one for crawl.completed. */
export function feedsOf(event: WebhookEvent): Feed[] {
  return event.type === "feed.closed" ? [event.feed] : event.feeds;
}
