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
import type { Logger } from "pino";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import { CRAWLJOB_LABEL } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob, CrawlJobStatus } from "../../crds/schema/crawljob.ts";
import type { KubeClient, KubeObject } from "../../kube/client.ts";
import { isAlreadyExists, isConflict, isNotFound } from "../../kube/errors.ts";
import { CONFIGMAPS, CRAWLFEEDS, CRAWLJOBS, JOBS, SECRETS } from "../../kube/resources.ts";
import { getCondition } from "../runtime/conditions.ts";
import type { ReconcileRequest, ReconcileResult } from "../runtime/controller.ts";
import type { EventRecorder } from "../runtime/events.ts";
import type { InformerGroup } from "../runtime/informer.ts";
import { runnerJob as buildRunnerJob, runnerName, SPEC_GENERATION_ANNOTATION } from "./children.ts";
import { ensureRbac, ensureSnapshot, isOwnedBy } from "./ensure.ts";
import type { RunnerPod } from "./pods.ts";
import { type BatchJob, computeStatus, transitionEvents } from "./status.ts";
import { type ValidationFailure, validateCrawlJob } from "./validate.ts";

/** What the delivery part exposes to the CrawlJob reconcile (operator/delivery/index.ts). */
export interface CompletionDelivery {
  deliverCompletion(job: CrawlJob, feeds: CrawlFeed[]): Promise<{ requeueAfterMs?: number } | undefined>;
}

interface CrawlJobReconcilerDeps {
  client: KubeClient;
  crawlJobs: InformerGroup<Job>;
  runnerJobs: InformerGroup<BatchJob>;
  crawlFeeds: InformerGroup<CrawlFeed & KubeObject>;
  /** The pods of the operator's runner Jobs (label selector), for RunnerHealthy. */
  runnerPods?: InformerGroup<RunnerPod>;
  events: EventRecorder;
  /** spec.runner.image's default: the operator's own image. */
  runnerImage: string;
  delivery?: CompletionDelivery;
  now?: () => Date;
}

type Job = CrawlJob & KubeObject;

/** What one reconcile observed, shared by its steps. */
interface Pass {
  job: Job;
  at: Date;
  logger: Logger;
  validation: ValidationFailure | undefined;
  runner: BatchJob | undefined;
}

export function createCrawlJobReconciler(deps: CrawlJobReconcilerDeps) {
  const reconciler = new CrawlJobReconciler(deps);
  return (req: ReconcileRequest) => reconciler.reconcile(req);
}

class CrawlJobReconciler {
  readonly #d: CrawlJobReconcilerDeps;
  readonly #client: KubeClient;
  readonly #now: () => Date;

  constructor(deps: CrawlJobReconcilerDeps) {
    this.#d = deps;
    this.#client = deps.client;
    this.#now = deps.now ?? (() => new Date());
  }

