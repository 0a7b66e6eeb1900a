// Reconciles one CrawlJob, level-triggered: read what exists (the CrawlJob,
// its children, CrawlFeeds, runner pods and the key names of its Secrets, all
// from informer caches), make the children match, then write the status that
// describes it.
//
// Validation and the children's checks run again only when something they
// read changed: the CrawlJob's generation, labels or annotations, a
// referenced Secret, a child, the runner Job (controller-runtime's
// GenerationChangedPredicate, applied to what the reconcile reads rather than
// to the event, since the work queue merges events). A status-only change,
// such as a runner's stats patch every few seconds, only recomputes the
// status from the caches. A full pass also runs at least every `recheckMs`
// (spider.moduleConfigMapRef's ConfigMap is read from the API, not watched).
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
import type { CrawlJob, CrawlJobStatus } from "../../crds/schema/crawljob.ts";
import { CRAWLJOB_LABEL } from "../../crds/schema/names.ts";
import type { KubeClient, KubeObject } from "../../kube/client.ts";
import { isAlreadyExists, isConflict, isNotFound } from "../../kube/errors.ts";
import { CONFIGMAPS, CRAWLFEEDS, CRAWLJOBS, JOBS } from "../../kube/resources.ts";
import { getCondition } from "../runtime/conditions.ts";
import type { ReconcileRequest, ReconcileResult } from "../runtime/controller.ts";
import { TerminalError } from "../runtime/errors.ts";
import type { EventRecorder } from "../runtime/events.ts";
import type { Index } from "../runtime/index.ts";
import type { InformerGroup } from "../runtime/informer.ts";
import { type ChildCaches, indexKey, type SecretKeys } from "./caches.ts";
import { runnerJob as buildRunnerJob, runnerName, SPEC_GENERATION_ANNOTATION, specConfigMapName } from "./children.ts";
import { ensureRbac, ensureSnapshot, isOwnedBy } from "./ensure.ts";
import type { RunnerPod } from "./pods.ts";
import { type BatchJob, computeStatus, stopRequested, transitionEvents } from "./status.ts";
import { secretRefsOf, type ValidationFailure, validateCrawlJob } from "./validate.ts";

/** What the delivery part exposes to the CrawlJob reconcile (operator/delivery/index.ts). */
export interface CompletionDelivery {
  deliverCompletion(job: CrawlJob, feeds: CrawlFeed[]): Promise<{ requeueAfterMs?: number } | undefined>;
}

interface CrawlJobReconcilerDeps {
  client: KubeClient;
  crawlJobs: Pick<InformerGroup<Job>, "get">;
  runnerJobs: Pick<InformerGroup<BatchJob>, "get">;
  /** CrawlFeeds by CrawlJob label, namespace/name (caches.ts). */
  feedsByJob: Index<CrawlFeed & KubeObject>;
  /** The runner Jobs' pods by their Job's uid (caches.ts), for RunnerHealthy. */
  podsByOwner?: Index<RunnerPod>;
  /** The spec snapshot ConfigMap, ServiceAccount, Role and RoleBinding caches. */
  children: ChildCaches;
  /** The watched namespaces' Secrets, key names only (caches.ts secretKeysTransform). */
  secrets: Pick<InformerGroup<SecretKeys>, "get">;
  events: EventRecorder;
  /** spec.runner.image's default: the operator's own image. */
  runnerImage: string;
  delivery?: CompletionDelivery;
  now?: () => Date;
  /** A full pass (validation, children) at least this often, even when nothing it reads changed; default 10 min. */
  recheckMs?: number;
}

/** What the last full pass of a CrawlJob saw and concluded. */
interface Checked {
  inputs: string;
  validation: ValidationFailure | undefined;
  at: number;
}

type Job = CrawlJob & KubeObject;

/** What one reconcile observed, shared by its steps. */
interface Pass {
  job: Job;
  at: Date;
  logger: Logger;
  /** The reconcile's signal: every API call of the pass gets it. */
  signal: AbortSignal;
  validation: ValidationFailure | undefined;
  runner: BatchJob | undefined;
  /** The job's CrawlFeeds from the API server, read at most once per reconcile. */
  freshFeeds?: Promise<(CrawlFeed & KubeObject)[]>;
}

const notOwned = (namespace: string, name: string) =>
  new TerminalError(`Job ${namespace}/${runnerName(name)} exists and is not owned by CrawlJob ${name}`, {
    reason: "NotOwned",
  });

