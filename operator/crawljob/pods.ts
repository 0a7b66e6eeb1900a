// What the runner Job's pods say went wrong: image pulls, scheduling, a
// container that could not start, OOM kills, configuration errors (exit 2),
// evictions. The operator watches only the pods of its own Jobs (label
// selector) and keeps only the fields read here (podCacheTransform).
import type { KubeObject } from "../../kube/client.ts";
import { EXIT_CONFIG, EXIT_STOPPED, RUNNER_CONTAINER } from "./runner-pod.ts";

interface ContainerState {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: { exitCode?: number; reason?: string; message?: string; signal?: number };
}

interface ContainerStatus {
  name: string;
  state?: ContainerState;
}

export interface RunnerPod extends KubeObject {
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: ContainerStatus[];
    initContainerStatuses?: ContainerStatus[];
  };
}

/** A runner pod's problem, for the RunnerHealthy condition. */
export interface PodProblem {
  /** The kubelet's or the scheduler's reason (ImagePullBackOff, Unschedulable, OOMKilled, …), or RunnerConfigError / RunnerError. */
  reason: string;
  /** `Pod <name> (shard <n>): <what the kubelet, scheduler or runner said>`. */
  message: string;
  shard: number;
}

export const COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index";

/** Waiting reasons that mean the container will not start without a change. */
const STUCK = new Set([
  "ImagePullBackOff",
  "ErrImagePull",
  "ErrImageNeverPull",
  "InvalidImageName",
  "RegistryUnavailable",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
  "CrashLoopBackOff",
  "PreCreateHookError",
  "PostStartHookError",
]);

const MAX_DETAIL = 1024;
/** metav1.Condition's reason pattern. */
const CONDITION_REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
const clip = (text: string) => (text.length > MAX_DETAIL ? `${text.slice(0, MAX_DETAIL - 1)}…` : text);

/**
 * The gist of a termination message. With FallbackToLogsOnError it is the
 * runner's last log lines (pino JSON): the last error line's `msg` and `err`
 * (or its first `problems`), else the last line as it is.
 */
export function terminationGist(message: string | undefined): string {
  const lines = (message ?? "").split("\n").filter((l) => l.trim() !== "");
  for (let i = lines.length - 1; i >= 0; i--) {
    let entry: { level?: unknown; msg?: unknown; err?: unknown; problems?: unknown };
    try {
      entry = JSON.parse(lines[i]!);
    } catch {
      continue;
    }
    const level = entry.level;
    const isError = (typeof level === "number" && level >= 50) || level === "error" || level === "fatal";
    if (!isError || typeof entry.msg !== "string") continue;
    const detail =
      typeof entry.err === "string"
        ? entry.err
        : Array.isArray(entry.problems) && typeof entry.problems[0] === "string"
          ? entry.problems[0]
          : "";
    return clip(detail ? `${entry.msg}: ${detail}` : entry.msg);
  }
  return clip(lines.at(-1)?.trim() ?? "");
}

function terminatedProblem(
  t: NonNullable<ContainerState["terminated"]>,
): { reason: string; detail: string } | undefined {
  const gist = terminationGist(t.message);
  const code = t.exitCode ?? 0;
  if (t.reason === "OOMKilled")
    return { reason: "OOMKilled", detail: "the runner was killed: out of memory (exit 137)" };
  if (code === 0 || code === EXIT_STOPPED) return undefined; // done, or stopped by SIGTERM after storing everything
  if (code === EXIT_CONFIG) {
    return { reason: "RunnerConfigError", detail: `exit 2, a configuration error${gist ? `: ${gist}` : ""}` };
  }
  const specific = t.reason && t.reason !== "Error" && t.reason !== "Completed" ? t.reason : "RunnerError";
  return { reason: specific, detail: `exit ${code}${gist ? `: ${gist}` : ""}` };
}

