// The kubelet and Job controller stand-in. The test control plane has no
// kubelet (pods never run) and no Job controller, so integration tests play
// their part for a runner Job, plainly and only from what the API says:
// - read the Job back from the API server and take its pod template as is;
// - per completion index: materialise the pod's volumes (ConfigMap keys as
//   files, emptyDirs as folders) under a temp folder, resolve its env
//   (literal values, Secret references read the way the kubelet reads them),
//   set JOB_COMPLETION_INDEX as Kubernetes does for Indexed Jobs, mint a token
//   for the pod's ServiceAccount with TokenRequest and hand it over as a
//   KUBECONFIG, rewrite mount paths in env/args to the local folders, and run
//   the container's command (`feedcrawl` = `node bin/feedcrawl.ts`) as a
//   local process;
// - create a Pod object per attempt from the template (owned by the Job,
//   labelled and annotated with its completion index, as the Job controller
//   does) and write its status as the kubelet would: Running, then the
//   container's termination (exit code; with FallbackToLogsOnError the last
//   log lines as the message when it failed), so the operator's pod informer
//   sees what it would see on a node;
// - write the Job's status the way the Job controller would: startTime and
//   active, then succeeded/failed and completedIndexes as pods exit, then
//   SuccessCriteriaMet+Complete or FailureTarget+Failed with completionTime;
//   a failed index is retried while failures stay within backoffLimit, and
//   the Job's podFailurePolicy applies to exit codes (FailJob fails the Job
//   with reason PodFailurePolicy once the running pods exited; Ignore retries
//   without counting).
import { spawn } from "node:child_process";
import { mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { CONFIGMAPS, JOBS, type ResourceType, SECRETS } from "../../kube/resources.ts";
import { formatUriTime, parseUriTemplate, renderUri } from "../../spec/uri-template.ts";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

const PODS: ResourceType = { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true };
const COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index";

const SERVICEACCOUNT_TOKEN: ResourceType = {
  group: "",
  version: "v1",
  plural: "serviceaccounts",
  kind: "ServiceAccount",
  namespaced: true,
};

// biome-ignore lint/suspicious/noExplicitAny: manifests read back from the API are untyped JSON
type Any = Record<string, any>;

/** Everything a pod of the runner Job gets, prepared locally. */
export interface PreparedPod {
  index: number;
  command: string[];
  args: string[];
  env: Record<string, string>;
  /** mountPath → local folder. */
  mounts: Record<string, string>;
  kubeconfigPath: string;
  token: string;
  serviceAccountName: string;
  logPath: string;
}

/** Runs a prepared pod; resolves to its exit code. */
export type PodExecutor = (pod: PreparedPod) => Promise<number>;

/** A ServiceAccount token minted through the TokenRequest API (what the kubelet projects into pods). */
export async function mintToken(admin: KubeConfig, namespace: string, serviceAccount: string): Promise<string> {
  const client = new KubeClient(admin);
  try {
    const answer = await client.request<{ status: { token: string } }>(
      "POST",
      client.path(SERVICEACCOUNT_TOKEN, namespace, serviceAccount, "token"),
      { body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } } },
    );
    return answer.status.token;
  } finally {
    await client.close();
  }
}

/** A kubeconfig file for a token, against the same API server and CA as `admin`. */
export function writeTokenKubeconfig(admin: KubeConfig, token: string, path: string): string {
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error("The admin kube config has no current cluster");
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "test",
        cluster: {
          server: cluster.server,
          ...(cluster.caFile ? { "certificate-authority": cluster.caFile } : {}),
          ...(cluster.caData ? { "certificate-authority-data": cluster.caData } : {}),
          ...(cluster.skipTLSVerify ? { "insecure-skip-tls-verify": true } : {}),
        },
      },
    ],
    users: [{ name: "pod", user: { token } }],
    contexts: [{ name: "pod", context: { cluster: "test", user: "pod" } }],
    "current-context": "pod",
  };
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 });
  return path;
}

