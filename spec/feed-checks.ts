// Checks spec.feeds and spec.storage before any crawling, beyond what their
// schema says; every problem is reported with its field path, e.g.
// spec.feeds["s3://b/%(name)s.jsonl"].batchItemCount. No TypeBox: the
// operator runs these alone (the API server enforced the schema); feeds.ts
// adds the schema's errors for `feedcrawl validate` and the exporter.
import type { FieldError } from "../crds/schema/common.ts";
import type { Feeds, StorageSpec } from "../crds/schema/feeds.ts";
import { FEED_FORMATS, POSTPROCESSORS, type Postprocessor } from "../crds/schema/names.ts";
import { expectedExtension, levelRange } from "./compression.ts";
import { parseFeedLocation } from "./feed-location.ts";
import { postprocessingHint } from "./scrapy-keys.ts";
import { isBatchTemplate, parseUriTemplate, renderUri } from "./uri-template.ts";

export interface ValidateContext {
  /** spec.runner.parallelism: with several shards every feed URI must hold %(shard)d. */
  parallelism?: number;
}

/** The schema's errors for spec.storage and one feed's options, appended to `errors` (feeds.ts: TypeBox). */
export interface FeedSchemaChecks {
  storage(value: unknown, base: string, errors: FieldError[]): void;
  /** Skips the errors at the paths `skip` names (a friendlier message is there already). */
  options(value: unknown, base: string, errors: FieldError[], skip: (path: string) => boolean): void;
}

const FORMAT_ONLY: [string, readonly unknown[], string][] = [
  ["sortKeys", ["json", "jsonlines", "jsonl", "jl"], "json and jsonlines"],
  ["ensureAscii", ["json", "jsonlines", "jsonl", "jl"], "json and jsonlines"],
  ["csvDelimiter", ["csv"], "csv"],
  ["csvQuoteChar", ["csv"], "csv"],
  ["csvJoinMultivalued", ["csv"], "csv"],
  ["csvIncludeHeader", ["csv"], "csv"],
  ["xmlRootElement", ["xml"], "xml"],
  ["xmlItemElement", ["xml"], "xml"],
];

/** Options that only one format reads, set on another (Scrapy would pass them to an exporter that refuses them). */
function formatOptionErrors(opts: Record<string, unknown>, base: string): FieldError[] {
  const errors: FieldError[] = [];
  if (!(FEED_FORMATS as readonly unknown[]).includes(opts.format)) return errors;
  if (opts.format === "jsonlines" || opts.format === "jsonl" || opts.format === "jl") {
    if (typeof opts.indent === "number" && opts.indent > 0) {
      errors.push({ path: `${base}.indent`, message: "JSON Lines cannot be indented (one item per line)" });
    }
  }
  for (const [key, formats, names] of FORMAT_ONLY) {
    if (opts[key] !== undefined && !formats.includes(opts.format))
      errors.push({ path: `${base}.${key}`, message: `applies to ${names} feeds only, not ${String(opts.format)}` });
  }
  if (typeof opts.csvQuoteChar === "string" && opts.csvQuoteChar === opts.csvDelimiter)
    errors.push({ path: `${base}.csvQuoteChar`, message: "the quote character cannot be the delimiter" });
  return errors;
}

const SAMPLE = { name: "spider", job: "job", time: "2000-01-01T00-00-00", batch_id: 1, batch_time: "t", shard: 0 };

/**
 * Every problem of spec.feeds and spec.storage beyond their schema; with
 * `schema`, also its errors (at the same places in the list, so that a
 * friendlier message wins over the schema's at the same path).
 */
