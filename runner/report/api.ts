// What the in-pod runner asks of the Kubernetes API, with the pod's own
// ServiceAccount token: create its CrawlFeeds, read its own CrawlJob (to
// resume batch numbering from status.shardProgress), merge-patch its
// CrawlJob's status. Nothing else: the per-job Role allows exactly this (it
// may not get or list CrawlFeeds, so it never sees another job's). Requests go through the
// operator's KubeClient; failures are its KubeApiError (or a network error).
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { KubeApiError } from "../../kube/errors.ts";
import type { KubeAuth } from "../../kube/kubeconfig.ts";
import { CRAWLFEEDS, CRAWLJOBS } from "../../kube/resources.ts";

export interface RunnerApi {
  /** Creates a CrawlFeed; rejects with a KubeApiError (409 AlreadyExists, …) or a network error. */
  createFeed(feed: CrawlFeed): Promise<void>;
  /** Its own CrawlJob (status included); undefined when it is gone. */
  getJob(namespace: string, name: string): Promise<CrawlJob | undefined>;
  /** JSON merge patch on the CrawlJob's status subresource. */
  patchJobStatus(namespace: string, name: string, status: Record<string, unknown>): Promise<void>;
}

type Feed = CrawlFeed & KubeObject;

export function createRunnerApi(kc: KubeAuth | KubeClient): RunnerApi {
  const client = kc instanceof KubeClient ? kc : new KubeClient(kc, { fieldManager: "feedcrawl-runner" });
  return {
    async createFeed(feed) {
      await client.create<Feed>(CRAWLFEEDS, feed as Feed);
    },
    getJob(namespace, name) {
      return client.getOrUndefined<CrawlJob & KubeObject>(CRAWLJOBS, namespace, name);
    },
    async patchJobStatus(namespace, name, status) {
      await client.patch(CRAWLJOBS, namespace, name, { status }, { subresource: "status" });
    },
  };
}

/**
 * The ValidatingAdmissionPolicy plugin denies while it cannot set a policy up
 * yet: its informers are not synced (a fresh apiserver), or its RESTMapper
 * has not seen the paramKind's CRD (CRDs installed seconds ago); the
 * apiserver retries on its own and the same request then passes.
 */
const POLICY_NOT_READY = /failed to configure policy|not yet synced to use for admission/;

/** Worth retrying: network errors and timeouts (anything but an API answer), throttling, server errors, an admission policy not set up yet. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof KubeApiError)) return true;
  if (err.code === 0 || err.code === 408 || err.code === 429 || err.code >= 500) return true;
  return (err.code === 403 || err.code === 422) && POLICY_NOT_READY.test(err.message);
}
