// The delivery's API calls: read a CrawlFeed, persist a delivery status with
// a resourceVersion precondition, drop the redeliver annotation, read the
// signing Secret, record an Event. Status writes are JSON merge patches that
// carry metadata.resourceVersion: the API server rejects them with 409 when
// the object changed since it was read (the same optimistic lock as an update
// with the read resourceVersion), and they touch no other status field (the
// CrawlJob's status is shared with the runners and the CrawlJob reconcile).
import { randomBytes } from "node:crypto";
import {
  ApiException,
  CoreV1Api,
  type CoreV1Event,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import type { SecretKeyRef } from "../../crds/schema/common.ts";
import type { CrawlFeed, DeliveryStatus } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";

const GROUP = "feedcrawl.io";
const VERSION = "v1alpha1";
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

export const DEFAULT_SECRET_KEY = "secret";

/** The HTTP status of a client-node error (0 when it is not an API answer). */
export function apiStatus(err: unknown): number {
  return err instanceof ApiException ? err.code : 0;
}

/** A safe one-line description of an API error (ApiException.message embeds every response header). */
export function apiErrorText(err: unknown): string {
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
    return `API ${err.code}${b?.reason ? ` ${b.reason}` : ""}${b?.message ? `: ${b.message}` : ""}`;
  }
  return (err as Error)?.message ?? String(err);
}

/** Every DeliveryStatus key, so a merge patch removes the ones the new status leaves out. */
const DELIVERY_KEYS = ["state", "attempts", "lastError", "lastResponseCode", "nextAttemptAt", "deliveredAt"] as const;

export function deliveryMergeValue(status: DeliveryStatus): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of DELIVERY_KEYS) out[key] = status[key] ?? null;
  return out;
}

export type WriteResult<T> = { ok: true; object: T } | { ok: false; reason: "conflict" | "gone" };

export class DeliveryApi {
  readonly #objects: CustomObjectsApi;
  readonly #core: CoreV1Api;

  constructor(kc: KubeConfig) {
    this.#objects = kc.makeApiClient(CustomObjectsApi);
    this.#core = kc.makeApiClient(CoreV1Api);
  }

  async getFeed(namespace: string, name: string): Promise<CrawlFeed | undefined> {
    try {
      return (await this.#objects.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: "crawlfeeds",
        name,
      })) as CrawlFeed;
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
  }

  async getJob(namespace: string, name: string): Promise<CrawlJob | undefined> {
    try {
      return (await this.#objects.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: "crawljobs",
        name,
      })) as CrawlJob;
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /** Persists a CrawlFeed's `status.delivery` if the feed is still at the resourceVersion it was read at. */
  writeFeedDelivery(feed: CrawlFeed, delivery: DeliveryStatus): Promise<WriteResult<CrawlFeed>> {
    return this.#patchStatus<CrawlFeed>("crawlfeeds", feed, { delivery: deliveryMergeValue(delivery) });
  }

  /** Persists a CrawlJob's `status.completionDelivery`, with the same precondition. */
  writeCompletionDelivery(job: CrawlJob, delivery: DeliveryStatus): Promise<WriteResult<CrawlJob>> {
    return this.#patchStatus<CrawlJob>("crawljobs", job, { completionDelivery: deliveryMergeValue(delivery) });
  }

  /** Removes an annotation (merge patch with the read resourceVersion as precondition). */
  async removeAnnotation(feed: CrawlFeed, annotation: string): Promise<WriteResult<CrawlFeed>> {
    const { namespace, name, resourceVersion } = feed.metadata;
    try {
      const object = (await this.#objects.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          namespace: namespace!,
          plural: "crawlfeeds",
          name: name!,
          body: { metadata: { resourceVersion, annotations: { [annotation]: null } } },
        },
        mergePatch,
      )) as CrawlFeed;
      return { ok: true, object };
    } catch (err) {
      return writeFailure(err);
    }
  }

  async #patchStatus<T extends CrawlFeed | CrawlJob>(
    plural: string,
    object: T,
    status: Record<string, unknown>,
  ): Promise<WriteResult<T>> {
    const { namespace, name, resourceVersion } = object.metadata;
    if (!resourceVersion) throw new Error(`${plural}/${name} has no resourceVersion: read it from the API first`);
    try {
      const updated = (await this.#objects.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          namespace: namespace!,
          plural,
          name: name!,
          body: { metadata: { resourceVersion }, status },
        },
        mergePatch,
      )) as T;
      return { ok: true, object: updated };
    } catch (err) {
      return writeFailure(err);
    }
  }

  /** The signing key's bytes (never logged). */
  async readSecret(namespace: string, ref: SecretKeyRef): Promise<Uint8Array> {
    const key = ref.key ?? DEFAULT_SECRET_KEY;
    let secret: Awaited<ReturnType<CoreV1Api["readNamespacedSecret"]>>;
    try {
      secret = await this.#core.readNamespacedSecret({ namespace, name: ref.name });
    } catch (err) {
      if (apiStatus(err) === 404) throw new SigningSecretError(`Secret ${namespace}/${ref.name} not found`);
      throw new SigningSecretError(`Secret ${namespace}/${ref.name} could not be read: ${apiErrorText(err)}`);
    }
    const value = secret.data?.[key];
    if (value === undefined) throw new SigningSecretError(`Secret ${namespace}/${ref.name} has no key "${key}"`);
    return Buffer.from(value, "base64");
  }

  /** A core/v1 Event about `object` (best effort: an Event is never worth failing a delivery). */
  async recordEvent(
    object: CrawlFeed | CrawlJob,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): Promise<void> {
    const now = new Date();
    const meta = object.metadata;
    const body: CoreV1Event = {
      metadata: { name: `${meta.name}.${randomBytes(8).toString("hex")}`, namespace: meta.namespace },
      involvedObject: {
        apiVersion: object.apiVersion ?? `${GROUP}/${VERSION}`,
        kind: object.kind,
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resourceVersion: meta.resourceVersion,
      },
      type,
      reason,
      message: message.slice(0, 1024),
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      source: { component: "feedcrawl-operator" },
      reportingComponent: "feedcrawl.io/operator",
      reportingInstance: process.env.HOSTNAME ?? "feedcrawl-operator",
    };
    await this.#core.createNamespacedEvent({ namespace: meta.namespace!, body });
  }
}

function writeFailure(err: unknown): { ok: false; reason: "conflict" | "gone" } {
  const code = apiStatus(err);
  if (code === 409) return { ok: false, reason: "conflict" };
  if (code === 404) return { ok: false, reason: "gone" };
  throw err;
}

/** The signing Secret is missing or unusable: a configuration problem the user fixes. */
export class SigningSecretError extends Error {
  override name = "SigningSecretError";
}
