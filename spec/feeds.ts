// Checks spec.feeds and spec.storage before any crawling: their schema and the
// checks beyond it (feed-checks.ts); every problem is reported with its field
// path, e.g. spec.feeds["s3://b/%(name)s.jsonl"].batchItemCount. The schema is
// checked by TypeBox's generated code (spec/generated/); TypeBox itself is
// loaded only to explain a refusal (schema-errors.ts).
import type { FieldError } from "../crds/schema/common.ts";
import type { Feeds, StorageSpec } from "../crds/schema/feeds.ts";
import { type FeedSchemaChecks, feedErrors, type ValidateContext } from "./feed-checks.ts";
import { Check as feedOptionsValid } from "./generated/feed-options.ts";
import { Check as storageSpecValid } from "./generated/storage-spec.ts";

export type { ValidateContext };

/** The feeds' schema checks once the generated checks passed: TypeBox's would report nothing. */
export const SCHEMA_PASSED: FeedSchemaChecks = { storage() {}, options() {} };

/** Whether spec.feeds and spec.storage pass their schema, by the generated checks. */
function feedsSchemaValid(feeds: unknown, storage: unknown): boolean {
  if (storage !== undefined && !storageSpecValid(storage)) return false;
  if (feeds === undefined) return true;
  return typeof feeds === "object" && feeds !== null && Object.values(feeds).every((opts) => feedOptionsValid(opts));
}

/** The schema checks of spec.feeds and spec.storage for feed-checks.ts: TypeBox's messages only when there are some. */
export async function feedSchemaChecks(feeds: unknown, storage: unknown): Promise<FeedSchemaChecks> {
  return feedsSchemaValid(feeds, storage) ? SCHEMA_PASSED : (await import("./schema-errors.ts")).FEED_SCHEMA_CHECKS;
}

/** Every problem of spec.feeds and spec.storage, schema included, each with its field path. Empty: valid. */
export async function validateFeeds(
  feeds: Feeds | undefined,
  storage: StorageSpec | undefined,
  context: ValidateContext = {},
): Promise<FieldError[]> {
  return feedErrors(feeds, storage, context, await feedSchemaChecks(feeds, storage));
}