export function tokenKubeConfig(admin: KubeConfig, token: string): KubeConfig {
  const cluster = admin.getCurrentCluster()!;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: "test",
        server: cluster.server,
        caFile: cluster.caFile,
        caData: cluster.caData,
        skipTLSVerify: cluster.skipTLSVerify,
      },
    ],
    users: [{ name: "pod", token }],
    contexts: [{ name: "pod", cluster: "test", user: "pod" }],
    currentContext: "pod",
  });
  return kc;
}

/** A path under a mountPath → the same path under the local folder (longest mount first, once). */
const rewrite = (value: string, mounts: Record<string, string>) => {
  const sorted = Object.keys(mounts).sort((a, b) => b.length - a.length);
  for (const mountPath of sorted) {
    if (value === mountPath || value.startsWith(`${mountPath}/`))
      return mounts[mountPath] + value.slice(mountPath.length);
  }
  return value;
};

/** Prepares pod `index` of the Job exactly from its template as stored in the API. */
export async function preparePod(admin: KubeConfig, job: Any, index: number, workDir: string): Promise<PreparedPod> {
  const client = new KubeClient(admin);
  try {
    const namespace = job.metadata.namespace as string;
    const podSpec = job.spec.template.spec as Any;
    if (podSpec.containers.length !== 1) throw new Error("The stand-in runs single-container pods only");
    const container = podSpec.containers[0] as Any;
    const podDir = join(workDir, `${job.metadata.name}-${index}`);

    // Volumes
    const volumeDirs: Record<string, string> = {};
    for (const volume of (podSpec.volumes ?? []) as Any[]) {
      const dir = join(podDir, "volumes", volume.name);
      mkdirSync(dir, { recursive: true });
      if (volume.configMap) {
        const cm = await client.get<KubeObject & { data?: Record<string, string> }>(
          CONFIGMAPS,
          namespace,
          volume.configMap.name,
        );
        for (const [key, value] of Object.entries(cm.data ?? {})) writeFileSync(join(dir, key), value);
      } else if (!volume.emptyDir) {
        throw new Error(`The stand-in cannot materialise volume ${volume.name}`);
      }
      volumeDirs[volume.name] = dir;
    }
    const mounts: Record<string, string> = {};
    for (const m of (container.volumeMounts ?? []) as Any[]) mounts[m.mountPath] = volumeDirs[m.name]!;

    // Env: literals, Secret references (read as the kubelet would), the completion index.
    const env: Record<string, string> = {};
    for (const e of (container.env ?? []) as Any[]) {
      if (e.value !== undefined) env[e.name] = rewrite(String(e.value), mounts);
      else if (e.valueFrom?.secretKeyRef) {
        const ref = e.valueFrom.secretKeyRef;
        const secret = await client.get<KubeObject & { data?: Record<string, string> }>(SECRETS, namespace, ref.name);
        const encoded = secret.data?.[ref.key];
        if (encoded === undefined) throw new Error(`Secret ${ref.name} has no key ${ref.key}`);
        env[e.name] = Buffer.from(encoded, "base64").toString("utf8");
      } else throw new Error(`The stand-in cannot resolve env ${e.name}`);
    }
    env.JOB_COMPLETION_INDEX = String(index);

    const serviceAccountName = podSpec.serviceAccountName as string;
    const token = await mintToken(admin, namespace, serviceAccountName);
    const kubeconfigPath = writeTokenKubeconfig(admin, token, join(podDir, "kubeconfig"));
    env.KUBECONFIG = kubeconfigPath;

    return {
      index,
      command: (container.command ?? []).map((c: string) => rewrite(c, mounts)),
      args: (container.args ?? []).map((a: string) => rewrite(a, mounts)),
      env,
      mounts,
      kubeconfigPath,
      token,
      serviceAccountName,
      logPath: join(podDir, "output.log"),
    };
  } finally {
    await client.close();
  }
}

