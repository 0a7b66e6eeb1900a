// The webhook POST against real HTTP servers on 127.0.0.1: signing verified by
// the standardwebhooks library, classification of answers, Retry-After,
// timeouts, refused redirects, the address guard (per-host concurrency: dispatcher.test.ts).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { Agent } from "undici";
import { createGuardedAgent } from "../../net/address-guard.ts";
import { crawlCompletedEvent, feedClosedEvent, feedWebhookId, s3Location } from "../../operator/delivery/payload.ts";
import { classifyResponse, describeUrl, WebhookSender } from "../../operator/delivery/sender.ts";
import { signatureHeaders, webhookSigner } from "../../operator/delivery/signing.ts";
import { startReceiver } from "./receiver.ts";

const SECRET = `whsec_${randomBytes(32).toString("base64")}`;
const spec = {
  uri: "s3://crawl-data/books/2026/part-00001.jsonl.gz",
  batchId: 1,
  shard: 0,
  format: "jsonlines",
  compression: "gzip",
  items: 5000,
  bytes: 412331,
  sha256: "a".repeat(64),
  closedAt: "2026-11-25T10:03:12Z",
};
const job = { namespace: "crawl", name: "books", uid: "0b7c1c1e-1111-2222-3333-444455556666" };

describe("payload", () => {
  it("feed.closed carries the DESIGN.md fields and a stable id", () => {
    const event = feedClosedEvent(job, spec);
    assert.equal(event.id, feedWebhookId(job.uid, spec.uri));
    assert.match(event.id, /^0b7c1c1e-1111-2222-3333-444455556666:[0-9a-f]{64}$/);
    assert.deepEqual(event, {
      type: "feed.closed",
      id: event.id,
      crawlJob: job,
      feed: {
        uri: spec.uri,
        bucket: "crawl-data",
        key: "books/2026/part-00001.jsonl.gz",
        format: "jsonlines",
        compression: "gzip",
        items: 5000,
        bytes: 412331,
        sha256: spec.sha256,
        batchId: 1,
        shard: 0,
      },
    });
    assert.equal(JSON.stringify(feedClosedEvent(job, { ...spec })), JSON.stringify(event));
    assert.equal(
      feedClosedEvent(job, { ...spec, encoding: "cp1252" }).feed.encoding,
      "cp1252",
      "a non-UTF-8 file says so",
    );
    const csv = { ...spec, format: "csv", csvDelimiter: ";", csvQuoteChar: "'", csvHeader: false };
    assert.deepEqual(
      feedClosedEvent(job, csv).feed,
      { ...event.feed, format: "csv", csvDelimiter: ";", csvQuoteChar: "'", csvHeader: false },
      "a CSV file's dialect, when not the default, says so",
    );
    const keys = Object.keys(feedClosedEvent(job, { ...csv, csvHeader: true }).feed);
    assert.equal(keys.includes("csvHeader"), false, "csvHeader is sent only when false");
    assert.equal(s3Location("file:///tmp/x.jsonl"), undefined);
  });

  it("crawl.completed lists every feed in a stable order", () => {
    const a = { ...spec, uri: "s3://b/k2", batchId: 2 };
    const b = { ...spec, uri: "s3://b/k1", batchId: 1, shard: 1 };
    const c = { ...spec, uri: "s3://b/k0", batchId: 1 };
    const event = crawlCompletedEvent(job, "s3://b/_manifest.json", [a, b, c]);
    assert.equal(event.id, `${job.uid}:completed`);
    assert.equal(event.manifest, "s3://b/_manifest.json");
    assert.deepEqual(
      event.feeds.map((f) => f.uri),
      ["s3://b/k0", "s3://b/k2", "s3://b/k1"],
    );
    assert.equal(JSON.stringify(crawlCompletedEvent(job, "s3://b/_manifest.json", [c, b, a])), JSON.stringify(event));
  });
});

describe("signing", () => {
  it("a whsec_ secret and a raw secret both verify with standardwebhooks", async () => {
    const raw = randomBytes(24);
    for (const [secret, receiverSecret] of [
      [Buffer.from(SECRET), SECRET],
      [raw, new Uint8Array(raw)],
    ] as const) {
      const receiver = await startReceiver(receiverSecret);
      try {
        const body = JSON.stringify(feedClosedEvent(job, spec));
        const headers = signatureHeaders(webhookSigner(secret), "id-1", new Date(), body);
        const res = await fetch(receiver.url, { method: "POST", body, headers });
        assert.equal(res.status, 202);
        assert.equal(receiver.received[0]?.verified, true, receiver.received[0]?.verifyError);
      } finally {
        await receiver.close();
      }
    }
  });

  it("refuses an empty secret and a whsec_ secret that is not base64", () => {
    assert.throws(() => webhookSigner(new Uint8Array()), /empty/);
    assert.throws(() => webhookSigner(Buffer.from("whsec_not base64!")), /not base64/);
  });
});

