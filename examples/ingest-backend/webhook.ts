// The bulk-ingest webhook as a backend sees it: verify the Standard Webhooks
// signature on the exact bytes received, then parse and check the event.

import { createHmac, timingSafeEqual } from "node:crypto";
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

/** Standard Webhooks' tolerance for webhook-timestamp: a replayed or delayed request is refused. */
export const TIMESTAMP_TOLERANCE_S = 5 * 60;

/**
 * The HMAC key for the shared secret, read the way the operator's signer
 * (the `standardwebhooks` library) reads it: a value starting with `whsec_`
 * is a Standard Webhooks secret (base64 after the prefix); anything else is
 * used as raw key bytes (UTF-8).
 */
export function webhookKey(secret: string): Buffer {
  const text = secret.trim();
  const key = text.startsWith("whsec_") ? Buffer.from(text.slice(6), "base64") : Buffer.from(secret, "utf8");
  if (key.length === 0) throw new Error("WEBHOOK_SECRET is empty");
  return key;
}

/**
 * Checks Standard Webhooks' v1 signature: HMAC-SHA256 of `id.timestamp.body`,
 * one of the space-separated `v1,<base64>` entries. Hashed with node:crypto
 * over the body's bytes: the standardwebhooks library's `verify` decodes the
 * body to a string, builds a second one, encodes it again and hashes in
 * JavaScript — 265 ms and ~24 MiB of garbage per 8 MiB body, which a client
 * with forged headers could make the backend spend at will.
 */
function signatureProblem(key: Buffer, id: string, timestamp: string, signatures: string, body: Buffer) {
  if (!/^\d{1,12}$/.test(timestamp)) return "Invalid Signature Headers";
  const age = Date.now() / 1000 - Number(timestamp);
  if (age > TIMESTAMP_TOLERANCE_S) return "Message timestamp too old";
  if (age < -TIMESTAMP_TOLERANCE_S) return "Message timestamp too new";
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.`).update(body).digest();
  for (const entry of signatures.split(" ")) {
    const [version, signature] = entry.split(",");
    if (version !== "v1" || signature === undefined) continue;
    const given = Buffer.from(signature, "base64");
    if (given.length === expected.length && timingSafeEqual(given, expected)) return undefined;
  }
  return "No matching signature found";
}

/**
 * Verifies the signature and timestamp (±5 minutes) and returns the event.
 * 401 for a missing, bad or stale signature, 400 for a body that is not a
 * well-formed event.
 */
export function verifyEvent(
  key: Buffer,
  body: Buffer,
  headers: Record<string, string | string[] | undefined>,
): { webhookId: string; event: WebhookEvent } {
  const [id, timestamp, signatures] = ["webhook-id", "webhook-timestamp", "webhook-signature"].map((name) =>
    typeof headers[name] === "string" ? headers[name] : undefined,
  );
  if (!id || !timestamp || !signatures) throw unauthorized("Webhook signature rejected: Missing required headers");
  const problem = signatureProblem(key, id, timestamp, signatures, body);
  if (problem) throw unauthorized(`Webhook signature rejected: ${problem}`);
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
  return { webhookId: id, event: parsed as WebhookEvent };
}

/** The feeds an event asks to load: one for feed.closed, every listed one for crawl.completed. */
export function feedsOf(event: WebhookEvent): Feed[] {
  return event.type === "feed.closed" ? [event.feed] : event.feeds;
}