/** Runs the container's command as a local process: `feedcrawl` is this repo's CLI on this Node. */
export const spawnRunner: PodExecutor = (pod) =>
  new Promise((resolvePromise, reject) => {
    const [command, ...rest] = pod.command;
    const argv =
      command === "feedcrawl" ? [process.execPath, join(REPO_ROOT, "bin/feedcrawl.ts"), ...rest] : pod.command;
    const log = openSync(pod.logPath, "a");
    const child = spawn(argv[0]!, [...argv.slice(1), ...pod.args], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: dirname(pod.kubeconfigPath),
        // The pod's /tmp is an emptyDir: point the process's temp folder at its local copy.
        ...(pod.mounts["/tmp"] ? { TMPDIR: pod.mounts["/tmp"] } : {}),
        ...pod.env,
      },
      stdio: ["ignore", log, log],
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => resolvePromise(code ?? (signal ? 128 : 1)));
  });

/**
 * A Pod of the Job as the Job controller creates it: the template, owned by
 * the Job, labelled and annotated with its completion index. Never scheduled
 * here (no node): its status is what the caller writes.
 */
export async function createJobPod(client: KubeClient, job: Any, index: number): Promise<Any & KubeObject> {
  const template = job.spec.template as Any;
  const name = `${job.metadata.name}-${index}-${Math.random().toString(36).slice(2, 7)}`;
  return client.create(PODS, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: job.metadata.namespace,
      labels: {
        ...template.metadata?.labels,
        [COMPLETION_INDEX]: String(index),
        "batch.kubernetes.io/job-name": job.metadata.name,
        "batch.kubernetes.io/controller-uid": job.metadata.uid,
      },
      annotations: { [COMPLETION_INDEX]: String(index) },
      ownerReferences: [
        {
          apiVersion: "batch/v1",
          kind: "Job",
          name: job.metadata.name,
          uid: job.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: template.spec,
  } as KubeObject) as Promise<Any & KubeObject>;
}

/** Writes a pod's status through the API (the kubelet's part), retrying conflicts. */
export async function writePodStatus(
  client: KubeClient,
  pod: Any & KubeObject,
  status: Any,
): Promise<Any & KubeObject> {
  let current = pod;
  for (let attempt = 0; ; attempt++) {
    try {
      return (await client.updateStatus(PODS, { ...current, status })) as Any & KubeObject;
    } catch (err) {
      if (attempt > 5) throw err;
      current = await client.get(PODS, pod.metadata.namespace!, pod.metadata.name!);
    }
  }
}

/** The runner container's status: running, or terminated with its exit code and message. */
export function containerStatus(image: string, state: Any): Any {
  return { name: "runner", image, imageID: "", ready: state.running !== undefined, restartCount: 0, state };
}

/** FallbackToLogsOnError: the last 80 lines, at most 2048 bytes, of a failed container's log. */
function logTail(path: string): string {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return "";
  }
  const lines = text.split("\n").slice(-81).join("\n");
  return Buffer.from(lines).length > 2048 ? Buffer.from(lines).subarray(-2048).toString("utf8") : lines;
}

/** The Job's podFailurePolicy action for a container exit code: FailJob, Ignore, Count (the default). */
function failureAction(job: Any, exitCode: number): { action: string; rule: number } {
  const rules = (job.spec.podFailurePolicy?.rules ?? []) as Any[];
  for (const [i, rule] of rules.entries()) {
    const on = rule.onExitCodes;
    if (!on) continue;
    const hit = (on.values as number[]).includes(exitCode);
    if ((on.operator === "In" && hit) || (on.operator === "NotIn" && !hit && exitCode !== 0)) {
      return { action: rule.action, rule: i };
    }
  }
  return { action: "Count", rule: -1 };
}