export function createCrawlJobReconciler(deps: CrawlJobReconcilerDeps) {
  const reconciler = new CrawlJobReconciler(deps);
  return (req: ReconcileRequest) => reconciler.reconcile(req);
}

class CrawlJobReconciler {
  readonly #d: CrawlJobReconcilerDeps;
  readonly #client: KubeClient;
  readonly #now: () => Date;
  /** namespace/name → its last full pass. */
  readonly #checked = new Map<string, Checked>();

  constructor(deps: CrawlJobReconcilerDeps) {
    this.#d = deps;
    this.#client = deps.client;
    this.#now = deps.now ?? (() => new Date());
  }

  async reconcile(req: ReconcileRequest): Promise<ReconcileResult | undefined> {
    const { namespace, name, logger, signal } = req;
    const key = indexKey(namespace, name);
    const cached = this.#d.crawlJobs.get(namespace, name);
    if (!cached || cached.metadata.deletionTimestamp) {
      this.#checked.delete(key);
      return undefined; // deleted: its children go with it (ownerReferences)
    }
    const job = structuredClone(cached);
    const uid = job.metadata.uid;
    const at = this.#now();

    const feeds = this.#d.feedsByJob.get(key).filter((f) => isOwnedBy(f, uid));
    let runner = this.#d.runnerJobs.get(namespace, runnerName(name));
    if (runner && !isOwnedBy(runner, uid)) {
      throw notOwned(namespace, name);
    }
    const checked = await this.#check(job, runner, at, logger, signal);
    runner = checked.runner;
    const pass: Pass = { job, at, logger, signal, validation: checked.validation, runner };
    if (!(isFinished(job) && !runner)) await this.#writeStatus(pass, feeds);
    const result = await this.#deliverCompletion(pass);
    return this.#expire(pass, result);
  }

