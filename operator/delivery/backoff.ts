// Retry timing for webhook deliveries: exponential backoff with full jitter
// (AWS Architecture Blog's "full jitter": a uniform draw below the exponential
// ceiling spreads retries of many feeds against one recovering backend), and
// the backend's own Retry-After when it sends one.

export interface BackoffPolicy {
  /** Ceiling of the first retry's delay; doubles per attempt. */
  baseMs: number;
  /** Largest ceiling. */
  capMs: number;
  /** Floor of every delay, so a full-jitter draw near 0 never becomes a hot loop. */
  minMs: number;
}

/** 5 s, 10 s, 20 s … up to 1 h ceilings: 12 attempts span about 2.5 h at most. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 5_000, capMs: 3_600_000, minMs: 1_000 };

/** A Retry-After further away than this is clamped (a misbehaving backend cannot park a feed for weeks). */
export const MAX_RETRY_AFTER_MS = 24 * 3_600_000;

/** The delay before the retry that follows failed attempt number `attempt` (1-based). */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 40);
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** exponent);
  return Math.max(policy.minMs, Math.floor(random() * ceiling));
}

/**
 * Retry-After as milliseconds from `now`: delta-seconds or an HTTP-date
 * (RFC 9110 §10.2.3). Undefined when absent or unparsable; clamped to [0, 24 h].
 */
export function parseRetryAfter(value: string | string[] | undefined, now: Date): number | undefined {
  const raw = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!raw) return undefined;
  let ms: number;
  if (/^\d+$/.test(raw)) {
    ms = Number(raw) * 1000;
  } else {
    const at = Date.parse(raw);
    if (Number.isNaN(at)) return undefined;
    ms = at - now.getTime();
  }
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}
