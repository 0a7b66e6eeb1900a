// Scrapy's AutoThrottle, as a pure function: aim for `latency / targetConcurrency`
// between requests to a slot, move halfway there each response, stay within
// [downloadDelay, maxDelay], and never speed up on a non-200 response.

export interface AutoThrottleSettings {
  targetConcurrency: number;
  /** downloadDelayMs: the floor. */
  minDelayMs: number;
  maxDelayMs: number;
}

/** The slot's next delay after a response that took `latencyMs` (to headers) with `status`. */
export function nextThrottleDelay(
  currentMs: number,
  latencyMs: number,
  status: number,
  s: AutoThrottleSettings,
): number {
  const target = latencyMs / s.targetConcurrency;
  let next = Math.max(target, (currentMs + target) / 2);
  next = Math.min(Math.max(s.minDelayMs, next), s.maxDelayMs);
  // A failed response must not make the crawl faster.
  if (status !== 200 && next <= currentMs) return currentMs;
  return next;
}