export function feedErrors(
  feeds: Feeds | undefined,
  storage: StorageSpec | undefined,
  context: ValidateContext = {},
  schema?: FeedSchemaChecks,
): FieldError[] {
  const errors: FieldError[] = [];
  if (storage !== undefined) {
    schema?.storage(storage, "spec.storage", errors);
    const endpoint = storage?.s3?.endpoint;
    if (typeof endpoint === "string") {
      try {
        const url = new URL(endpoint);
        if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error();
      } catch {
        errors.push({ path: "spec.storage.s3.endpoint", message: `not an http(s) URL: ${JSON.stringify(endpoint)}` });
      }
    }
    const sse = storage?.s3?.serverSideEncryption;
    if (storage?.s3?.sseKmsKeyId !== undefined && (sse === undefined || sse === "AES256")) {
      errors.push({
        path: "spec.storage.s3.sseKmsKeyId",
        message: "sseKmsKeyId needs serverSideEncryption aws:kms or aws:kms:dsse",
      });
    }
  }
  if (feeds === undefined) return errors;
  if (feeds === null || typeof feeds !== "object" || Array.isArray(feeds)) {
    errors.push({ path: "spec.feeds", message: "must be a map of URI template to feed options" });
    return errors;
  }
  const rendered = new Map<string, string>();
  for (const [uri, raw] of Object.entries(feeds as Record<string, unknown>)) {
    const base = `spec.feeds[${JSON.stringify(uri)}]`;
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      errors.push({ path: base, message: "feed options must be an object (at least { format })" });
      continue;
    }
    const opts = raw as Record<string, unknown>;
    // Friendlier messages than the schema's for the common mistakes.
    const friendly = new Set<string>();
    if (opts.format === undefined) {
      errors.push({ path: `${base}.format`, message: `required: one of ${FEED_FORMATS.join(", ")}` });
      friendly.add(`${base}.format`);
    } else if (!(FEED_FORMATS as readonly unknown[]).includes(opts.format)) {
      errors.push({
        path: `${base}.format`,
        message: `unknown format ${JSON.stringify(opts.format)}: one of ${FEED_FORMATS.join(", ")}`,
      });
      friendly.add(`${base}.format`);
    }
    if (opts.fields !== null && typeof opts.fields === "object" && !Array.isArray(opts.fields)) {
      errors.push({
        path: `${base}.fields`,
        message:
          "a map of field to column name (Scrapy's FEED_EXPORT_FIELDS dict form) is not offered: list the fields (fields: [foo, bar]) and give the extract rule's fields the column names",
      });
      friendly.add(`${base}.fields`);
    }
    const post = Array.isArray(opts.postprocessing) ? (opts.postprocessing as unknown[]) : [];
    post.forEach((p, i) => {
      if (!(POSTPROCESSORS as readonly unknown[]).includes(p)) {
        const path = `${base}.postprocessing[${i}]`;
        const hint = postprocessingHint(p);
        errors.push({
          path,
          message: `unknown postprocessing ${JSON.stringify(p)}: ${hint ?? `one of ${POSTPROCESSORS.join(", ")}`}`,
        });
        friendly.add(path);
      }
    });
    schema?.options(raw, base, errors, (path) => friendly.has(path) || path === base);

    const parsed = parseUriTemplate(uri);
    for (const message of parsed.errors) errors.push({ path: base, message: `URI template: ${message}` });
    let location: ReturnType<typeof parseFeedLocation> | undefined;
    try {
      location = parseFeedLocation(uri);
    } catch (err) {
      errors.push({ path: base, message: `URI: ${(err as Error).message}` });
    }
    if (location?.kind === "s3" && location.bucket.includes("%(")) {
      errors.push({
        path: base,
        message: "the S3 bucket must not contain %(…) parameters (it is checked before crawling)",
      });
    }
    const batched = (["batchItemCount", "batchMaxBytes", "batchMaxSeconds"] as const).filter(
      (k) => typeof opts[k] === "number" && (opts[k] as number) > 0,
    );
    if (batched.length > 0 && parsed.errors.length === 0 && !isBatchTemplate(parsed)) {
      errors.push({
        path: `${base}.${batched[0]}`,
        message:
          "a batched feed's URI must contain %(batch_id)d or %(batch_time)s, so that each batch gets its own file",
      });
    }
    if (batched.length > 0 && location?.kind === "stdout") {
      errors.push({ path: `${base}.${batched[0]}`, message: "stdout: cannot be batched" });
    }
    const perShard = parsed.params.has("shard") || parsed.params.has("worker");
    if ((context.parallelism ?? 1) > 1 && location?.kind !== "stdout" && !perShard) {
      errors.push({
        path: base,
        message:
          "with runner.parallelism > 1 the URI must contain %(shard)d (or %(worker)s), or the shards would write the same files",
      });
    }
    const level = opts.compressionLevel;
    const steps = post.filter((p): p is Postprocessor => (POSTPROCESSORS as readonly unknown[]).includes(p));
    if (typeof level === "number" && steps.length > 0) {
      for (const step of steps) {
        const [min, max] = levelRange(step);
        if (level < min || level > max) {
          errors.push({ path: `${base}.compressionLevel`, message: `${step} levels are ${min}-${max}` });
        }
      }
    } else if (level !== undefined && steps.length === 0) {
      errors.push({ path: `${base}.compressionLevel`, message: "set without postprocessing" });
    }
    errors.push(...formatOptionErrors(opts, base));
    if (parsed.errors.length === 0) {
      const sample = renderUri(parsed, SAMPLE);
      const where = (() => {
        try {
          const loc = parseFeedLocation(sample);
          return loc.kind === "s3"
            ? `s3:${loc.bucket}/${loc.key}`
            : loc.kind === "file"
              ? `file:${loc.path}`
              : "stdout";
        } catch {
          return sample;
        }
      })();
      const other = rendered.get(where);
      if (other !== undefined) {
        errors.push({ path: base, message: `writes the same files as feed ${JSON.stringify(other)}` });
      }
      rendered.set(where, uri);
      const ext = expectedExtension(steps);
      if (ext && location?.kind !== "stdout" && !sample.endsWith(ext)) {
        errors.push({
          path: `${base}.postprocessing`,
          message: `the object is ${steps.join(" then ")}-compressed, so its name must end with "${ext}"`,
        });
      }
    }
  }
  return errors;
}
