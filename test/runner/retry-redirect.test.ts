// The retry and redirect policy: which answers retry, how long the crawler
// waits (backoff around 0.5 s × 2ⁿ, Retry-After capped at 120 s), and where a
// redirect leads.
import assert from "node:assert/strict";
import { test } from "node:test";
import { newRequest } from "../../runner/request.ts";
import { RetryPolicy, redirectDecision } from "../../runner/retry-redirect.ts";

const policy = new RetryPolicy(3, new Set([503, 429, 500]));
const at = (retries: number) => newRequest("http://a.example/", 0, { retries });

test("retries the configured codes only, and only retryTimes times", () => {
  assert.ok(policy.retriesStatus(503));
  assert.ok(!policy.retriesStatus(404));
  assert.notEqual(policy.delayMs(at(2)), undefined);
  assert.equal(policy.delayMs(at(3)), undefined);
  assert.equal(new RetryPolicy(0, new Set()).delayMs(at(0)), undefined);
});

test("backoff doubles per retry, between ⅓ and ⅔ s × 2ⁿ (mean 0.5 s × 2ⁿ)", () => {
  for (const n of [0, 1, 2]) {
    const low = policy.delayMs(at(n), undefined, () => 0) as number;
    const high = policy.delayMs(at(n), undefined, () => 0.999999) as number;
    assert.ok(Math.abs(low - 333 * 2 ** n) <= 2 ** n, `retry ${n}: lowest ${low}`);
    assert.ok(Math.abs(high - 667 * 2 ** n) <= 2 ** n, `retry ${n}: highest ${high}`);
  }
  const many = new RetryPolicy(20, new Set());
  assert.ok((many.delayMs(at(15), undefined, () => 0.999999) as number) <= 120_000, "capped at 120 s");
});

test("Retry-After on 429 and 503, in seconds or as a date, capped at 120 s", () => {
  const res = (status: number, retryAfter?: string) => ({
    status,
    headers: retryAfter === undefined ? {} : { "retry-after": retryAfter },
  });
  assert.equal(policy.delayMs(at(0), res(429, "7")), 7000);
  assert.equal(policy.delayMs(at(0), res(503, "86400")), 120_000);
  const date = new Date(Date.now() + 30_000).toUTCString();
  const fromDate = policy.delayMs(at(0), res(503, date)) as number;
  assert.ok(fromDate > 25_000 && fromDate <= 30_000, `${fromDate} ms`);
  // Other codes, and unparsable values, fall back to the backoff.
  assert.ok((policy.delayMs(at(0), res(500, "60")) as number) < 1000);
  assert.ok((policy.delayMs(at(0), res(429, "soon")) as number) < 1000);
});

test("the retry request skips the duplicate filter and counts the retry", () => {
  const next = RetryPolicy.next(newRequest("http://a.example/p", 2, { meta: { k: 1 } }));
  assert.deepEqual(next, { ...newRequest("http://a.example/p", 2, { meta: { k: 1 } }), retries: 1, dontFilter: true });
});

test("a redirect keeps depth, headers and meta; 301-303 turn POST into GET, 307/308 keep it", () => {
  const post = newRequest("http://a.example/form", 3, {
    method: "POST",
    body: "q=1",
    headers: { "x-k": "v" },
    meta: { m: 1 },
  });
  const d = redirectDecision(post, { status: 302, location: "http://a.example/done" }, 20);
  assert.equal(d.kind, "follow");
  if (d.kind !== "follow") return;
  assert.deepEqual(d.next, {
    url: "http://a.example/done",
    method: "GET",
    depth: 3,
    retries: 0,
    redirects: 1,
    redirectChain: ["http://a.example/form"],
    headers: { "x-k": "v" },
    meta: { m: 1 },
  });
  const kept = redirectDecision(post, { status: 307, location: "http://a.example/again" }, 20);
  assert.ok(kept.kind === "follow" && kept.next.method === "POST" && kept.next.body === "q=1");
});

test("a redirect without a usable Location, past redirectMaxTimes, or back into its chain is cut", () => {
  const req = newRequest("http://a.example/b", 0, { redirects: 2, redirectChain: ["http://a.example/a?y=2&x=1"] });
  assert.deepEqual(redirectDecision(req, { status: 301, location: "" }, 20), { kind: "invalid" });
  assert.deepEqual(redirectDecision(req, { status: 301, location: "http://a.example/c" }, 2), { kind: "tooMany" });
  assert.deepEqual(redirectDecision(req, { status: 302, location: "http://a.example/a?x=1&y=2#f" }, 20), {
    kind: "loop",
    target: "http://a.example/a?x=1&y=2",
  });
  assert.equal(redirectDecision(req, { status: 302, location: "http://a.example/b" }, 20).kind, "loop");
});
