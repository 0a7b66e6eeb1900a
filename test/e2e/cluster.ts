// The steps a user takes on a cluster, against the local cluster's real node:
// `helm install` of charts/feedcrawl with the image built here into a
// namespace that enforces the restricted Pod Security Standard, the Secrets a
// CrawlJob names, `kubectl apply` of examples/crawljob-e2e.yaml, and reading
// back what the runner pods did. test/e2e/real-pods.node.test.ts checks them;
// `npm run demo -- --cluster` (examples/demo.ts) runs them for a newcomer.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { S3Client } from "@aws-sdk/client-s3";
import { KubeConfig, Watch } from "@kubernetes/client-node";
import { pino } from "pino";
import { configFromEnv } from "../../examples/ingest-backend/config.ts";
import { createIngestBackend, type IngestBackend } from "../../examples/ingest-backend/server.ts";
import { chartDir, helm } from "../chart/helm.ts";
import { binaryPath } from "../platform/binaries.ts";
import { eventually, kubectl } from "../platform/fixtures.ts";
import { fillPlaceholders } from "./manifest.ts";

export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const MANIFEST = join(REPO_ROOT, "examples/crawljob-e2e.yaml");
/** Every CRD the chart installs (crds/<group>_<plural>.yaml), by name: what a test's cleanup deletes. */
export const CRD_NAMES = readdirSync(join(REPO_ROOT, "crds"))
  .filter(
    (f) =>
      f.endsWith(".yaml") && /^kind: CustomResourceDefinition$/m.test(readFileSync(join(REPO_ROOT, "crds", f), "utf8")),
  )
  .map((f) => {
    const [group, plural] = f.replace(/\.yaml$/, "").split("_");
    return `${plural}.${group}`;
  });
/** The CrawlJob examples/crawljob-e2e.yaml defines, and its runner Job. */
export const JOB = "books-e2e";
export const RUNNER_JOB = `${JOB}-runner`;
/** The image `npm run image` builds and imports into the node's containerd. */
export const IMAGE_REPOSITORY = "localhost/feedcrawl";
export const IMAGE_TAG = "dev";

// biome-ignore lint/suspicious/noExplicitAny: objects read back with kubectl are untyped JSON
export type Any = Record<string, any>;

export type Kubectl = (args: string[], input?: string) => Promise<string>;

/** kubectl against one cluster (the built kubectl, that cluster's admin kubeconfig). */
export function kubectlFor(kubeconfig: string): Kubectl {
  return (args, input) => kubectl(args, { kubeconfig, ...(input !== undefined ? { input } : {}) });
}

export const getJson = async (k: Kubectl, args: string[]): Promise<Any> =>
  JSON.parse(await k([...args, "-o", "json"])) as Any;

/** A namespace whose pods must meet the restricted Pod Security Standard (enforced by the apiserver). */
export async function restrictedNamespace(k: Kubectl, name: string): Promise<void> {
  await k(["create", "namespace", name]);
  await k([
    "label",
    "namespace",
    name,
    "pod-security.kubernetes.io/enforce=restricted",
    "pod-security.kubernetes.io/enforce-version=latest",
  ]);
}

export interface InstalledOperator {
  release: string;
  namespace: string;
  /** The Deployment's (and the Lease's) name. */
  name: string;
  /** The operator pod, as the API shows it once Ready. */
  pod: Any;
  /** The Lease once that pod holds it. */
  lease: Any;
  helmOutput: string;
}

/**
 * `helm install` with the local image (pulled from nowhere: pull policy
 * Never), leader election on and the webhook networks and feed buckets
 * given, `--wait` until the Deployment is Ready, then waits until its one
 * pod holds the Lease.
 */