  /** Validation and the children (runner Job, snapshot, RBAC): again only when what they read changed. */
  async #check(
    job: Job,
    cachedRunner: BatchJob | undefined,
    at: Date,
    logger: Logger,
    signal: AbortSignal,
  ): Promise<{ validation: ValidationFailure | undefined; runner: BatchJob | undefined }> {
    const { namespace, name } = job.metadata as { namespace: string; name: string };
    const key = indexKey(namespace, name);
    const inputs = this.#checkInputs(job, cachedRunner);
    const last = this.#checked.get(key);
    if (last && last.inputs === inputs && at.getTime() - last.at < (this.#d.recheckMs ?? 10 * 60_000)) {
      return { validation: last.validation, runner: cachedRunner }; // only the status changed
    }
    const validation = await validateCrawlJob(
      namespace,
      job.spec,
      (ns, secret) => this.#d.secrets.get(ns, secret)?.keys,
      (ns, configMap) => this.#configMapKeys(ns, configMap, signal),
    );
    const runner = isFinished(job)
      ? cachedRunner
      : await this.#syncRunner(job, cachedRunner, validation, logger, signal);
    this.#checked.set(key, { inputs, validation, at: at.getTime() });
    return { validation, runner };
  }

  /**
   * What validation and the children's checks read, as one string: the
   * CrawlJob's spec generation, labels and annotations, and the
   * resourceVersions of its Secrets, children and runner Job in the caches.
   */
  #checkInputs(job: Job, runner: BatchJob | undefined): string {
    const { namespace, name } = job.metadata as { namespace: string; name: string };
    const { children, secrets } = this.#d;
    const version = (obj: KubeObject | undefined) => obj?.metadata.resourceVersion ?? "-";
    return JSON.stringify([
      job.metadata.uid,
      job.metadata.generation,
      job.metadata.labels ?? {},
      job.metadata.annotations ?? {},
      secretRefsOf(job.spec).map((ref) => version(secrets.get(namespace, ref.name))),
      version(children.configMaps.get(namespace, specConfigMapName(name))),
      // The ServiceAccount, Role and RoleBinding share the runner's name (children.ts).
      version(children.serviceAccounts.get(namespace, runnerName(name))),
      version(children.roles.get(namespace, runnerName(name))),
      version(children.roleBindings.get(namespace, runnerName(name))),
      version(runner),
    ]);
  }

  async #configMapKeys(namespace: string, name: string, signal: AbortSignal): Promise<string[] | undefined> {
    const cm = await this.#client.getOrUndefined<
      KubeObject & { data?: Record<string, string>; binaryData?: Record<string, string> }
    >(CONFIGMAPS, namespace, name, { signal });
    return cm ? Object.keys({ ...cm.data, ...cm.binaryData }) : undefined;
  }

  /** Starts the runner of a valid, unsuspended job; keeps a running one's RBAC and suspension in line. */
  async #syncRunner(
    job: Job,
    runner: BatchJob | undefined,
    validation: ValidationFailure | undefined,
    logger: Logger,
    signal: AbortSignal,
  ): Promise<BatchJob | undefined> {
    const { children } = this.#d;
    if (runner) {
      await ensureRbac(this.#client, children, job, signal);
      return this.#syncSuspend(job, runner, logger, signal);
    }
    const { namespace, name } = job.metadata as { namespace: string; name: string };
    if (stopRequested(job)) {
      // Stopped before its runner started: never start one. The cache may be behind a
      // create of an earlier pass, so the API says whether there is a runner to stop.
      const existing = await this.#client.getOrUndefined<BatchJob>(JOBS, namespace, runnerName(name), { signal });
      if (existing && !isOwnedBy(existing, job.metadata.uid)) throw notOwned(namespace, name);
      return existing && this.#syncSuspend(job, existing, logger, signal);
    }
    if (validation || job.spec.suspend === true) return undefined;
    if (job.status?.runner?.generation === undefined) await ensureSnapshot(this.#client, children, job, signal);
    await ensureRbac(this.#client, children, job, signal);
    const desired = buildRunnerJob(job, { defaultImage: this.#d.runnerImage });
    try {
      const created = (await this.#client.create(JOBS, desired, { signal })) as BatchJob;
      const shards = job.spec.runner?.parallelism ?? 1;
      logger.info({ shards }, `Created Job ${namespace}/${runnerName(name)} for CrawlJob ${name}`);
      await this.#d.events.record(
        job,
        "Normal",
        "RunnerCreated",
        `Created Job ${runnerName(name)} with ${shards} shard(s)`,
        signal,
      );
      return created;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      // Not in the cache: not ours yet (the cache is behind) or someone else's (no managed-by label).
      const existing = await this.#client.get<BatchJob>(JOBS, namespace, runnerName(name), { signal });
      if (!isOwnedBy(existing, job.metadata.uid)) throw notOwned(namespace, name);
      return existing;
    }
  }

  /**
   * spec.suspend onto the runner Job's spec.suspend, while the Job has not
   * finished. spec.stop suspends it for good: the Job controller deletes the
   * pods, each runner gets SIGTERM, stores and reports its open batches and
   * exits 143, and the Job is never resumed.
   */
  async #syncSuspend(job: Job, runner: BatchJob, logger: Logger, signal: AbortSignal): Promise<BatchJob> {
    const { namespace, name } = job.metadata as { namespace: string; name: string };
    const stop = stopRequested(job);
    const wantSuspend = job.spec.suspend === true || stop;
    const terminal = runner.status?.conditions?.some(
      (c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True",
    );
    if (terminal || (runner.spec?.suspend === true) === wantSuspend) return runner;
    const patched = await this.#client.patch<BatchJob>(
      JOBS,
      namespace,
      runnerName(name),
      { metadata: { resourceVersion: runner.metadata.resourceVersion }, spec: { suspend: wantSuspend } },
      { signal },
    );
    if (stop) {
      logger.info(`Stopping Job ${namespace}/${runnerName(name)}: spec.stop of CrawlJob ${name} is true`);
      const why = "spec.stop is true; its runners store and report their open batches";
      await this.#d.events.record(job, "Normal", "Stopping", `Stopping Job ${runnerName(name)}: ${why}`, signal);
      return patched;
    }
    const verb = wantSuspend ? "Suspended" : "Resumed";
    logger.info(`${verb} Job ${namespace}/${runnerName(name)}`);
    await this.#d.events.record(job, "Normal", verb, `${verb} Job ${runnerName(name)}`, signal);
    return patched;
  }

  /** The runner Job's own pods (controller owner uid), from the cache. */
  #podsOf(runner: BatchJob): RunnerPod[] {
    return runner.metadata.uid ? (this.#d.podsByOwner?.get(runner.metadata.uid) ?? []) : [];
  }

  /** The job's CrawlFeeds from the API server itself, not the cache: one list per reconcile at most. */
  #freshFeeds(pass: Pass): Promise<(CrawlFeed & KubeObject)[]> {
    const { job } = pass;
    pass.freshFeeds ??= this.#client
      .list<CrawlFeed & KubeObject>(CRAWLFEEDS, {
        namespace: job.metadata.namespace,
        labelSelector: `${CRAWLJOB_LABEL}=${job.metadata.name}`,
        signal: pass.signal,
      })
      .then((list) => list.items.filter((f) => isOwnedBy(f, job.metadata.uid)));
    return pass.freshFeeds;
  }

  /** Computes the status and writes it when it changed, with the Events its transitions deserve. */
  async #writeStatus(pass: Pass, cachedFeeds: CrawlFeed[]): Promise<void> {
    const { job, at, validation, runner, logger, signal } = pass;
    const pods = runner ? this.#podsOf(runner) : [];
    const compute = (feeds: CrawlFeed[]) => computeStatus({ job, now: at, validation, runnerJob: runner, feeds, pods });
    // CrawlFeeds are never deleted while their CrawlJob lives: fewer in the
    // cache than the status already counted means the cache is behind.
    let feeds = cachedFeeds;
    if (feeds.length < (job.status?.feedSummary?.closed ?? 0)) feeds = await this.#freshFeeds(pass);
    let status = compute(feeds);
    const wasSucceeded = getCondition(job.status?.conditions, "Succeeded")?.status === "True";
    const isSucceeded = getCondition(status.conditions, "Succeeded")?.status === "True";
    if (!wasSucceeded && isSucceeded) {
      // The informers watch CrawlFeeds and Jobs separately, with no order
      // between them: the runner's last CrawlFeed may still be on its way to
      // the cache when its Job's completion arrives. Before declaring
      // success, read the CrawlFeeds from the API server itself.
      status = compute(await this.#freshFeeds(pass));
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
    const updated = await this.#client.updateStatus<Job>(CRAWLJOBS, { ...job, status }, { signal });
    job.metadata = updated.metadata;
    job.status = updated.status;
    for (const e of transitionEvents(before, status)) {
      await this.#d.events.record(job, e.type, e.reason, e.message, signal);
    }
    if (before?.phase !== status.phase) {
      logger.info({ phase: status.phase }, `CrawlJob ${job.metadata.name} is ${status.phase}`);
    }
  }

  /** onCompletion: one crawl.completed event once the runner finished. */
  async #deliverCompletion(pass: Pass): Promise<ReconcileResult | undefined> {
    const { job } = pass;
    if (
      job.spec.ingest?.webhook?.mode !== "onCompletion" ||
      job.status?.runner?.jobName === undefined || // stopped before a runner started: no crawl to report
      getCondition(job.status?.conditions, "CrawlComplete")?.status !== "True" ||
      ["Delivered", "Failed"].includes(job.status?.completionDelivery?.state ?? "")
    ) {
      return undefined;
    }
    if (!this.#d.delivery) throw new Error("No delivery is configured for mode onCompletion");
    // Every feed, read from the API server: the event lists them all.
    const r = await this.#d.delivery.deliverCompletion(job, await this.#freshFeeds(pass));
    return r && r.requeueAfterMs !== undefined ? { requeueAfterMs: r.requeueAfterMs } : undefined;
  }

  /** ttlSecondsAfterFinished: delete the CrawlJob (and, by ownership, everything it made), or come back then. */
  async #expire(
    { job, at, logger, signal }: Pass,
    result: ReconcileResult | undefined,
  ): Promise<ReconcileResult | undefined> {
    const ttl = job.spec.ttlSecondsAfterFinished;
    const completed = job.status?.completionTime;
    if (ttl === undefined || !completed) return result;
    const wait = Date.parse(completed) + ttl * 1000 - at.getTime();
    if (wait > 0) return { requeueAfterMs: Math.min(result?.requeueAfterMs ?? Number.POSITIVE_INFINITY, wait + 50) };
    const { namespace, name, uid } = job.metadata as { namespace: string; name: string; uid?: string };
    try {
      await this.#client.delete(CRAWLJOBS, namespace, name, { uid, propagationPolicy: "Background", signal });
      logger.info({ ttlSeconds: ttl }, `Deleted CrawlJob ${namespace}/${name}: ttlSecondsAfterFinished elapsed`);
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
    return undefined;
  }
}

/** A finished CrawlJob is never restarted, and one whose runner Job is gone keeps its last status. */
const isFinished = (job: CrawlJob) =>
  job.status?.completionTime !== undefined && job.status.runner?.jobName !== undefined;

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
