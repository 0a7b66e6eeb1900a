// The delivery state machine and its timing, as pure functions.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ownershipProblem } from "../../operator/delivery/ownership.ts";
import { afterAttempt, DEFAULT_BACKOFF, decide, redeliver } from "../../operator/delivery/state.ts";

const now = new Date("2026-11-25T12:00:00Z");
const policy = { maxAttempts: 3, backoff: DEFAULT_BACKOFF };

describe("decide", () => {
  it("claims a new feed as Sending, attempt 1", () => {
    assert.deepEqual(decide(undefined, now, 3), {
      action: "send",
      claim: { state: "Sending", attempts: 1 },
      resumed: false,
    });
  });

  it("waits for a Pending feed whose nextAttemptAt is in the future", () => {
    const d = decide({ state: "Pending", attempts: 1, nextAttemptAt: "2026-11-25T12:00:30Z" }, now, 3);
    assert.deepEqual(d, { action: "wait", delayMs: 30_000 });
  });

  it("sends a due Pending feed with attempts+1, keeping the last error for kubectl", () => {
    const d = decide(
      {
        state: "Pending",
        attempts: 1,
        nextAttemptAt: "2026-11-25T11:59:00Z",
        lastError: "HTTP 503",
        lastResponseCode: 503,
      },
      now,
      3,
    );
    assert.deepEqual(d, {
      action: "send",
      claim: { state: "Sending", attempts: 2, lastError: "HTTP 503", lastResponseCode: 503 },
      resumed: false,
    });
  });

  it("resends a feed found in Sending (the claimer died) under a new attempt number", () => {
    const d = decide({ state: "Sending", attempts: 2 }, now, 3);
    assert.equal(d.action, "send");
    assert.ok(d.action === "send" && d.resumed && d.claim.attempts === 3 && d.claim.state === "Sending");
    assert.match(d.action === "send" ? (d.claim.lastError ?? "") : "", /Attempt 2 was interrupted/);
  });

  it("redoes an interrupted last attempt once, then fails", () => {
    assert.equal(decide({ state: "Sending", attempts: 3 }, now, 3).action, "send");
    const d = decide({ state: "Sending", attempts: 4 }, now, 3);
    assert.equal(d.action, "fail");
    assert.ok(d.action === "fail" && d.status.state === "Failed");
  });

  it("fails a Pending feed that has no attempts left (maxAttempts lowered)", () => {
    const d = decide({ state: "Pending", attempts: 3, lastError: "HTTP 500" }, now, 3);
    assert.ok(
      d.action === "fail" &&
        d.status.state === "Failed" &&
        /Gave up after 3 attempts: HTTP 500/.test(d.status.lastError!),
    );
  });

  it("leaves Delivered and Failed alone", () => {
    assert.deepEqual(decide({ state: "Delivered", attempts: 1 }, now, 3), { action: "done" });
    assert.deepEqual(decide({ state: "Failed", attempts: 1 }, now, 3), { action: "done" });
  });
});

describe("afterAttempt", () => {
  const sending = { state: "Sending" as const, attempts: 1 };

  it("2xx and 409 are Delivered with deliveredAt", () => {
    assert.deepEqual(afterAttempt(sending, { kind: "delivered", code: 202 }, now, policy), {
      state: "Delivered",
      attempts: 1,
      lastResponseCode: 202,
      deliveredAt: now.toISOString(),
    });
    assert.equal(afterAttempt(sending, { kind: "conflict", code: 409 }, now, policy).state, "Delivered");
  });

  it("a retryable answer goes back to Pending with a jittered nextAttemptAt", () => {
    const s = afterAttempt(sending, { kind: "retry", code: 503, error: "HTTP 503" }, now, policy, () => 0.5);
    assert.equal(s.state, "Pending");
    assert.equal(s.lastResponseCode, 503);
    assert.equal(s.nextAttemptAt, new Date(now.getTime() + 2_500).toISOString());
  });

  it("Retry-After wins over the backoff", () => {
    const s = afterAttempt(
      sending,
      { kind: "retry", code: 429, error: "HTTP 429", retryAfterMs: 7_000 },
      now,
      policy,
      () => 0.99,
    );
    assert.equal(s.nextAttemptAt, new Date(now.getTime() + 7_000).toISOString());
  });

  it("the last allowed retryable attempt fails", () => {
    const s = afterAttempt({ state: "Sending", attempts: 3 }, { kind: "retry", error: "ECONNREFUSED" }, now, policy);
    assert.equal(s.state, "Failed");
    assert.match(s.lastError!, /Gave up after 3 attempts: ECONNREFUSED/);
  });

  it("a rejecting answer fails at once", () => {
    const s = afterAttempt(sending, { kind: "reject", code: 400, error: "HTTP 400: bad" }, now, policy);
    assert.deepEqual(s, { state: "Failed", attempts: 1, lastError: "HTTP 400: bad", lastResponseCode: 400 });
  });

  it("redeliver starts over with a fresh budget", () => {
    assert.deepEqual(redeliver({ state: "Failed", attempts: 12, lastResponseCode: 400, lastError: "x" }), {
      state: "Pending",
      attempts: 0,
      lastResponseCode: 400,
    });
  });
});

describe("ownershipProblem", () => {
  const job = {
    apiVersion: "feedcrawl.io/v1alpha1" as const,
    kind: "CrawlJob" as const,
    metadata: { name: "books", namespace: "crawl", uid: "u1" },
    spec: { spider: { name: "books", startUrls: ["https://books.example/"] } },
  };
  const feed = (labels: Record<string, string>, ownerUid = "u1", shard = 0) => ({
    apiVersion: "feedcrawl.io/v1alpha1" as const,
    kind: "CrawlFeed" as const,
    metadata: {
      name: "books-0123456789",
      namespace: "crawl",
      labels,
      ownerReferences: [
        { apiVersion: "feedcrawl.io/v1alpha1", kind: "CrawlJob", name: "books", uid: ownerUid, controller: true },
      ],
    },
    spec: {
      uri: "s3://b/k",
      batchId: 1,
      shard,
      format: "jsonlines",
      items: 1,
      bytes: 1,
      sha256: "a".repeat(64),
      closedAt: "2026-11-25T10:00:00Z",
    },
  });
  const ok = { "feedcrawl.io/crawljob": "books", "feedcrawl.io/shard": "0" };

  it("accepts a feed labelled and controlled by its CrawlJob", () => {
    assert.equal(ownershipProblem(feed(ok), job), undefined);
  });

  it("names what does not match", () => {
    assert.match(ownershipProblem(feed({}), job)!, /no feedcrawl\.io\/crawljob label/);
    assert.match(ownershipProblem(feed(ok), undefined)!, /CrawlJob crawl\/books .* does not exist/);
    assert.match(
      ownershipProblem(feed({ ...ok, "feedcrawl.io/crawljob": "other" }), job)!,
      /does not name CrawlJob books/,
    );
    assert.match(ownershipProblem(feed(ok, "u2"), job)!, /not controlled by CrawlJob books \(uid u1\)/);
    assert.match(ownershipProblem(feed(ok, "u1", 3), job)!, /feedcrawl\.io\/shard=0 does not match spec\.shard 3/);
  });
});