  async reconcile(req: ReconcileRequest): Promise<ReconcileResult | undefined> {
    const { namespace, name, logger } = req;
    const cached = this.#d.crawlJobs.get(namespace, name);
    if (!cached) return undefined; // deleted: its children go with it (ownerReferences)
    if (cached.metadata.deletionTimestamp) return undefined;
    const job = structuredClone(cached);
    const uid = job.metadata.uid;
    const at = this.#now();

    const feeds = this.#d.crawlFeeds.list(
      (f) => f.metadata.namespace === namespace && f.metadata.labels?.[CRAWLJOB_LABEL] === name && isOwnedBy(f, uid),
    );
    let runner = this.#d.runnerJobs.get(namespace, runnerName(name));
    if (runner && !isOwnedBy(runner, uid)) {
      throw new Error(`Job ${namespace}/${runnerName(name)} exists and is not owned by CrawlJob ${name}`);
    }
    const validation = await validateCrawlJob(
      namespace,
      job.spec,
      (ns, secret) => this.#secretKeys(ns, secret),
      (ns, configMap) => this.#configMapKeys(ns, configMap),
    );
    // A finished CrawlJob is never restarted, and one whose runner Job is gone keeps its last status.
    const finished = job.status?.completionTime !== undefined && job.status.runner?.jobName !== undefined;
    if (!finished) runner = await this.#syncRunner(job, runner, validation, logger);
    const pass: Pass = { job, at, logger, validation, runner };
    if (!(finished && !runner)) await this.#writeStatus(pass, feeds);
    const result = await this.#deliverCompletion(job);
    return this.#expire(pass, result);
  }

  async #secretKeys(namespace: string, name: string): Promise<string[] | undefined> {
    const secret = await this.#client.getOrUndefined<KubeObject & { data?: Record<string, string> }>(
      SECRETS,
      namespace,
      name,
    );
    // Only the key names leave this function: never the values.
    return secret ? Object.keys({ ...secret.data, ...(secret.stringData as object | undefined) }) : undefined;
  }

  async #configMapKeys(namespace: string, name: string): Promise<string[] | undefined> {
    const cm = await this.#client.getOrUndefined<
      KubeObject & { data?: Record<string, string>; binaryData?: Record<string, string> }
    >(CONFIGMAPS, namespace, name);
    return cm ? Object.keys({ ...cm.data, ...cm.binaryData }) : undefined;
  }

  /** Starts the runner of a valid, unsuspended job; keeps a running one's RBAC and suspension in line. */
  async #syncRunner(
    job: Job,
    runner: BatchJob | undefined,
    validation: ValidationFailure | undefined,
    logger: Logger,
  ): Promise<BatchJob | undefined> {
    if (runner) {
      await ensureRbac(this.#client, job);
      return this.#syncSuspend(job, runner, logger);
    }
    if (validation || job.spec.suspend === true) return undefined;
    const { namespace, name } = job.metadata as { namespace: string; name: string };
    if (job.status?.runner?.generation === undefined) await ensureSnapshot(this.#client, job);
    await ensureRbac(this.#client, job);
    const desired = buildRunnerJob(job, { defaultImage: this.#d.runnerImage });
    try {
      const created = (await this.#client.create(JOBS, desired)) as BatchJob;
      const shards = job.spec.runner?.parallelism ?? 1;
      logger.info({ shards }, `Created Job ${namespace}/${runnerName(name)} for CrawlJob ${name}`);
      await this.#d.events.record(
        job,
        "Normal",
        "RunnerCreated",
        `Created Job ${runnerName(name)} with ${shards} shard(s)`,
      );
      return created;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      return this.#client.get<BatchJob>(JOBS, namespace, runnerName(name));
    }
  }

  /** spec.suspend onto the runner Job's spec.suspend, while the Job has not finished. */
  async #syncSuspend(job: Job, runner: BatchJob, logger: Logger): Promise<BatchJob> {
    const { namespace, name } = job.metadata as { namespace: string; name: string };
    const wantSuspend = job.spec.suspend === true;
    const terminal = runner.status?.conditions?.some(
      (c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True",
    );
    if (terminal || (runner.spec?.suspend === true) === wantSuspend) return runner;
    const patched = await this.#client.patch<BatchJob>(JOBS, namespace, runnerName(name), {
      metadata: { resourceVersion: runner.metadata.resourceVersion },
      spec: { suspend: wantSuspend },
    });
    const verb = wantSuspend ? "Suspended" : "Resumed";
    logger.info(`${verb} Job ${namespace}/${runnerName(name)}`);
    await this.#d.events.record(job, "Normal", verb, `${verb} Job ${runnerName(name)}`);
    return patched;
  }

  /** The runner Job's own pods (controller owner uid), from the cache. */
  #podsOf(runner: BatchJob): RunnerPod[] {
    const { namespace, uid } = runner.metadata;
    return this.#d.runnerPods?.list((p) => p.metadata.namespace === namespace && isOwnedBy(p, uid)) ?? [];
  }

  /** The job's CrawlFeeds from the API server itself, not the cache. */
  async #freshFeeds(job: Job): Promise<(CrawlFeed & KubeObject)[]> {
    const list = await this.#client.list<CrawlFeed & KubeObject>(CRAWLFEEDS, {
      namespace: job.metadata.namespace,
      labelSelector: `${CRAWLJOB_LABEL}=${job.metadata.name}`,
    });
    return list.items.filter((f) => isOwnedBy(f, job.metadata.uid));
  }

  /** Computes the status and writes it when it changed, with the Events its transitions deserve. */
  async #writeStatus(pass: Pass, cachedFeeds: CrawlFeed[]): Promise<void> {
    const { job, at, validation, runner, logger } = pass;
    const pods = runner ? this.#podsOf(runner) : [];
    const compute = (feeds: CrawlFeed[]) => computeStatus({ job, now: at, validation, runnerJob: runner, feeds, pods });
    // CrawlFeeds are never deleted while their CrawlJob lives: fewer in the
    // cache than the status already counted means the cache is behind.
    let feeds = cachedFeeds;
    if (feeds.length < (job.status?.feedSummary?.closed ?? 0)) feeds = await this.#freshFeeds(job);
    let status = compute(feeds);
    const wasSucceeded = getCondition(job.status?.conditions, "Succeeded")?.status === "True";
    const isSucceeded = getCondition(status.conditions, "Succeeded")?.status === "True";
    if (!wasSucceeded && isSucceeded) {
      // The informers watch CrawlFeeds and Jobs separately, with no order
      // between them: the runner's last CrawlFeed may still be on its way to
      // the cache when its Job's completion arrives. Before declaring
      // success, read the CrawlFeeds from the API server itself.
      status = compute(await this.#freshFeeds(job));
    } else if (wasSucceeded && !isSucceeded) {
      // Succeeded=True is final (a bounded-execution object, like a Job):
      // a cache that lags behind a delivery must not flip it back.
      status = keepSucceeded(status, job.status!);
    }
    if (runner) {
      const generation = Number(runner.metadata.annotations?.[SPEC_GENERATION_ANNOTATION] ?? job.metadata.generation);
      status.runner = { ...status.runner, generation };
    }
    if (isDeepStrictEqual(status, job.status ?? {})) return;
    const before = job.status;
    // An update carrying the resourceVersion read: 409 when a runner, the
    // delivery or another (deposed) operator wrote in between; retried.
    const updated = await this.#client.updateStatus<Job>(CRAWLJOBS, { ...job, status });
    job.metadata = updated.metadata;
    job.status = updated.status;
    for (const e of transitionEvents(before, status)) await this.#d.events.record(job, e.type, e.reason, e.message);
    if (before?.phase !== status.phase) {
      logger.info({ phase: status.phase }, `CrawlJob ${job.metadata.name} is ${status.phase}`);
    }
  }

  /** onCompletion: one crawl.completed event once the runner finished. */
  async #deliverCompletion(job: Job): Promise<ReconcileResult | undefined> {
    if (
      job.spec.ingest?.webhook?.mode !== "onCompletion" ||
      getCondition(job.status?.conditions, "CrawlComplete")?.status !== "True" ||
      ["Delivered", "Failed"].includes(job.status?.completionDelivery?.state ?? "")
    ) {
      return undefined;
    }
    if (!this.#d.delivery) throw new Error("No delivery is configured for mode onCompletion");
    // Every feed, read from the API server: the event lists them all.
    const r = await this.#d.delivery.deliverCompletion(job, await this.#freshFeeds(job));
    return r && r.requeueAfterMs !== undefined ? { requeueAfterMs: r.requeueAfterMs } : undefined;
  }

  /** ttlSecondsAfterFinished: delete the CrawlJob (and, by ownership, everything it made), or come back then. */
  async #expire({ job, at, logger }: Pass, result: ReconcileResult | undefined): Promise<ReconcileResult | undefined> {
    const ttl = job.spec.ttlSecondsAfterFinished;
    const completed = job.status?.completionTime;
    if (ttl === undefined || !completed) return result;
    const wait = Date.parse(completed) + ttl * 1000 - at.getTime();
    if (wait > 0) return { requeueAfterMs: Math.min(result?.requeueAfterMs ?? Number.POSITIVE_INFINITY, wait + 50) };
    const { namespace, name, uid } = job.metadata as { namespace: string; name: string; uid?: string };
    try {
      await this.#client.delete(CRAWLJOBS, namespace, name, { uid, propagationPolicy: "Background" });
      logger.info({ ttlSeconds: ttl }, `Deleted CrawlJob ${namespace}/${name}: ttlSecondsAfterFinished elapsed`);
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
    return undefined;
  }
}

/** The previous verdict of a CrawlJob that already succeeded, over a newly computed status. */
function keepSucceeded(status: CrawlJobStatus, previous: CrawlJobStatus): CrawlJobStatus {
  return {
    ...status,
    phase: previous.phase,
    conditions: previous.conditions,
    completionTime: previous.completionTime,
    feedSummary: previous.feedSummary,
    recentFeeds: previous.recentFeeds,
  };
}
