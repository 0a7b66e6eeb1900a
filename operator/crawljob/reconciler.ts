// Reconciles one CrawlJob, level-triggered: read what exists (CrawlJob, runner
// Job and CrawlFeeds from the informer caches; Secrets and RBAC objects from
// the API), make the children match, then write the status that describes it.
//
// Children are created, then patched only where they drifted (create-then-
// patch, not server-side apply): the runner Job and the spec snapshot are
// created once and then deliberately left alone (the snapshot is what a
// running crawl was started with), and re-applying full manifests on every
// reconcile of a job whose runners patch their stats every few seconds would
// be a write per reconcile for nothing.
import { isDeepStrictEqual } from "node:util";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import { CRAWLJOB_LABEL } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { isAlreadyExists, isConflict, isNotFound, type KubeClient, type KubeObject } from "../../kube/client.ts";
import {
  CONFIGMAPS,
  CRAWLFEEDS,
  CRAWLJOBS,
  JOBS,
  type ResourceType,
  ROLEBINDINGS,
  ROLES,
  SECRETS,
  SERVICEACCOUNTS,
} from "../../kube/resources.ts";
import { getCondition } from "../runtime/conditions.ts";
import type { ReconcileRequest, ReconcileResult } from "../runtime/controller.ts";
import type { EventRecorder } from "../runtime/events.ts";
import type { InformerGroup } from "../runtime/informer.ts";
import {
  runnerJob as buildRunnerJob,
  runnerName,
  runnerRole,
  runnerRoleBinding,
  runnerServiceAccount,
  SPEC_GENERATION_ANNOTATION,
  specConfigMap,
  specConfigMapName,
} from "./children.ts";
import { type BatchJob, computeStatus, transitionEvents } from "./status.ts";
import { validateCrawlJob } from "./validate.ts";

/** What the delivery part exposes to the CrawlJob reconcile (operator/delivery/index.ts). */
export interface CompletionDelivery {
  deliverCompletion(job: CrawlJob, feeds: CrawlFeed[]): Promise<{ requeueAfterMs?: number } | undefined>;
}

export interface CrawlJobReconcilerDeps {
  client: KubeClient;
  crawlJobs: InformerGroup<CrawlJob & KubeObject>;
  runnerJobs: InformerGroup<BatchJob>;
  crawlFeeds: InformerGroup<CrawlFeed & KubeObject>;
  events: EventRecorder;
  /** spec.runner.image's default: the operator's own image. */
  runnerImage: string;
  delivery?: CompletionDelivery;
  now?: () => Date;
}

const isOwnedBy = (obj: KubeObject, uid: string | undefined) =>
  obj.metadata.ownerReferences?.some((r) => r.controller && r.uid === uid) ?? false;

