// What the CrawlJob reconcile reads instead of asking the API server: the
// informer caches of the children it owns (label-selected), of the Secrets
// in the watched namespaces (names of keys only), and the indexes that find
// a CrawlJob's feeds, its runner's pods and the CrawlJobs naming a Secret.
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { CRAWLJOB_LABEL } from "../../crds/schema/names.ts";
import type { KubeObject } from "../../kube/client.ts";
import { controllerUid, type EventSource, Index } from "../runtime/index.ts";
import type { InformerGroup } from "../runtime/informer.ts";
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

type Group<T extends KubeObject> = Pick<InformerGroup<T>, "get">;

/** The caches of the objects a CrawlJob owns besides its runner Job and pods (operator/manager.ts starts them). */
export interface ChildCaches {
  configMaps: Group<KubeObject>;
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
