// What the CrawlJob reconcile reads instead of asking the API server: the
// informer caches of the children it owns (label-selected), of the Secrets
// in the watched namespaces (names of keys only), and the indexes that find
// a CrawlJob's feeds, its runner's pods and the CrawlJobs naming a Secret.
import { createHash } from "node:crypto";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { CRAWLJOB_LABEL } from "../../crds/schema/names.ts";
import type { KubeObject } from "../../kube/client.ts";
import { controllerUid, type EventSource, Index } from "../runtime/index.ts";
import type { InformerGroup } from "../runtime/informer.ts";
import { intern } from "../runtime/intern.ts";
import type { RunnerPod } from "./pods.ts";
import { secretRefsOf } from "./validate.ts";

/** A Secret as the cache keeps it: identity and the names of its data keys, never a value. */
export interface SecretKeys extends KubeObject {
  keys: string[];
}

/** The Secret informer's transform: the values are dropped before anything is cached or handed on. */
export function secretKeysTransform(secret: KubeObject & { data?: Record<string, string> }): SecretKeys {
  const { name, namespace, uid, resourceVersion } = secret.metadata;
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace, uid, resourceVersion },
    keys: Object.keys(secret.data ?? {}),
  };
}

/** The CrawlFeed informer's transform: the feed template is the same string in every feed of a CrawlJob. */
export function crawlFeedCacheTransform<T extends CrawlFeed>(feed: T): T {
  if (feed.spec?.feed !== undefined) feed.spec.feed = intern(feed.spec.feed);
  return feed;
}

/** A spec ConfigMap as the cache keeps it: a digest of its data (ensureSnapshot compares, never reads, the ~2 KB snapshot). */
export interface ConfigMapDigest extends KubeObject {
  dataDigest: string;
}

/** sha256 of a ConfigMap's data, whatever the order of its keys. */
export function dataDigest(data: Record<string, string> | undefined): string {
  const sorted = Object.entries(data ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash("sha256").update(JSON.stringify(sorted)).digest("base64");
}

/** The spec ConfigMap informer's transform. */
export function configMapDigestTransform(cm: KubeObject & { data?: Record<string, string> }): ConfigMapDigest {
  return { apiVersion: cm.apiVersion, kind: cm.kind, metadata: cm.metadata, dataDigest: dataDigest(cm.data) };
}

type Group<T extends KubeObject> = Pick<InformerGroup<T>, "get">;

/** The caches of the objects a CrawlJob owns besides its runner Job and pods (operator/manager.ts starts them). */
export interface ChildCaches {
  configMaps: Group<ConfigMapDigest>;
  serviceAccounts: Group<KubeObject>;
  roles: Group<KubeObject>;
  roleBindings: Group<KubeObject>;
}

const nsName = (namespace: string | undefined, name: string) => `${namespace ?? ""}/${name}`;

/** CrawlFeeds by their CrawlJob label (namespace/name). */
export const feedsByJobIndex = (feeds: EventSource<CrawlFeed & KubeObject>) =>
  new Index(feeds, (f) => {
    const job = f.metadata.labels?.[CRAWLJOB_LABEL];
    return job ? [nsName(f.metadata.namespace, job)] : [];
  });

/** Runner pods by the uid of the Job that controls them. */
export const podsByOwnerIndex = (pods: EventSource<RunnerPod>) => new Index(pods, controllerUid);

/** CrawlJobs by the Secrets (namespace/name) their spec names. */
export const crawlJobsBySecretIndex = (crawlJobs: EventSource<CrawlJob & KubeObject>) =>
  new Index(crawlJobs, (job) => secretRefsOf(job.spec).map((ref) => nsName(job.metadata.namespace, ref.name)));

export { nsName as indexKey };