/** Creates the attempt's Pod, marks it Running, runs it, then writes its termination. */
async function runPod(
  client: KubeClient,
  job: Any,
  pod: PreparedPod,
  execute: PodExecutor,
): Promise<{ code: number; name: string }> {
  const image = job.spec.template.spec.containers[0].image as string;
  let obj = await createJobPod(client, job, pod.index);
  const startedAt = rfc3339();
  obj = await writePodStatus(client, obj, {
    phase: "Running",
    startTime: startedAt,
    conditions: [{ type: "Ready", status: "True", lastTransitionTime: startedAt }],
    containerStatuses: [containerStatus(image, { running: { startedAt } })],
  });
  const code = await execute(pod);
  const fallback = job.spec.template.spec.containers[0].terminationMessagePolicy === "FallbackToLogsOnError";
  const message = code !== 0 && fallback ? logTail(pod.logPath) : "";
  const terminated = {
    exitCode: code,
    reason: code === 0 ? "Completed" : "Error",
    startedAt,
    finishedAt: rfc3339(),
    ...(message ? { message } : {}),
  };
  await writePodStatus(client, obj, {
    ...obj.status,
    phase: code === 0 ? "Succeeded" : "Failed",
    conditions: [{ type: "Ready", status: "False", lastTransitionTime: terminated.finishedAt }],
    containerStatuses: [containerStatus(image, { terminated })],
  });
  return { code, name: obj.metadata.name! };
}