export function createCrawlJobReconciler(deps: CrawlJobReconcilerDeps) {
  const { client, events } = deps;
  const now = deps.now ?? (() => new Date());

  async function secretKeys(namespace: string, name: string): Promise<string[] | undefined> {
    const secret = await client.getOrUndefined<KubeObject & { data?: Record<string, string> }>(
      SECRETS,
      namespace,
      name,
    );
    // Only the key names leave this function: never the values.
    return secret ? Object.keys({ ...secret.data, ...(secret.stringData as object | undefined) }) : undefined;
  }

  /** Creates the object, or patches the listed top-level fields back when they drifted. */
  async function ensure(rt: ResourceType, desired: KubeObject, fields: string[]): Promise<KubeObject> {
    const { namespace, name } = desired.metadata;
    const current = await client.getOrUndefined<KubeObject>(rt, namespace, name!);
    if (!current) {
      try {
        return await client.create(rt, desired);
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        return client.get(rt, namespace, name!);
      }
    }
    const drift: Record<string, unknown> = {};
    for (const field of fields) if (!isDeepStrictEqual(current[field], desired[field])) drift[field] = desired[field];
    if (!isOwnedBy(current, desired.metadata.ownerReferences?.[0]?.uid)) {
      throw new Error(`${rt.kind} ${namespace}/${name} exists and is not owned by this CrawlJob`);
    }
    if (Object.keys(drift).length === 0) return current;
    return client.patch(rt, namespace, name!, {
      ...drift,
      metadata: { resourceVersion: current.metadata.resourceVersion },
    });
  }

  async function ensureRbac(job: CrawlJob) {
    await ensure(SERVICEACCOUNTS, runnerServiceAccount(job), []);
    await ensure(ROLES, runnerRole(job), ["rules"]);
    await ensure(ROLEBINDINGS, runnerRoleBinding(job), ["subjects"]);
  }

  /** The snapshot of the generation about to start; refreshed only while no runner exists. */
  async function ensureSnapshot(job: CrawlJob) {
    const desired = specConfigMap(job);
    const current = await client.getOrUndefined<KubeObject>(
      CONFIGMAPS,
      job.metadata.namespace,
      specConfigMapName(job.metadata.name!),
    );
    if (!current) {
      await ensure(CONFIGMAPS, desired, ["data"]);
      return;
    }
    if (!isOwnedBy(current, job.metadata.uid)) {
      throw new Error(
        `ConfigMap ${job.metadata.namespace}/${current.metadata.name} exists and is not owned by this CrawlJob`,
      );
    }
    if (!isDeepStrictEqual(current.data, desired.data)) {
      await client.update(CONFIGMAPS, {
        ...desired,
        metadata: { ...desired.metadata, resourceVersion: current.metadata.resourceVersion },
      });
    }
  }

  return async function reconcile(req: ReconcileRequest): Promise<ReconcileResult | undefined> {
    const { namespace, name, logger } = req;
    const cached = deps.crawlJobs.get(namespace, name);
    if (!cached) return undefined; // deleted: its children go with it (ownerReferences)
    if (cached.metadata.deletionTimestamp) return undefined;
    const job = structuredClone(cached);
    const uid = job.metadata.uid;
    const at = now();

    const feeds = deps.crawlFeeds.list(
      (f) => f.metadata.namespace === namespace && f.metadata.labels?.[CRAWLJOB_LABEL] === name && isOwnedBy(f, uid),
    );
    let runner = deps.runnerJobs.get(namespace, runnerName(name));
    if (runner && !isOwnedBy(runner, uid)) {
      throw new Error(`Job ${namespace}/${runnerName(name)} exists and is not owned by CrawlJob ${name}`);
    }

    const validation = await validateCrawlJob(namespace, job.spec, secretKeys);
    const finished = job.status?.completionTime !== undefined && job.status.runner?.jobName !== undefined;

    if (!runner && !finished && !validation && job.spec.suspend !== true) {
      if (job.status?.runner?.generation === undefined) await ensureSnapshot(job);
      await ensureRbac(job);
      const desired = buildRunnerJob(job, { defaultImage: deps.runnerImage });
      try {
        runner = (await client.create(JOBS, desired)) as BatchJob;
        const shards = job.spec.runner?.parallelism ?? 1;
        logger.info({ shards }, `Created Job ${namespace}/${runnerName(name)} for CrawlJob ${name}`);
        await events.record(job, "Normal", "RunnerCreated", `Created Job ${runnerName(name)} with ${shards} shard(s)`);
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        runner = await client.get<BatchJob>(JOBS, namespace, runnerName(name));
      }
    } else if (runner && !finished) {
      await ensureRbac(job);
      const wantSuspend = job.spec.suspend === true;
      const terminal = runner.status?.conditions?.some(
        (c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True",
      );
      if (!terminal && (runner.spec?.suspend === true) !== wantSuspend) {
        runner = await client.patch<BatchJob>(JOBS, namespace, runnerName(name), {
          metadata: { resourceVersion: runner.metadata.resourceVersion },
          spec: { suspend: wantSuspend },
        });
        logger.info(`${wantSuspend ? "Suspended" : "Resumed"} Job ${namespace}/${runnerName(name)}`);
        await events.record(
          job,
          "Normal",
          wantSuspend ? "Suspended" : "Resumed",
          `${wantSuspend ? "Suspended" : "Resumed"} Job ${runnerName(name)}`,
        );
      }
    }

    const freshFeeds = async () => {
      const list = await client.list<CrawlFeed & KubeObject>(CRAWLFEEDS, {
        namespace,
        labelSelector: `${CRAWLJOB_LABEL}=${name}`,
      });
      return list.items.filter((f) => isOwnedBy(f, uid));
    };

    let result: ReconcileResult | undefined;
    if (!(finished && !runner)) {
      // CrawlFeeds are never deleted while their CrawlJob lives: fewer in the
      // cache than the status already counted means the cache is behind.
      let counted = feeds;
      if (counted.length < (job.status?.feedSummary?.closed ?? 0)) counted = await freshFeeds();
      let status = computeStatus({ job, now: at, validation, runnerJob: runner, feeds: counted });
      const wasSucceeded = getCondition(job.status?.conditions, "Succeeded")?.status === "True";
      if (!wasSucceeded && getCondition(status.conditions, "Succeeded")?.status === "True") {
        // The informers watch CrawlFeeds and Jobs separately, with no order
        // between them: the runner's last CrawlFeed may still be on its way to
        // the cache when its Job's completion arrives. Before declaring
        // success, read the CrawlFeeds from the API server itself.
        counted = await freshFeeds();
        status = computeStatus({ job, now: at, validation, runnerJob: runner, feeds: counted });
      } else if (wasSucceeded && getCondition(status.conditions, "Succeeded")?.status !== "True") {
        // Succeeded=True is final (a bounded-execution object, like a Job):
        // a cache that lags behind a delivery must not flip it back.
        const previous = job.status!;
        status = {
          ...status,
          phase: previous.phase,
          conditions: previous.conditions,
          completionTime: previous.completionTime,
          feedSummary: previous.feedSummary,
          recentFeeds: previous.recentFeeds,
        };
      }
      if (runner) {
        const generation = Number(runner.metadata.annotations?.[SPEC_GENERATION_ANNOTATION] ?? job.metadata.generation);
        status.runner = { ...status.runner, generation };
      }
      if (!isDeepStrictEqual(status, job.status ?? {})) {
        const before = job.status;
        // An update carrying the resourceVersion read: 409 when a runner, the
        // delivery or another (deposed) operator wrote in between; retried.
        const updated = await client.updateStatus<CrawlJob & KubeObject>(CRAWLJOBS, { ...job, status });
        job.metadata = updated.metadata;
        job.status = updated.status;
        for (const e of transitionEvents(before, status)) await events.record(job, e.type, e.reason, e.message);
        if (before?.phase !== status.phase) logger.info({ phase: status.phase }, `CrawlJob ${name} is ${status.phase}`);
      }
    }

    // onCompletion: one crawl.completed event once the runner finished.
    const conditions = job.status?.conditions;
    if (
      job.spec.ingest?.webhook?.mode === "onCompletion" &&
      getCondition(conditions, "CrawlComplete")?.status === "True" &&
      !["Delivered", "Failed"].includes(job.status?.completionDelivery?.state ?? "")
    ) {
      if (!deps.delivery) throw new Error("No delivery is configured for mode onCompletion");
      // Every feed, read from the API server: the event lists them all.
      const r = await deps.delivery.deliverCompletion(job, await freshFeeds());
      if (r && r.requeueAfterMs !== undefined) result = { requeueAfterMs: r.requeueAfterMs };
    }

    // ttlSecondsAfterFinished: delete the CrawlJob (and, by ownership, everything it made).
    const ttl = job.spec.ttlSecondsAfterFinished;
    const completed = job.status?.completionTime;
    if (ttl !== undefined && completed) {
      const deleteAt = Date.parse(completed) + ttl * 1000;
      const wait = deleteAt - at.getTime();
      if (wait <= 0) {
        try {
          await client.delete(CRAWLJOBS, namespace, name, { uid, propagationPolicy: "Background" });
          logger.info({ ttlSeconds: ttl }, `Deleted CrawlJob ${namespace}/${name}: ttlSecondsAfterFinished elapsed`);
        } catch (err) {
          if (!isNotFound(err) && !isConflict(err)) throw err;
        }
        return undefined;
      }
      result = { requeueAfterMs: Math.min(result?.requeueAfterMs ?? Number.POSITIVE_INFINITY, wait + 50) };
    }
    return result;
  };
}
