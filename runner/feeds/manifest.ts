// `_manifest.json`: every feed file this runner stored (and every batch it could not),
// written at the end of the run next to the first feed's files.
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import { joinUri } from "../../spec/feed-location.ts";
import { type ParsedTemplate, renderUri, staticBatchPrefix, type UriParams } from "../../spec/uri-template.ts";

export interface FeedFailed {
  feed: string;
  uri: string;
  batchId: number;
  items: number;
  error: string;
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

/**
 * Where the manifest goes: the folder of the feed's batches (the template up to the
 * last "/" before any batch placeholder). Shard 0 writes `_manifest.json`; other shards
 * write `_manifest-shard-N.json` unless that folder already belongs to the shard.
 */
export function manifestUri(parsed: ParsedTemplate, params: Omit<UriParams, "batch_id" | "batch_time">): string {
  const folder = staticBatchPrefix(parsed);
  const name =
    params.shard === 0 || folder.pieces.some((p) => typeof p === "object" && p.param === "shard")
      ? "_manifest.json"
      : `_manifest-shard-${params.shard}.json`;
  return joinUri(renderUri(folder, { ...params, batch_id: 0, batch_time: "" }), name);
}
