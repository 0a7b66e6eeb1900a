// `_manifest-<time>.json`: every feed file this runner stored (and every batch it could
// not), written at the end of the run next to the first feed's files. One per run, never
// replaced, like the feed files: a rerun into the same folder adds its own.
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import { joinUri } from "../../spec/feed-location.ts";
import { type ParsedTemplate, renderUri, staticBatchPrefix, type UriParams } from "../../spec/uri-template.ts";
import { AlreadyExistsError, type FeedStorage } from "./storages/types.ts";

export interface FeedFailed {
  feed: string;
  uri: string;
  batchId: number;
  items: number;
  error: string;
  /** Where the batch's bytes were kept for recovery (a local path), if anywhere. */
  keptAt?: string;
}

export interface Manifest {
  version: 1;
  name: string;
  job: string;
  shard: number;
  time: string;
  reason: string;
  closedAt: string;
  resumedAfter?: Record<string, number>;
  files: FeedClosed[];
  failed: FeedFailed[];
  itemsDropped: Record<string, number>;
}

type RunParams = Omit<UriParams, "batch_id" | "batch_time">;

/** Names tried after the first, for runs that share a folder and a start second. */
const MAX_SUFFIX = 100;

/**
 * Where the manifest goes: the folder of the feed's batches (the template up to the
 * last "/" before any batch placeholder), named by the run's start time:
 * `_manifest-<time>.json`. Shards other than 0 add `-shard-N` unless that folder already
 * belongs to the shard; `suffix` > 1 adds `-<suffix>` (another run took the name).
 */
export function manifestUri(parsed: ParsedTemplate, params: RunParams, suffix = 1): string {
  const folder = staticBatchPrefix(parsed);
  const ownFolder = params.shard === 0 || folder.pieces.some((p) => typeof p === "object" && p.param === "shard");
  const name = `_manifest-${params.time}${ownFolder ? "" : `-shard-${params.shard}`}${suffix > 1 ? `-${suffix}` : ""}.json`;
  return joinUri(renderUri(folder, { ...params, batch_id: 0, batch_time: "" }), name);
}

/** Stores the manifest create-only under the first free name; resolves with its URI. */
export async function storeManifest(
  storage: FeedStorage,
  parsed: ParsedTemplate,
  params: RunParams,
  manifest: Manifest,
): Promise<string> {
  const body = `${JSON.stringify(manifest, null, 2)}\n`;
  for (let suffix = 1; ; suffix++) {
    const uri = manifestUri(parsed, params, suffix);
    try {
      await storage.putSmall(uri, body, "application/json");
      return uri;
    } catch (err) {
      if (!(err instanceof AlreadyExistsError) || suffix >= MAX_SUFFIX) throw err;
    }
  }
}
