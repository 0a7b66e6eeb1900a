// Whether a CrawlFeed's URI is one its CrawlJob's feeds could have written:
// the operator signs a webhook only for a URI that matches one of the job's
// feed URI templates (spec.feeds) with every placeholder bound to what this
// feed says — %(name)s the spider's name, %(job)s the CrawlJob's name,
// %(shard)d spec.shard, %(batch_id)d spec.batchId, %(time)s and
// %(batch_time)s a timestamp as the runner formats it — and, when the
// operator lists the buckets feeds may name, an S3 bucket on that list. A
// runner (whose image the job author chooses) can therefore not make the
// operator announce an object the job's own templates do not name.
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJobSpec } from "../../crds/schema/crawljob.ts";
import { parseS3Uri } from "../../lib/s3-uri.ts";
import { type ParsedTemplate, parseUriTemplate, renderUri, type UriParams } from "../../spec/uri-template.ts";

/** What the URI is checked against: the feeds and spider of one spec (the job's, or its running snapshot). */
export interface FeedSpecView {
  /** The CrawlJob's name (`%(job)s`). */
  job: string;
  spec: Pick<CrawlJobSpec, "feeds" | "spider">;
}

type Piece = ParsedTemplate["pieces"][number];

/** `formatUriTime`: 2026-11-25T10-00-00, and with millis for %(batch_time)s. */
const TIME = String.raw`\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}`;
const BATCH_TIME = String.raw`${TIME}\.\d{3}`;

const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A regular expression source for one piece of a template, with the feed's own values bound. */
function pieceSource(piece: Piece, values: Omit<UriParams, "time" | "batch_time">): string {
  if (typeof piece === "string") return literal(piece);
  if (piece.param === "time" || piece.param === "batch_time") {
    const core = piece.param === "time" ? TIME : BATCH_TIME;
    // printf padding of a timestamp wider than itself: spaces on one side.
    if (piece.width === 0) return core;
    return piece.flags.includes("-") ? `${core} *` : ` *${core}`;
  }
  const one: ParsedTemplate = { pieces: [piece], params: new Set([piece.param]), errors: [] };
  return literal(renderUri(one, { ...values, time: "", batch_time: "" }));
}

/** True when `uri` is what `template` renders to for this feed (any run time). */
export function matchesTemplate(template: string, uri: string, feed: CrawlFeed, view: FeedSpecView): boolean {
  const parsed = parseUriTemplate(template);
  if (parsed.errors.length > 0) return false;
  const values = {
    name: view.spec.spider?.name ?? "",
    job: view.job,
    shard: feed.spec.shard,
    batch_id: feed.spec.batchId,
  };
  const source = parsed.pieces.map((piece) => pieceSource(piece, values)).join("");
  return new RegExp(`^${source}$`).test(uri);
}

/** Why the feed's URI is not one of `view`'s feeds, or undefined when it is. */
export function templateProblem(feed: CrawlFeed, view: FeedSpecView): string | undefined {
  const uri = feed.spec.uri;
  const templates = Object.keys(view.spec.feeds ?? {});
  const named = feed.spec.feed;
  if (named !== undefined && !templates.includes(named)) {
    return `URI ${uri} names feed ${JSON.stringify(named)}, which is not in spec.feeds of CrawlJob ${view.job}`;
  }
  const candidates = named !== undefined ? [named] : templates;
  if (candidates.some((template) => matchesTemplate(template, uri, feed, view))) return undefined;
  const which = named !== undefined ? `feed ${JSON.stringify(named)}` : `any feed (${templates.join(", ")})`;
  return (
    `URI ${uri} does not match ${which} of CrawlJob ${view.job} ` +
    `for shard ${feed.spec.shard}, batch ${feed.spec.batchId}`
  );
}

/** Why the feed's S3 bucket is not one the operator allows, or undefined (no list: every bucket). */
export function bucketProblem(uri: string, buckets: readonly string[] | undefined): string | undefined {
  if (buckets === undefined || !/^s3:\/\//i.test(uri)) return undefined;
  let bucket: string;
  try {
    bucket = parseS3Uri(uri).bucket;
  } catch (err) {
    return `URI ${uri}: ${(err as Error).message}`;
  }
  if (buckets.includes(bucket)) return undefined;
  const allowed = buckets.length > 0 ? buckets.join(", ") : "none";
  return `URI ${uri} names bucket ${bucket}, which the operator does not allow (feed buckets: ${allowed})`;
}