describe("classifyResponse", () => {
  it("maps codes to outcomes", () => {
    assert.equal(classifyResponse(200, undefined, "").kind, "delivered");
    assert.equal(classifyResponse(204, undefined, "").kind, "delivered");
    assert.equal(classifyResponse(409, undefined, "").kind, "conflict");
    for (const code of [408, 429, 500, 502, 503, 504])
      assert.equal(classifyResponse(code, undefined, "").kind, "retry");
    for (const code of [301, 302, 400, 401, 403, 404, 410, 422])
      assert.equal(classifyResponse(code, undefined, "").kind, "reject");
    assert.deepEqual(classifyResponse(503, 5000, "busy"), {
      kind: "retry",
      code: 503,
      error: "HTTP 503: busy",
      retryAfterMs: 5000,
    });
  });

  it("describeUrl drops credentials and query", () => {
    assert.equal(
      describeUrl("https://user:pw@backend.example:8443/ingest?token=abc"),
      "https://backend.example:8443/ingest",
    );
  });
});

describe("WebhookSender", () => {
  const open = new Agent();
  const sender = new WebhookSender();
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  before(async () => {
    receiver = await startReceiver(SECRET);
  });
  after(async () => {
    await receiver.close();
    await open.close();
  });

  function post(body = "{}", timeoutMs = 5000, dispatcher = open as Agent, url = receiver.url, quoteBody = true) {
    const headers = signatureHeaders(webhookSigner(Buffer.from(SECRET)), "id-x", new Date(), body);
    return sender.post({ url, body, headers, timeoutMs, dispatcher, quoteBody });
  }

  it("2xx is delivered; the receiver verified the signature", async () => {
    receiver.respond = () => ({ status: 200 });
    assert.deepEqual(await post('{"a":1}'), { kind: "delivered", code: 200 });
    assert.equal(receiver.received.at(-1)?.verified, true);
    assert.equal(receiver.received.at(-1)?.headers["content-type"], "application/json");
  });

  it("503 with Retry-After is a retry at that time, with the body's start in the error", async () => {
    receiver.respond = () => ({ status: 503, headers: { "retry-after": "3" }, body: "down for maintenance" });
    assert.deepEqual(await post(), {
      kind: "retry",
      code: 503,
      error: "HTTP 503: down for maintenance",
      retryAfterMs: 3000,
    });
  });

  it("never quotes the answer of a webhook that may be on a private network", async () => {
    receiver.respond = () => ({ status: 400, body: "internal admin console: token=abc" });
    const outcome = await post("{}", 5000, open, receiver.url, false);
    assert.equal(outcome.kind, "reject");
    const error = outcome.kind === "reject" ? outcome.error : "";
    assert.doesNotMatch(error, /admin console|token/);
    assert.match(error, /^HTTP 400: \(response body not recorded/);
  });

  it("a redirect is not followed and fails", async () => {
    receiver.respond = () => ({ status: 307, headers: { location: "http://127.0.0.1:1/" } });
    const outcome = await post();
    assert.equal(outcome.kind, "reject");
    assert.equal(receiver.received.length > 0, true);
  });

  it("a backend that does not answer in time is a retry", async () => {
    receiver.respond = () => new Promise((resolve) => setTimeout(() => resolve({ status: 200 }), 1500));
    const outcome = await post("{}", 200);
    assert.equal(outcome.kind, "retry");
    assert.match(outcome.kind === "retry" ? outcome.error : "", /Timed out after 200 ms/);
  });

  it("a refused connection is a retry", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const outcome = await post("{}", 2000, open, `http://127.0.0.1:${port}/x`);
    assert.equal(outcome.kind, "retry");
    assert.match(outcome.kind === "retry" ? outcome.error : "", /ECONNREFUSED/);
  });

  it("the address guard refuses a loopback backend for good", async () => {
    const guarded = createGuardedAgent(false);
    try {
      const outcome = await post("{}", 2000, guarded);
      assert.equal(outcome.kind, "reject");
      assert.match(outcome.kind === "reject" ? outcome.error : "", /127\.0\.0\.1.*not a public address/);
    } finally {
      await guarded.close();
    }
  });

  it("rejects a URL that is not http(s)", async () => {
    assert.equal((await post("{}", 1000, open, "ftp://127.0.0.1/x")).kind, "reject");
  });
});