/** One pod's problem, if it has one. */
function problemOf(pod: RunnerPod): { reason: string; detail: string } | undefined {
  const s = pod.status ?? {};
  const statuses = [...(s.initContainerStatuses ?? []), ...(s.containerStatuses ?? [])];
  for (const c of statuses) {
    const waiting = c.state?.waiting;
    if (waiting?.reason && STUCK.has(waiting.reason)) {
      return { reason: waiting.reason, detail: waiting.message || waiting.reason };
    }
  }
  const unscheduled = s.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
  if (s.phase === "Pending" && unscheduled?.reason === "Unschedulable") {
    return { reason: "Unschedulable", detail: unscheduled.message || "no node fits the pod" };
  }
  if (s.phase !== "Failed") return undefined;
  // The pod's own reason first: the kubelet evicted it (an emptyDir over its sizeLimit, node
  // pressure), a deadline, admission. Kubernetes counts an eviction as a disruption (the Job
  // retries it without counting), so this condition is where it shows.
  if (s.reason) return { reason: s.reason, detail: s.message || s.reason };
  const runner = s.containerStatuses?.find((c) => c.name === RUNNER_CONTAINER)?.state?.terminated;
  if (runner) return terminatedProblem(runner);
  return { reason: "PodFailed", detail: s.message || "the pod failed" };
}

const shardOf = (pod: RunnerPod) =>
  Number(pod.metadata.labels?.[COMPLETION_INDEX] ?? pod.metadata.annotations?.[COMPLETION_INDEX] ?? 0);

/**
 * The problems of the runner pods that count now: per shard only its newest
 * pod (a replaced pod's failure is history, kept in Events), pods being
 * deleted aside (deleted by hand, preempted, drained: replaced anyway).
 * Ordered by shard.
 */
export function podProblems(pods: readonly RunnerPod[]): PodProblem[] {
  const newest = new Map<number, RunnerPod>();
  for (const pod of pods) {
    if (pod.metadata.deletionTimestamp) continue;
    const shard = shardOf(pod);
    const seen = newest.get(shard);
    const created = pod.metadata.creationTimestamp ?? "";
    const seenCreated = seen?.metadata.creationTimestamp ?? "";
    if (!seen || created > seenCreated || (created === seenCreated && pod.metadata.name! > seen.metadata.name!)) {
      newest.set(shard, pod);
    }
  }
  const problems: PodProblem[] = [];
  for (const [shard, pod] of [...newest].sort(([a], [b]) => a - b)) {
    const p = problemOf(pod);
    // A condition reason must be CamelCase-ish: anything else the kubelet says becomes PodProblem.
    if (p && !CONDITION_REASON.test(p.reason)) p.reason = "PodProblem";
    if (p)
      problems.push({ reason: p.reason, shard, message: `Pod ${pod.metadata.name} (shard ${shard}): ${p.detail}` });
  }
  return problems;
}

const pick = <T extends object>(obj: T | undefined, keys: (keyof T)[]): Partial<T> | undefined => {
  if (!obj) return undefined;
  const out: Partial<T> = {};
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
};

/** What the pod cache keeps of a pod: identity, ownership and the status fields read above. */
export function podCacheTransform(pod: RunnerPod): RunnerPod {
  const m = pod.metadata;
  const s = pod.status;
  const containers = (list: ContainerStatus[] | undefined) => list?.map((c) => ({ name: c.name, state: c.state }));
  const index = m.annotations?.[COMPLETION_INDEX];
  return {
    apiVersion: pod.apiVersion,
    kind: pod.kind,
    metadata: {
      ...(pick(m, [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "labels",
        "ownerReferences",
      ]) as RunnerPod["metadata"]),
      ...(index !== undefined ? { annotations: { [COMPLETION_INDEX]: index } } : {}),
    },
    status: s && {
      ...pick(s, ["phase", "reason", "message", "conditions"]),
      containerStatuses: containers(s.containerStatuses),
      initContainerStatuses: containers(s.initContainerStatuses),
    },
  };
}
