// AutoThrottle follows Scrapy's algorithm (scrapy/extensions/throttle.py).
import assert from "node:assert/strict";
import { test } from "node:test";
import { nextThrottleDelay } from "../../runner/throttle.ts";

const s = { targetConcurrency: 1, minDelayMs: 0, maxDelayMs: 60_000 };

test("moves halfway from the current delay towards latency / targetConcurrency", () => {
  assert.equal(nextThrottleDelay(5000, 1000, 200, s), 3000);
  assert.equal(nextThrottleDelay(3000, 1000, 200, s), 2000);
  assert.equal(nextThrottleDelay(1000, 200, 200, { ...s, targetConcurrency: 4 }), 525);
});

test("never goes below the target delay (latency / concurrency)", () => {
  assert.equal(nextThrottleDelay(100, 1000, 200, s), 1000);
});

test("stays within [downloadDelay, maxDelay]", () => {
  assert.equal(nextThrottleDelay(100, 10, 200, { ...s, minDelayMs: 250 }), 250);
  assert.equal(nextThrottleDelay(50_000, 200_000, 200, s), 60_000);
});

test("a non-200 response can slow down but never speed up", () => {
  assert.equal(nextThrottleDelay(5000, 100, 503, s), 5000);
  assert.equal(nextThrottleDelay(1000, 4000, 503, s), 4000);
});