export async function installOperator(options: {
  kubeconfig: string;
  release: string;
  namespace: string;
  /** Private networks the operator's webhook calls may reach (a CrawlJob can only narrow them). */
  webhookPrivateNetworks?: string[];
  /** The only buckets a CrawlFeed may name (chart value feeds.allowedBuckets). */
  feedBuckets?: string[];
  timeoutSeconds?: number;
}): Promise<InstalledOperator> {
  const { kubeconfig, release, namespace } = options;
  const k = kubectlFor(kubeconfig);
  const timeout = options.timeoutSeconds ?? 180;
  await restrictedNamespace(k, namespace);
  // helm's own deadline comes before helm.ts kills it (120 s).
  const result = await helm([
    "install",
    release,
    chartDir,
    "--namespace",
    namespace,
    "--kubeconfig",
    kubeconfig,
    "--set",
    `image.repository=${IMAGE_REPOSITORY}`,
    "--set",
    `image.tag=${IMAGE_TAG}`,
    "--set",
    "image.pullPolicy=Never",
    "--set",
    "leaderElection.enabled=true",
    ...(options.webhookPrivateNetworks
      ? ["--set-json", `webhook.privateNetworks=${JSON.stringify(options.webhookPrivateNetworks)}`]
      : []),
    ...(options.feedBuckets ? ["--set-json", `feeds.allowedBuckets=${JSON.stringify(options.feedBuckets)}`] : []),
    "--wait",
    "--timeout",
    `${Math.min(timeout, 100)}s`,
  ]).catch((err: Error) => ({ code: -1, stdout: "", stderr: err.message }));
  if (result.code !== 0) {
    throw new Error(`helm install failed (${result.code}): ${result.stderr}\n${await podReport(k, namespace)}`);
  }
  // The release name holds the chart's name ("feedcrawl"), so the full name is the release name.
  const name = release.includes("feedcrawl") ? release : `${release}-feedcrawl`;
  const selector = `app.kubernetes.io/instance=${release},app.kubernetes.io/component=operator`;
  const pod = await eventually(
    "the operator pod to be Ready",
    async () => {
      const pods = (await getJson(k, ["-n", namespace, "get", "pods", "-l", selector])).items as Any[];
      const ready = pods.filter((p) =>
        (p.status?.conditions ?? []).some((c: Any) => c.type === "Ready" && c.status === "True"),
      );
      return pods.length === 1 && ready.length === 1 ? ready[0] : undefined;
    },
    timeout * 1000,
  );
  const lease = await eventually(
    `the operator pod ${pod.metadata.name} to hold the Lease ${namespace}/${name}`,
    async () => {
      const l = await getJson(k, ["-n", namespace, "get", "lease", name]);
      return String(l.spec?.holderIdentity ?? "").startsWith(`${pod.metadata.name}_`) ? l : undefined;
    },
    60_000,
  );
  return { release, namespace, name, pod, lease, helmOutput: result.stdout };
}

/** `kubectl describe pods` and each pod's log (the previous container's too), for a failure message. */
export async function podReport(k: Kubectl, namespace: string): Promise<string> {
  const safe = (p: Promise<string>) => p.catch((err: Error) => err.message);
  const parts = [await safe(k(["-n", namespace, "describe", "pods"]))];
  const names = (await safe(k(["-n", namespace, "get", "pods", "-o", "name"]))).split("\n").filter((n) => n);
  for (const name of names) {
    parts.push(`--- kubectl logs ${name}\n${await safe(k(["-n", namespace, "logs", name, "--tail=30"]))}`);
    parts.push(`--- previous\n${await safe(k(["-n", namespace, "logs", name, "--previous", "--tail=30"]))}`);
  }
  return parts.join("\n");
}

/** The Secrets the CrawlJob names: S3 credentials and the webhook signing secret. */
export async function crawlSecrets(
  k: Kubectl,
  namespace: string,
  s3: { accessKeyId: string; secretAccessKey: string },
  webhookSecret: string,
): Promise<void> {
  await k([
    "-n",
    namespace,
    "create",
    "secret",
    "generic",
    "s3-creds",
    `--from-literal=accessKeyId=${s3.accessKeyId}`,
    `--from-literal=secretAccessKey=${s3.secretAccessKey}`,
  ]);
  await k(["-n", namespace, "create", "secret", "generic", "ingest-webhook", `--from-literal=secret=${webhookSecret}`]);
}

export interface ManifestValues {
  /** Exactly three site origins, e.g. http://10.213.0.2:41234. */
  sites: string[];
  /** The sites' network, allowed by the address guard, e.g. 10.213.0.0/24. */
  siteNetwork: string;
  s3Endpoint: string;
  bucket: string;
  webhookUrl: string;
}

