// What the in-pod runner asks of the Kubernetes API, with the pod's own
// ServiceAccount token: create its CrawlFeeds, list its shard's CrawlFeeds
// (to resume batch numbering), merge-patch its CrawlJob's status. Nothing
// else: the per-job Role allows exactly this.
import {
  ApiException,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";

const GROUP = "feedcrawl.io";
const VERSION = "v1alpha1";
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

export interface RunnerApi {
  /** Creates a CrawlFeed; rejects with an error carrying `statusCode` (409 AlreadyExists, …). */
  createFeed(feed: CrawlFeed): Promise<void>;
  getFeed(namespace: string, name: string): Promise<CrawlFeed | undefined>;
  listFeeds(namespace: string, labelSelector: string): Promise<CrawlFeed[]>;
  /** JSON merge patch on the CrawlJob's status subresource. */
  patchJobStatus(namespace: string, name: string, status: Record<string, unknown>): Promise<void>;
}

/** An API failure reduced to what retry decisions need (no response headers, no token). */
export class RunnerApiError extends Error {
  override name = "RunnerApiError";
  readonly statusCode: number;
  readonly reason: string | undefined;
  constructor(statusCode: number, reason: string | undefined, message: string) {
    super(message);
    this.statusCode = statusCode;
    this.reason = reason;
  }
}

function wrap(err: unknown, what: string): Error {
  if (err instanceof ApiException) {
    let body = err.body as unknown;
    if (typeof body === "string") {
      try {
        body = JSON.parse(body);
      } catch {
        // keep the string
      }
    }
    const b = body as { reason?: string; message?: string } | undefined;
    return new RunnerApiError(
      err.code,
      b?.reason,
      `${what}: API ${err.code}${b?.reason ? ` ${b.reason}` : ""}${b?.message ? `: ${b.message}` : ""}`,
    );
  }
  const e = err as { code?: string; message?: string };
  return new RunnerApiError(0, e?.code, `${what}: ${e?.message ?? String(err)}`);
}

export function createRunnerApi(kc: KubeConfig): RunnerApi {
  const api = kc.makeApiClient(CustomObjectsApi);
  return {
    async createFeed(feed) {
      try {
        await api.createNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: feed.metadata.namespace!,
          plural: "crawlfeeds",
          body: feed,
        });
      } catch (err) {
        throw wrap(err, `Creating CrawlFeed ${feed.metadata.namespace}/${feed.metadata.name}`);
      }
    },
    async getFeed(namespace, name) {
      try {
        return (await api.getNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace,
          plural: "crawlfeeds",
          name,
        })) as CrawlFeed;
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) return undefined;
        throw wrap(err, `Reading CrawlFeed ${namespace}/${name}`);
      }
    },
    async listFeeds(namespace, labelSelector) {
      try {
        const list = (await api.listNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace,
          plural: "crawlfeeds",
          labelSelector,
        })) as { items: CrawlFeed[] };
        return list.items;
      } catch (err) {
        throw wrap(err, `Listing CrawlFeeds in ${namespace} (${labelSelector})`);
      }
    },
    async patchJobStatus(namespace, name, status) {
      try {
        await api.patchNamespacedCustomObjectStatus(
          { group: GROUP, version: VERSION, namespace, plural: "crawljobs", name, body: { status } },
          mergePatch,
        );
      } catch (err) {
        throw wrap(err, `Patching the status of CrawlJob ${namespace}/${name}`);
      }
    },
  };
}

/** Worth retrying: network errors, throttling, server errors, timeouts. */
export function isTransient(err: unknown): boolean {
  const code = (err as { statusCode?: number })?.statusCode ?? 0;
  return code === 0 || code === 408 || code === 429 || code >= 500;
}
