// Unit checks of the backend's webhook verification and config: the backend
// reads the shared secret exactly as the operator's signer does.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { configFromEnv } from "../../examples/ingest-backend/config.ts";
import { IngestError } from "../../examples/ingest-backend/errors.ts";
import { feedsOf, verifyEvent, webhookKey } from "../../examples/ingest-backend/webhook.ts";
import { signatureHeaders, webhookSigner } from "../../operator/delivery/signing.ts";

const event = {
  type: "feed.closed",
  id: "uid:abc",
  crawlJob: { namespace: "crawl", name: "books", uid: "uid" },
  feed: {
    uri: "s3://b/k.jsonl.gz",
    bucket: "b",
    key: "k.jsonl.gz",
    format: "jsonlines",
    compression: "gzip",
    items: 2,
    bytes: 10,
    sha256: "a".repeat(64),
    batchId: 1,
    shard: 0,
  },
};

function signed(secret: string, body: string, at = new Date()) {
  return signatureHeaders(webhookSigner(new TextEncoder().encode(secret)), "uid:abc", at, body);
}

function status(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    if (err instanceof IngestError) return err.status;
    throw err;
  }
  return 200;
}

describe("backend webhook verification", () => {
  for (const secret of [
    `whsec_${Buffer.from("0123456789abcdef0123456789abcdef").toString("base64")}`,
    "a raw shared secret, not base64 ✓",
  ]) {
    it(`accepts what the operator signs with a ${secret.startsWith("whsec_") ? "whsec_" : "raw"} secret`, () => {
      const body = JSON.stringify(event);
      const { webhookId, event: parsed } = verifyEvent(webhookKey(secret), Buffer.from(body), signed(secret, body));
      assert.equal(webhookId, "uid:abc");
      assert.deepEqual(feedsOf(parsed), [event.feed]);
    });
  }

  it("rejects a changed body, a missing header and an old timestamp with 401", () => {
    const secret = "shared";
    const body = JSON.stringify(event);
    const headers = signed(secret, body);
    const key = webhookKey(secret);
    assert.equal(
      status(() => verifyEvent(key, Buffer.from(body.replace("books", "bookz")), headers)),
      401,
    );
    assert.equal(
      status(() => verifyEvent(key, Buffer.from(body), { ...headers, "webhook-signature": undefined })),
      401,
    );
    const old = signed(secret, body, new Date(Date.now() - 301_000));
    assert.equal(
      status(() => verifyEvent(key, Buffer.from(body), old)),
      401,
    );
  });

  it("accepts the matching one of several signatures (a rotated secret) and nothing forged", () => {
    const body = JSON.stringify(event);
    const key = webhookKey("new");
    const { "webhook-signature": current, ...rest } = signed("new", body);
    const { "webhook-signature": previous } = signed("old", body);
    const rotated = { ...rest, "webhook-signature": `v2,AAAA ${previous} v1,!!! ${current}` };
    assert.equal(
      status(() => verifyEvent(key, Buffer.from(body), rotated)),
      200,
    );
    assert.equal(
      status(() => verifyEvent(key, Buffer.from(body), { ...rest, "webhook-signature": previous })),
      401,
    );
    const forged = Buffer.from(current.slice(3), "base64");
    forged[0] = (forged[0] as number) ^ 1;
    const headers = { ...rest, "webhook-signature": `v1,${forged.toString("base64")}` };
    assert.equal(
      status(() => verifyEvent(key, Buffer.from(body), headers)),
      401,
    );
  });

  it("rejects a signed body that is not a valid event with 400, naming the field", () => {
    const secret = "shared";
    const key = webhookKey(secret);
    const body = JSON.stringify({ ...event, feed: { ...event.feed, items: -1 } });
    try {
      verifyEvent(key, Buffer.from(body), signed(secret, body));
      assert.fail("accepted");
    } catch (err) {
      assert.ok(err instanceof IngestError);
      assert.equal(err.status, 400);
      assert.match(err.message, /\/feed\/items/);
    }
  });
});

describe("backend config", () => {
  it("needs WEBHOOK_SECRET, defaults to SQLite, and path-style S3 when an endpoint is set", () => {
    assert.throws(() => configFromEnv({}), /WEBHOOK_SECRET/);
    const config = configFromEnv({ WEBHOOK_SECRET: "s", S3_ENDPOINT: "http://127.0.0.1:9000" });
    assert.equal(config.databaseUrl, undefined);
    assert.equal(config.sqlitePath, "ingest.sqlite");
    assert.deepEqual(config.s3, { endpoint: "http://127.0.0.1:9000", region: "us-east-1", forcePathStyle: true });
    assert.throws(() => configFromEnv({ WEBHOOK_SECRET: "s", COPY_CHUNK_ROWS: "0" }), /COPY_CHUNK_ROWS/);
  });
});