/** examples/crawljob-e2e.yaml with its placeholders filled, as `envsubst` would. */
export function crawlManifest(values: ManifestValues): string {
  if (values.sites.length !== 3) throw new Error(`crawljob-e2e.yaml takes 3 sites, got ${values.sites.length}`);
  return fillPlaceholders(MANIFEST, {
    SITE_1: values.sites[0]!,
    SITE_2: values.sites[1]!,
    SITE_3: values.sites[2]!,
    SITE_NETWORK: values.siteNetwork,
    S3_ENDPOINT: values.s3Endpoint,
    BUCKET: values.bucket,
    WEBHOOK_URL: values.webhookUrl,
  });
}

/** The /24 of an address: 10.213.0.1 → 10.213.0.0/24. */
export function networkOf(address: string): string {
  return `${address.split(".").slice(0, 3).join(".")}.0/24`;
}

/** The runner Job's pods (all of them: retries too), by completion index; `job` is the CrawlJob (default JOB). */
export async function runnerPods(k: Kubectl, namespace: string, job = JOB): Promise<Any[]> {
  const pods = (await getJson(k, ["-n", namespace, "get", "pods", "-l", `batch.kubernetes.io/job-name=${job}-runner`]))
    .items as Any[];
  const index = (p: Any) => Number(p.metadata.annotations?.["batch.kubernetes.io/job-completion-index"] ?? -1);
  return pods.sort((a, b) => index(a) - index(b) || a.metadata.name.localeCompare(b.metadata.name));
}

/** The runner container's terminated state, or undefined while it runs. */
export function terminated(pod: Any): Any | undefined {
  return pod.status?.containerStatuses?.find((c: Any) => c.name === "runner")?.state?.terminated;
}

/** One line per pod: name, index, phase, exit code. */
export function describePods(pods: Any[]): string {
  return pods
    .map((p) => {
      const t = terminated(p);
      const index = p.metadata.annotations?.["batch.kubernetes.io/job-completion-index"];
      return `${p.metadata.name} index ${index} ${p.status?.phase}${t ? ` exit ${t.exitCode} (${t.reason})` : ""}`;
    })
    .join("; ");
}

/**
 * `kubectl wait --for=condition=Succeeded crawl/<job>`, the way a user waits;
 * fails at once (with the conditions) when the CrawlJob turns Failed instead.
 */
