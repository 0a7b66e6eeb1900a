// The one backoff formula and the one Retry-After parser (lib/).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backoffDelayMs } from "../../lib/backoff.ts";
import { MAX_RETRY_AFTER_MS, parseRetryAfter } from "../../lib/retry-after.ts";

const now = new Date("2026-11-25T12:00:00Z");

describe("backoffDelayMs", () => {
  it("full jitter below a doubling ceiling, with a floor and a cap", () => {
    const p = { baseMs: 1000, capMs: 8000, minMs: 100 };
    assert.equal(
      backoffDelayMs(1, p, () => 0.999999),
      999,
    );
    assert.equal(
      backoffDelayMs(3, p, () => 0.5),
      2000,
    );
    assert.equal(
      backoffDelayMs(10, p, () => 0.5),
      4000,
    );
    assert.equal(
      backoffDelayMs(2, p, () => 0),
      100,
    );
    for (let attempt = 1; attempt < 60; attempt++) {
      const d = backoffDelayMs(attempt, p);
      assert.ok(d >= 100 && d <= 8000, `attempt ${attempt}: ${d}`);
    }
  });

  it("equal jitter stays in the upper half of the ceiling", () => {
    const p = { baseMs: 200, capMs: 10_000, jitter: "equal" as const };
    assert.equal(
      backoffDelayMs(1, p, () => 0),
      100,
    );
    assert.equal(
      backoffDelayMs(3, p, () => 0.999999),
      799,
    );
    assert.equal(
      backoffDelayMs(30, p, () => 0),
      5000,
    );
  });

  it("no jitter is the exact doubling ceiling (client-go's per-item limiter)", () => {
    const p = { baseMs: 5, capMs: 1000, jitter: "none" as const };
    assert.deepEqual(
      [1, 2, 3, 4, 9, 1000].map((a) => backoffDelayMs(a, p)),
      [5, 10, 20, 40, 1000, 1000],
    );
    assert.equal(backoffDelayMs(0, p), 5, "attempt 0 is treated as the first");
  });
});

describe("parseRetryAfter", () => {
  it("parses delta-seconds or an HTTP date, clamped", () => {
    assert.equal(parseRetryAfter("120", now), 120_000);
    assert.equal(parseRetryAfter(" 7 ", now), 7_000);
    assert.equal(parseRetryAfter("Wed, 25 Nov 2026 12:01:00 GMT", now), 60_000);
    assert.equal(parseRetryAfter("Wed, 25 Nov 2026 11:00:00 GMT", now), 0);
    assert.equal(parseRetryAfter("99999999", now), MAX_RETRY_AFTER_MS);
    assert.equal(parseRetryAfter("120", now, 60_000), 60_000, "a caller's own cap");
    assert.equal(parseRetryAfter(["3", "9"], now), 3_000, "the first of repeated headers");
  });

  it("refuses what is neither form", () => {
    for (const v of ["soon", "-5", "", "   ", undefined, []])
      assert.equal(parseRetryAfter(v as string | undefined, now), undefined, JSON.stringify(v));
  });
});