/** "0,1,2,5" → "0-2,5": the Job's completedIndexes format. */
export function indexRanges(indexes: number[]): string {
  const sorted = [...new Set(indexes)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

const rfc3339 = (d = new Date()) => d.toISOString().replace(/\.\d+Z$/, "Z");

export interface PlayJobOptions {
  admin: KubeConfig;
  namespace: string;
  jobName: string;
  workDir: string;
  execute?: PodExecutor;
}

export interface PlayedJob {
  succeeded: number;
  failed: number;
  exitCodes: Record<number, number[]>;
  pods: PreparedPod[];
}

/** Plays the kubelet and the Job controller for one Indexed Job until it completes or fails. */
export async function playJob(options: PlayJobOptions): Promise<PlayedJob> {
  const client = new KubeClient(options.admin);
  const execute = options.execute ?? spawnRunner;
  try {
    let job = await client.get<Any & KubeObject>(JOBS, options.namespace, options.jobName);
    const completions: number = job.spec.completions ?? 1;
    const backoffLimit: number = job.spec.backoffLimit ?? 6;
    let succeeded = 0;
    let failed = 0;
    const done: number[] = [];
    const exitCodes: Record<number, number[]> = {};
    const pods: PreparedPod[] = [];
    let writing = Promise.resolve();

    // Status writes are serialised and retried on conflicts, as the Job controller's are.
    const writeStatus = (mutate: (status: Any) => void) => {
      writing = writing.then(async () => {
        for (let attempt = 0; ; attempt++) {
          const status = structuredClone(job.status ?? {});
          mutate(status);
          try {
            job = await client.updateStatus(JOBS, { ...job, status });
            return;
          } catch (err) {
            if (attempt > 5) throw err;
            job = await client.get(JOBS, options.namespace, options.jobName);
          }
        }
      });
      return writing;
    };

    const startTime = rfc3339();
    await writeStatus((s) => {
      s.startTime = startTime;
      s.active = completions;
      s.ready = completions;
    });

    let failJob: string | undefined;
    const runIndex = async (index: number) => {
      while (failJob === undefined) {
        const pod = await preparePod(options.admin, job, index, options.workDir);
        pods.push(pod);
        const { code, name } = await runPod(client, job, pod, execute);
        exitCodes[index] = [...(exitCodes[index] ?? []), code];
        if (code === 0) {
          succeeded += 1;
          done.push(index);
          await writeStatus((s) => {
            s.succeeded = succeeded;
            s.active = completions - succeeded;
            s.ready = s.active;
            s.completedIndexes = indexRanges(done);
          });
          return;
        }
        const { action, rule } = failureAction(job, code);
        if (action === "Ignore") continue; // retried, not counted
        failed += 1;
        await writeStatus((s) => {
          s.failed = failed;
        });
        if (action === "FailJob") {
          failJob ??= `Container runner for pod ${options.namespace}/${name} failed with exit code ${code} matching FailJob rule at index ${rule}`;
          return;
        }
        if (failed > backoffLimit) {
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: completions }, (_, i) => runIndex(i)));

    // The Job controller's two terminal conditions: the criterion reached, then the verdict.
    const now = rfc3339();
    const complete = succeeded === completions;
    const [criterion, verdict, reason, message] = complete
      ? ["SuccessCriteriaMet", "Complete", "CompletionsReached", "Reached expected number of succeeded pods"]
      : failJob
        ? ["FailureTarget", "Failed", "PodFailurePolicy", failJob]
        : ["FailureTarget", "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"];
    const condition = (type: string) => ({
      type,
      status: "True",
      reason,
      message,
      lastProbeTime: now,
      lastTransitionTime: now,
    });
    await writeStatus((s) => {
      s.active = 0;
      s.ready = 0;
      s.conditions = [condition(criterion), condition(verdict)];
      if (complete) s.completionTime = now;
    });
    return { succeeded, failed, exitCodes, pods };
  } finally {
    await client.close();
  }
}

/**
 * A stand-in for `feedcrawl run` that does only its reporting part, with the
 * pod's own token: reads the mounted snapshot, creates `feedsPerShard`
 * CrawlFeeds (deterministic names, owned by the CrawlJob, URIs rendered from
 * the job's first feed template as the runner would) and merge-patches
 * its shard's counters into the CrawlJob's status. For tests of the
 * operator's side of the contract, independent of the crawl engine.
 */
export function reportingExecutor(options: { feedsPerShard: number; exitCode?: number }): PodExecutor {
  return async (pod) => {
    const { readFileSync } = await import("node:fs");
    const { createHash } = await import("node:crypto");
    const snapshot = JSON.parse(readFileSync(pod.env.FEEDCRAWL_SPEC!, "utf8"));
    const kc = new KubeConfig();
    kc.loadFromFile(pod.kubeconfigPath);
    const client = new KubeClient(kc);
    const { name, namespace, uid } = snapshot.metadata;
    const crawlFeeds: ResourceType = {
      group: "feedcrawl.io",
      version: "v1alpha1",
      plural: "crawlfeeds",
      kind: "CrawlFeed",
      namespaced: true,
    };
    const crawlJobs: ResourceType = {
      group: "feedcrawl.io",
      version: "v1alpha1",
      plural: "crawljobs",
      kind: "CrawlJob",
      namespaced: true,
    };
    try {
      // URIs the job's first feed template renders (the operator delivers nothing else).
      const [template] = Object.keys(snapshot.spec.feeds ?? {});
      const parsed = parseUriTemplate(template ?? "s3://crawl-data/%(job)s/%(shard)d/part-%(batch_id)05d.jsonl");
      const time = formatUriTime(new Date());
      for (let batch = 1; batch <= options.feedsPerShard; batch++) {
        const uri = renderUri(parsed, {
          name: snapshot.spec.spider.name,
          job: name,
          time,
          batch_id: batch,
          batch_time: formatUriTime(new Date(), true),
          shard: pod.index,
        });
        const hash = createHash("sha256").update(uri).digest("hex");
        await client.create(crawlFeeds, {
          apiVersion: "feedcrawl.io/v1alpha1",
          kind: "CrawlFeed",
          metadata: {
            name: `${name}-${hash.slice(0, 10)}`,
            namespace,
            labels: { "feedcrawl.io/crawljob": name, "feedcrawl.io/shard": String(pod.index) },
            ownerReferences: [
              {
                apiVersion: snapshot.apiVersion,
                kind: "CrawlJob",
                name,
                uid,
                controller: true,
                blockOwnerDeletion: true,
              },
            ],
          },
          spec: {
            uri,
            ...(template ? { feed: template } : {}),
            batchId: batch,
            shard: pod.index,
            format: "jsonlines",
            items: 10,
            bytes: 1234,
            sha256: hash,
            closedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
          },
        });
      }
      await client.patch(
        crawlJobs,
        namespace,
        name,
        {
          status: {
            shardStats: {
              [String(pod.index)]: {
                requests: 12,
                responses: 12,
                pages: 11,
                items: 10 * options.feedsPerShard,
                errors: 0,
                bytes: 5000,
              },
            },
          },
        },
        { subresource: "status" },
      );
      return options.exitCode ?? 0;
    } finally {
      await client.close();
    }
  };
}