export async function waitSucceeded(
  k: Kubectl,
  namespace: string,
  timeoutSeconds: number,
  name = JOB,
): Promise<string> {
  let waiting = true;
  const failed = (async () => {
    while (waiting) {
      const job = await getJson(k, ["-n", namespace, "get", "crawl", name]).catch(() => undefined);
      if (job?.status?.phase === "Failed") {
        const conditions = (job.status.conditions ?? []) as Any[];
        throw new Error(
          `CrawlJob ${namespace}/${name} is Failed: ${conditions.map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`).join("; ")}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    return "";
  })();
  try {
    return await Promise.race([
      k(["-n", namespace, "wait", "--for=condition=Succeeded", `crawl/${name}`, `--timeout=${timeoutSeconds}s`]),
      failed,
    ]);
  } finally {
    waiting = false;
  }
}

/**
 * Waits until `count` runner pods have all ended (phase Succeeded or Failed,
 * the container terminated); fails at once when the CrawlJob turns Failed
 * first, or after `timeoutMs` with the pods and the namespace's events.
 */
export async function waitRunnerPods(k: Kubectl, namespace: string, count: number, timeoutMs: number): Promise<Any[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pods = await runnerPods(k, namespace).catch(() => []);
    const ended = pods.every((p) => ["Succeeded", "Failed"].includes(p.status?.phase) && terminated(p));
    if (pods.length >= count && ended) return pods;
    const job = await getJson(k, ["-n", namespace, "get", "crawl", JOB]).catch(() => undefined);
    const failed = job?.status?.phase === "Failed";
    if (failed || Date.now() > deadline) {
      const conditions = ((job?.status?.conditions ?? []) as Any[])
        .filter((c) => c.status !== "True")
        .map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`);
      throw new Error(
        `${failed ? `CrawlJob ${JOB} is Failed` : `${count} runner pods did not end within ${timeoutMs / 1000} s`}\n` +
          `conditions: ${conditions.join("; ")}\npods: ${describePods(pods)}\n` +
          (await k(["-n", namespace, "get", "events"]).catch((err: Error) => err.message)),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** A condition of a CrawlJob (or any object with status.conditions), by type. */
export function conditionOf(obj: Any | undefined, type: string): Any | undefined {
  return ((obj?.status?.conditions ?? []) as Any[]).find((c) => c.type === type);
}

/** Every pod a namespace had while it watched, with the last container states seen (pods deleted since too). */
export interface PodRecorder {
  /** Pod name → the last pod object seen (deleted pods keep their last state). */
  readonly pods: Map<string, Any>;
  stop(): void;
}

/**
 * Watches the pods of a namespace from now on and keeps the last version of
 * each, so a pod deleted by hand still shows how its container ended (exit
 * code, the termination message: with FallbackToLogsOnError, its last log
 * lines) after the API has forgotten it.
 */
export async function recordPods(kubeconfig: string, namespace: string): Promise<PodRecorder> {
  const pods = new Map<string, Any>();
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const watch = new Watch(kc);
  let stopped = false;
  let request: AbortController | undefined;
  const start = async (): Promise<void> => {
    request = await watch.watch(
      `/api/v1/namespaces/${namespace}/pods`,
      {},
      (_type: string, pod: Any) => {
        pods.set(pod.metadata.name, pod);
      },
      () => {
        // A watch ends after the server's timeout: start again (the map keeps what it saw).
        if (!stopped) setTimeout(() => void start().catch(() => undefined), 200);
      },
    );
  };
  await start();
  return {
    pods,
    stop: () => {
      stopped = true;
      request?.abort();
    },
  };
}

/** A pod's log as `kubectl logs -f` streams it: everything up to the container's end, even if the pod is deleted. */
export interface FollowedLog {
  text(): string;
  /** Resolves when kubectl exits (the container ended, or stop()). */
  done: Promise<void>;
  stop(): void;
}

/** `kubectl logs -f` of a pod's container, kept in memory. */
export function followLogs(kubeconfig: string, namespace: string, pod: string, container?: string): FollowedLog {
  const child = spawn(
    binaryPath("kubectl"),
    [`--kubeconfig=${kubeconfig}`, "-n", namespace, "logs", "-f", pod, ...(container ? ["-c", container] : [])],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const chunks: Buffer[] = [];
  child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
  child.stderr.on("data", (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<void>((resolve) => {
    child.on("close", () => resolve());
    child.on("error", () => resolve());
  });
  return {
    text: () => Buffer.concat(chunks).toString("utf8"),
    done,
    stop: () => {
      if (child.exitCode === null) child.kill();
    },
  };
}

/**
 * The reference backend on the node host, where the operator pod calls it;
 * PostgreSQL stays on loopback (the backend runs on this machine). Logs to
 * `<workDir>/backend.log`.
 */
export function startNodeBackend(o: {
  secret: string;
  databaseUrl: string;
  host: string;
  s3Endpoint: string;
  s3: S3Client;
  workDir: string;
}): Promise<IngestBackend> {
  return createIngestBackend(
    configFromEnv({
      WEBHOOK_SECRET: o.secret,
      DATABASE_URL: o.databaseUrl,
      HOST: o.host,
      PORT: "0",
      S3_ENDPOINT: o.s3Endpoint,
    }),
    {
      s3: o.s3,
      logger: pino(
        { level: "debug", name: "ingest-backend" },
        pino.destination({ dest: join(o.workDir, "backend.log"), sync: true }),
      ),
    },
  );
}

/** Runs every clean-up step even when one fails; returns what failed, named. */
export async function runCleanup(
  steps: [what: string, run: (() => Promise<unknown>) | undefined][],
): Promise<string[]> {
  const errors: string[] = [];
  for (const [what, run] of steps) {
    try {
      await run?.();
    } catch (err) {
      errors.push(`${what}: ${(err as Error).message}`);
    }
  }
  return errors;
}
