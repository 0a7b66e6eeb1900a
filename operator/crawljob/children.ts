// The objects a CrawlJob owns, as pure functions of the CrawlJob (the runner
// pod contract in docs/operator.md): the spec snapshot ConfigMap, the per-job
// ServiceAccount/Role/RoleBinding, and the Indexed runner Job.

import { GROUP } from "../../crds/schema/common.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { CRAWLJOB_LABEL, CRAWLSCHEDULE_LABEL, SCHEDULED_TIME_ANNOTATION } from "../../crds/schema/names.ts";
import type { KubeObject, OwnerReference } from "../../kube/client.ts";
import { RUNNER_POD_FAILURE_POLICY, runnerPodSpec, SPEC_KEY } from "./runner-pod.ts";

export const SPEC_GENERATION_ANNOTATION = "feedcrawl.io/spec-generation";
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY = "feedcrawl-operator";

export const specConfigMapName = (job: string) => `${job}-spec`;
export const runnerName = (job: string) => `${job}-runner`;

/** The reference that makes `owner` the controller of an object (garbage collection, `kubectl describe`). */
export function controllerReference(owner: {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; uid?: string };
}): OwnerReference {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name!,
    uid: owner.metadata.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
}

function childLabels(job: CrawlJob): Record<string, string> {
  return {
    "app.kubernetes.io/name": "feedcrawl",
    "app.kubernetes.io/component": "runner",
    [MANAGED_BY_LABEL]: MANAGED_BY,
    [CRAWLJOB_LABEL]: job.metadata.name!,
  };
}

function childMeta(job: CrawlJob, name: string, extra: Record<string, unknown> = {}) {
  return {
    name,
    namespace: job.metadata.namespace,
    labels: childLabels(job),
    ownerReferences: [controllerReference(job)],
    ...extra,
  };
}

/**
 * The runner's view of the CrawlJob: the spec of the generation it starts
 * (Secret names only, never values). spec.runner's env and envFrom stay out:
 * the pod gets them, and a literal env value is nobody else's business.
 */
export function specSnapshot(job: CrawlJob): string {
  const { env: _env, envFrom: _envFrom, ...runner } = job.spec.runner ?? {};
  const spec = job.spec.runner ? { ...job.spec, runner } : job.spec;
  const scheduled = job.metadata.annotations?.[SCHEDULED_TIME_ANNOTATION];
  const schedule = job.metadata.labels?.[CRAWLSCHEDULE_LABEL];
  return `${JSON.stringify(
    {
      apiVersion: job.apiVersion,
      kind: job.kind,
      metadata: {
        name: job.metadata.name,
        namespace: job.metadata.namespace,
        uid: job.metadata.uid,
        generation: job.metadata.generation,
        ...(scheduled ? { annotations: { [SCHEDULED_TIME_ANNOTATION]: scheduled } } : {}),
        ...(schedule ? { labels: { [CRAWLSCHEDULE_LABEL]: schedule } } : {}),
      },
      spec,
    },
    null,
    2,
  )}\n`;
}

export function specConfigMap(job: CrawlJob): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: childMeta(job, specConfigMapName(job.metadata.name!), {
      annotations: { [SPEC_GENERATION_ANNOTATION]: String(job.metadata.generation ?? 0) },
    }),
    data: { [SPEC_KEY]: specSnapshot(job) },
  };
}

/** spec.runner.serviceAccountAnnotations go on it: workload identity (IRSA, GKE) binds a cloud role to it. */
export function runnerServiceAccount(job: CrawlJob): KubeObject {
  const annotations = job.spec.runner?.serviceAccountAnnotations;
  return {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: childMeta(
      job,
      runnerName(job.metadata.name!),
      annotations && Object.keys(annotations).length > 0 ? { annotations } : {},
    ),
  };
}

/** Exactly what a runner needs: its own CrawlJob (read, status patch), and CrawlFeeds to report files. */
function runnerRoleRules(job: CrawlJob): Record<string, unknown>[] {
  const name = job.metadata.name!;
  return [
    { apiGroups: [GROUP], resources: ["crawljobs"], resourceNames: [name], verbs: ["get"] },
    { apiGroups: [GROUP], resources: ["crawljobs/status"], resourceNames: [name], verbs: ["get", "patch"] },
    // blockOwnerDeletion on the CrawlFeeds' ownerReference needs this where
    // OwnerReferencesPermissionEnforcement is on.
    { apiGroups: [GROUP], resources: ["crawljobs/finalizers"], resourceNames: [name], verbs: ["update"] },
    // create only: no get or list, so a runner never sees another job's
    // CrawlFeeds (a label-selected list cannot be narrowed by RBAC). A
    // restarted shard resumes its batch numbering from its own CrawlJob's
    // status.shardProgress instead.
    { apiGroups: [GROUP], resources: ["crawlfeeds"], verbs: ["create"] },
  ];
}

export function runnerRole(job: CrawlJob): KubeObject {
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: childMeta(job, runnerName(job.metadata.name!)),
    rules: runnerRoleRules(job),
  };
}

export function runnerRoleBinding(job: CrawlJob): KubeObject {
  const name = runnerName(job.metadata.name!);
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: childMeta(job, name),
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
    subjects: [{ kind: "ServiceAccount", name, namespace: job.metadata.namespace }],
  };
}

interface RunnerJobOptions {
  /** The image when spec.runner.image is empty: the operator's own. */
  defaultImage: string;
}

export function runnerJob(job: CrawlJob, options: RunnerJobOptions): KubeObject {
  const name = job.metadata.name!;
  const runner = job.spec.runner ?? {};
  const parallelism = runner.parallelism ?? 1;
  const deadline = runner.activeDeadlineSeconds ?? 0;
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: childMeta(job, runnerName(name), {
      annotations: { [SPEC_GENERATION_ANNOTATION]: String(job.metadata.generation ?? 0) },
    }),
    spec: {
      completionMode: "Indexed",
      completions: parallelism,
      parallelism,
      backoffLimit: runner.backoffLimit ?? 3,
      podFailurePolicy: RUNNER_POD_FAILURE_POLICY,
      ...(deadline > 0 ? { activeDeadlineSeconds: deadline } : {}),
      suspend: job.spec.suspend === true,
      template: {
        metadata: { labels: childLabels(job) },
        spec: runnerPodSpec(job, {
          serviceAccount: runnerName(name),
          configMap: specConfigMapName(name),
          image: runner.image || options.defaultImage,
        }),
      },
    },
  };
}
