// `spider.sitemapModifiedSince`: an RFC 3339 date or date-time, or an ISO 8601
// duration counted back from the crawl's start. Shared by validation and the runner.

const DURATION = /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;
const DATE = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

/**
 * The cutoff (ms since the epoch) `value` names, relative to `now` for a
 * duration; a string describing the problem when it is neither form.
 */
export function modifiedSinceCutoff(value: string, now: number): number | string {
  const d = DURATION.exec(value);
  if (d && value !== "P" && value !== "PT" && !value.endsWith("T")) {
    const [w, days, h, m, s] = d.slice(1).map((x) => Number(x ?? 0)) as [number, number, number, number, number];
    return now - ((((w * 7 + days) * 24 + h) * 60 + m) * 60 + s) * 1000;
  }
  if (DATE.test(value)) {
    const t = Date.parse(value);
    if (Number.isFinite(t)) return t;
  }
  return `${JSON.stringify(value)} is neither an RFC 3339 date or date-time (2025-01-31, 2025-01-31T00:00:00Z) nor an ISO 8601 duration (P7D, PT12H)`;
}
