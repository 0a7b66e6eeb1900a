// Create-then-patch of a CrawlJob's children (not server-side apply): an
// object is created once, then patched only where the listed fields drifted,
// with a resourceVersion precondition. What exists is read from the informer
// caches (ChildCaches), not the API server: a stale cache costs a 409 or an
// AlreadyExists (then one GET), never a wrong write. An existing child not
// controlled by this CrawlJob's uid is an error, never adopted.
import { isDeepStrictEqual } from "node:util";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import type { KubeClient, KubeObject } from "../../kube/client.ts";
import { isAlreadyExists } from "../../kube/errors.ts";
import { CONFIGMAPS, type ResourceType, ROLEBINDINGS, ROLES, SERVICEACCOUNTS } from "../../kube/resources.ts";
import { TerminalError } from "../runtime/errors.ts";
import { type ChildCaches, dataDigest } from "./caches.ts";
import { runnerRole, runnerRoleBinding, runnerServiceAccount, specConfigMap, specConfigMapName } from "./children.ts";

type Cache = ChildCaches[keyof ChildCaches];

export const isOwnedBy = (obj: KubeObject, uid: string | undefined) =>
  obj.metadata.ownerReferences?.some((r) => r.controller && r.uid === uid) ?? false;

/** Creates the object, or patches the listed top-level fields back when they drifted. */
async function ensure(
  client: KubeClient,
  rt: ResourceType,
  cache: Cache,
  desired: KubeObject,
  fields: string[],
  signal: AbortSignal,
): Promise<KubeObject> {
  const { namespace, name } = desired.metadata;
  let current = cache.get(namespace!, name!);
  if (!current) {
    try {
      return await client.create(rt, desired, { signal });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    // The cache is behind, or the object lacks the operator's labels (not its own): read it once.
    current = await client.get<KubeObject>(rt, namespace, name!, { signal });
  }
  const drift: Record<string, unknown> = {};
  for (const field of fields) if (!isDeepStrictEqual(current[field], desired[field])) drift[field] = desired[field];
  if (!isOwnedBy(current, desired.metadata.ownerReferences?.[0]?.uid)) {
    throw new TerminalError(`${rt.kind} ${namespace}/${name} exists and is not owned by this CrawlJob`, {
      reason: "NotOwned",
    });
  }
  if (Object.keys(drift).length === 0) return current;
  return client.patch(
    rt,
    namespace,
    name!,
    { ...drift, metadata: { resourceVersion: current.metadata.resourceVersion } },
    { signal },
  );
}

/** The runner's ServiceAccount, Role and RoleBinding, with rules and subjects patched back when they drifted. */
export async function ensureRbac(
  client: KubeClient,
  caches: ChildCaches,
  job: CrawlJob,
  signal: AbortSignal,
): Promise<void> {
  await ensure(client, SERVICEACCOUNTS, caches.serviceAccounts, runnerServiceAccount(job), [], signal);
  await ensure(client, ROLES, caches.roles, runnerRole(job), ["rules"], signal);
  await ensure(client, ROLEBINDINGS, caches.roleBindings, runnerRoleBinding(job), ["subjects"], signal);
}

/** The snapshot of the generation about to start; refreshed only while no runner exists. */
export async function ensureSnapshot(
  client: KubeClient,
  caches: ChildCaches,
  job: CrawlJob,
  signal: AbortSignal,
): Promise<void> {
  const desired = specConfigMap(job);
  const current = caches.configMaps.get(job.metadata.namespace!, specConfigMapName(job.metadata.name!));
  if (!current) {
    await ensure(client, CONFIGMAPS, caches.configMaps, desired, ["data"], signal);
    return;
  }
  if (!isOwnedBy(current, job.metadata.uid)) {
    throw new TerminalError(
      `ConfigMap ${job.metadata.namespace}/${current.metadata.name} exists and is not owned by this CrawlJob`,
      { reason: "NotOwned" },
    );
  }
  if (current.dataDigest !== dataDigest(desired.data as Record<string, string>)) {
    await client.update(
      CONFIGMAPS,
      { ...desired, metadata: { ...desired.metadata, resourceVersion: current.metadata.resourceVersion } },
      undefined,
      { signal },
    );
  }
}
