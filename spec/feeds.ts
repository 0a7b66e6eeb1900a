// Checks spec.feeds and spec.storage before any crawling: their TypeBox
// schema's errors and the checks beyond it (feed-checks.ts); every problem is
// reported with its field path, e.g. spec.feeds["s3://b/%(name)s.jsonl"].batchItemCount.
import { Compile } from "typebox/compile";
import type { FieldError } from "../crds/schema/common.ts";
import { FeedOptions, type Feeds, StorageSpec } from "../crds/schema/feeds.ts";
import { type FeedSchemaChecks, feedErrors, type ValidateContext } from "./feed-checks.ts";
import { scrapyHint } from "./scrapy-keys.ts";

export type { ValidateContext };

const checkOptions = Compile(FeedOptions);
const checkStorage = Compile(StorageSpec);

function pointerToPath(base: string, pointer: string): string {
  let out = base;
  for (const raw of pointer.split("/").slice(1)) {
    const part = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    out += /^\d+$/.test(part)
      ? `[${part}]`
      : /^[A-Za-z_$][\w$]*$/.test(part)
        ? `.${part}`
        : `[${JSON.stringify(part)}]`;
  }
  return out;
}

function schemaErrors(
  check: ReturnType<typeof Compile>,
  value: unknown,
  base: string,
  errors: FieldError[],
  skip: (path: string) => boolean = () => false,
) {
  if (check.Check(value)) return;
  const seen = new Set<string>();
  for (const e of check.Errors(value)) {
    if (e.keyword === "boolean") continue; // reported again as additionalProperties on the parent
    if (e.keyword === "additionalProperties") {
      for (const name of (e.params as { additionalProperties?: string[] }).additionalProperties ?? []) {
        const path = pointerToPath(base, `${e.instancePath}/${name}`);
        const hint = e.instancePath === "" ? scrapyHint(name) : undefined;
        if (!seen.has(path)) errors.push({ path, message: hint ?? "unknown option" });
        seen.add(path);
      }
      continue;
    }
    const path = pointerToPath(base, e.instancePath);
    if (seen.has(path) || skip(path)) continue;
    seen.add(path);
    const allowed = (e.params as { allowedValues?: unknown[] }).allowedValues;
    errors.push({ path, message: allowed ? `${e.message}: one of ${allowed.join(", ")}` : e.message });
  }
}

/** The schema's errors, where feed-checks.ts asks for them. */
export const FEED_SCHEMA_CHECKS: FeedSchemaChecks = {
  storage: (value, base, errors) => schemaErrors(checkStorage, value, base, errors),
  options: (value, base, errors, skip) => schemaErrors(checkOptions, value, base, errors, skip),
};

/** Every problem of spec.feeds and spec.storage, schema included, each with its field path. Empty: valid. */
export function validateFeeds(
  feeds: Feeds | undefined,
  storage: StorageSpec | undefined,
  context: ValidateContext = {},
): FieldError[] {
  return feedErrors(feeds, storage, context, FEED_SCHEMA_CHECKS);
}
