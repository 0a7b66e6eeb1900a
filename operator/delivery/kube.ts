// The delivery's API calls: read a CrawlFeed, persist a delivery status with
// a resourceVersion precondition, drop the redeliver annotation, read the
// signing Secret. Status writes are JSON merge patches that carry
// metadata.resourceVersion: the API server rejects them with 409 when the
// object changed since it was read (the same optimistic lock as an update
// with the read resourceVersion), and they touch no other status field (the
// CrawlJob's status is shared with the runners and the CrawlJob reconcile).
// Events go through operator/runtime/events.ts's EventRecorder.
import type { SecretKeyRef } from "../../crds/schema/builders.ts";
import type { CrawlFeed, DeliveryStatus } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { describeError, isConflict, isNotFound } from "../../kube/errors.ts";
import type { KubeAuth } from "../../kube/kubeconfig.ts";
import { CONFIGMAPS, CRAWLFEEDS, CRAWLJOBS, type ResourceType, SECRETS } from "../../kube/resources.ts";
import { specConfigMapName } from "../crawljob/children.ts";
import { SPEC_KEY } from "../crawljob/runner-pod.ts";

/** The key of the spec snapshot in the `<job>-spec` ConfigMap (operator/crawljob/children.ts). */

export const DEFAULT_SECRET_KEY = "secret";

/** Every DeliveryStatus key, so a merge patch removes the ones the new status leaves out. */
const DELIVERY_KEYS = ["state", "attempts", "lastError", "lastResponseCode", "nextAttemptAt", "deliveredAt"] as const;

function deliveryMergeValue(status: DeliveryStatus): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of DELIVERY_KEYS) out[key] = status[key] ?? null;
  return out;
}

export type WriteResult<T> = { ok: true; object: T } | { ok: false; reason: "conflict" | "gone" };

type Feed = CrawlFeed & KubeObject;
type Job = CrawlJob & KubeObject;

export class DeliveryApi {
  readonly client: KubeClient;
  readonly #owned: boolean;

  /** A kube config gets a client of its own (closed by `close`); a given KubeClient stays its owner's. */
  constructor(client: KubeClient | KubeAuth) {
    this.#owned = !(client instanceof KubeClient);
    this.client = client instanceof KubeClient ? client : new KubeClient(client);
  }

  getFeed(namespace: string, name: string): Promise<CrawlFeed | undefined> {
    return this.client.getOrUndefined<Feed>(CRAWLFEEDS, namespace, name);
  }

  getJob(namespace: string, name: string): Promise<CrawlJob | undefined> {
    return this.client.getOrUndefined<Job>(CRAWLJOBS, namespace, name);
  }

  /**
   * The spec the running crawl started with: the `<job>-spec` snapshot the
   * operator wrote (runners cannot write ConfigMaps), if it is controlled by
   * this CrawlJob and readable; undefined otherwise.
   */
  async getSnapshot(job: CrawlJob): Promise<CrawlJob["spec"] | undefined> {
    const { namespace, name, uid } = job.metadata;
    const map = await this.client
      .getOrUndefined<KubeObject & { data?: Record<string, string> }>(CONFIGMAPS, namespace, specConfigMapName(name!))
      .catch(() => undefined);
    if (!map?.metadata.ownerReferences?.some((ref) => ref.controller && ref.uid === uid)) return undefined;
    try {
      return (JSON.parse(map.data?.[SPEC_KEY] ?? "") as { spec?: CrawlJob["spec"] }).spec;
    } catch {
      return undefined;
    }
  }

  /** Persists a CrawlFeed's `status.delivery` if the feed is still at the resourceVersion it was read at. */
  writeFeedDelivery(feed: CrawlFeed, delivery: DeliveryStatus): Promise<WriteResult<CrawlFeed>> {
    return this.#patchStatus(CRAWLFEEDS, feed, { delivery: deliveryMergeValue(delivery) });
  }

  /** Persists a CrawlJob's `status.completionDelivery`, with the same precondition. */
  writeCompletionDelivery(job: CrawlJob, delivery: DeliveryStatus): Promise<WriteResult<CrawlJob>> {
    return this.#patchStatus(CRAWLJOBS, job, { completionDelivery: deliveryMergeValue(delivery) });
  }

  /** Removes an annotation (merge patch with the read resourceVersion as precondition). */
  async removeAnnotation(feed: CrawlFeed, annotation: string): Promise<WriteResult<CrawlFeed>> {
    const { namespace, name, resourceVersion } = feed.metadata;
    try {
      const object = await this.client.patch<Feed>(CRAWLFEEDS, namespace, name!, {
        metadata: { resourceVersion, annotations: { [annotation]: null } },
      });
      return { ok: true, object };
    } catch (err) {
      return writeFailure(err);
    }
  }

  async #patchStatus<T extends CrawlFeed | CrawlJob>(
    rt: ResourceType,
    object: T,
    status: Record<string, unknown>,
  ): Promise<WriteResult<T>> {
    const { namespace, name, resourceVersion } = object.metadata;
    if (!resourceVersion) throw new Error(`${rt.plural}/${name} has no resourceVersion: read it from the API first`);
    try {
      const updated = await this.client.patch<T & KubeObject>(
        rt,
        namespace,
        name!,
        { metadata: { resourceVersion }, status },
        { subresource: "status" },
      );
      return { ok: true, object: updated };
    } catch (err) {
      return writeFailure(err);
    }
  }

  /** The signing key's bytes (never logged). */
  async readSecret(namespace: string, ref: SecretKeyRef): Promise<Uint8Array> {
    const key = ref.key ?? DEFAULT_SECRET_KEY;
    let secret: KubeObject & { data?: Record<string, string> };
    try {
      secret = await this.client.get(SECRETS, namespace, ref.name);
    } catch (err) {
      if (isNotFound(err)) throw new SigningSecretError(`Secret ${namespace}/${ref.name} not found`);
      throw new SigningSecretError(`Secret ${namespace}/${ref.name} could not be read: ${describeError(err)}`);
    }
    const value = secret.data?.[key];
    if (value === undefined) throw new SigningSecretError(`Secret ${namespace}/${ref.name} has no key "${key}"`);
    return Buffer.from(value, "base64");
  }

  async close(): Promise<void> {
    if (this.#owned) await this.client.close();
  }
}

function writeFailure(err: unknown): { ok: false; reason: "conflict" | "gone" } {
  if (isConflict(err)) return { ok: false, reason: "conflict" };
  if (isNotFound(err)) return { ok: false, reason: "gone" };
  throw err;
}

/** The signing Secret is missing or unusable: a configuration problem the user fixes. */
export class SigningSecretError extends Error {
  override name = "SigningSecretError";
}
