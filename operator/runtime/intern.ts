// One copy of the strings that many cached objects repeat. JSON.parse makes a
// new string for every value, so 10,000 CrawlFeeds of 1,000 CrawlJobs held
// 26,000 copies of "feedcrawl.io/v1alpha1", 34 of each job's name (labels,
// owner references) and 10,000 of the same feed template (issue 13: ~4 MB of
// a 59 MB heap). The informers run every object's metadata through here, and
// a cache's own transform the spec fields it knows repeat.

/** Distinct strings kept before the pool starts over (it only saves memory; forgetting is always safe). */
const MAX_POOLED = 50_000;
let pool = new Map<string, string>();

/** The pooled copy of `value` (the first one seen). */
export function intern<T extends string | undefined>(value: T): T {
  if (value === undefined) return value;
  const pooled = pool.get(value);
  if (pooled !== undefined) return pooled as T;
  if (pool.size >= MAX_POOLED) pool = new Map();
  pool.set(value, value);
  return value;
}

interface Metadata {
  namespace?: string;
  labels?: Record<string, string>;
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string }[];
}

/** Pools (in place) an object's apiVersion and kind, and its metadata's namespace, label values and owner references. */
export function internMetadata<T extends { apiVersion?: string; kind?: string; metadata: Metadata }>(obj: T): T {
  if (obj.apiVersion !== undefined) obj.apiVersion = intern(obj.apiVersion);
  if (obj.kind !== undefined) obj.kind = intern(obj.kind);
  const metadata = obj.metadata;
  if (metadata.namespace !== undefined) metadata.namespace = intern(metadata.namespace);
  const labels = metadata.labels;
  if (labels) for (const key of Object.keys(labels)) labels[key] = intern(labels[key]!);
  for (const owner of metadata.ownerReferences ?? []) {
    owner.apiVersion = intern(owner.apiVersion);
    owner.kind = intern(owner.kind);
    owner.name = intern(owner.name);
    owner.uid = intern(owner.uid);
  }
  return obj;
}
