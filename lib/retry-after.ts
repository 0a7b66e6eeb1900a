// Retry-After (RFC 9110 §10.2.3): delta-seconds or an HTTP-date. One parser
// for the crawler (429/503 from sites) and the delivery (webhook answers).

/** A Retry-After further away than this is clamped (a misbehaving server cannot park a request for weeks). */
export const MAX_RETRY_AFTER_MS = 24 * 3_600_000;

/**
 * Retry-After as milliseconds from `now`, clamped to [0, `maxMs`]; undefined
 * when absent or unparsable. Delta-seconds are whole non-negative numbers
 * (`120`); anything else must parse as an HTTP-date
 * (`Wed, 21 Oct 2015 07:28:00 GMT`).
 */
export function parseRetryAfter(
  value: string | readonly string[] | undefined,
  now: Date = new Date(),
  maxMs: number = MAX_RETRY_AFTER_MS,
): number | undefined {
  const raw = (typeof value === "string" ? value : value?.[0])?.trim();
  if (!raw) return undefined;
  let ms: number;
  if (/^\d+$/.test(raw)) {
    ms = Number(raw) * 1000;
  } else {
    // An HTTP-date names its month; without this, Date.parse reads "-5" as a year.
    const at = /[a-z]{3}/i.test(raw) ? Date.parse(raw) : Number.NaN;
    if (Number.isNaN(at)) return undefined;
    ms = at - now.getTime();
  }
  return Math.min(Math.max(ms, 0), maxMs);
}
