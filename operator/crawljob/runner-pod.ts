import type { CrawlJob } from "../../crds/schema/crawljob.ts";
// names.ts and semantics.ts, not frontier.ts/runner.ts/spider.ts/validate.ts: those load TypeBox (~15 MB RSS in the operator).
import {
  DEFAULT_LEASE_SECONDS,
  DEFAULT_REDIS_URL_KEY,
  DEFAULT_TERMINATION_GRACE_SECONDS,
  DEFAULT_TMP_SIZE_LIMIT,
  FRONTIER_JOB_ENV,
  FRONTIER_LEASE_ENV,
  FRONTIER_REDIS_URL_ENV,
  PROXY_CREDENTIALS_ENV,
  PROXY_PASSWORD_ENV,
  PROXY_USERNAME_ENV,
  SPIDER_MODULE_MOUNT_PATH,
} from "../../crds/schema/names.ts";
import { parseByteQuantity } from "../../spec/semantics.ts";

/** The keys of spec.storage.s3.credentialsSecretRef's Secret, injected as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. */
export const S3_ACCESS_KEY_ID = "accessKeyId";
export const S3_SECRET_ACCESS_KEY = "secretAccessKey";
/** settings.proxy.credentialsSecretRef's default keys (a kubernetes.io/basic-auth Secret's). */
export const PROXY_USERNAME_KEY = "username";
export const PROXY_PASSWORD_KEY = "password";
export const RUNNER_CONTAINER = "runner";
export const SPEC_MOUNT_PATH = "/etc/feedcrawl";
export const SPEC_KEY = "crawljob.json";
const TMP_PATH = "/tmp";
/** The exporter's spool for S3 batches, inside the /tmp emptyDir. */
export const SPOOL_DIR = `${TMP_PATH}/feedcrawl-spool`;
const RUNNER_UID = 65532;

/** `feedcrawl run`'s exit codes the Job's podFailurePolicy acts on (runner/cli/run.ts). */
export const EXIT_CONFIG = 2;
export const EXIT_STOPPED = 143;

/**
 * Measured (docs/deploy.md "Runner pods", docs/runner.md "Performance"): on
 * real-weight pages (37–56 KB) a crawl at concurrency 16 or 64 takes ~1.5–2
 * CPU seconds per 1,000 pages on at most one core and, with the heap flags
 * below (runnerNodeOptions), peaks at ~150–190 MiB RSS (~30 MiB more with S3
 * feeds: the AWS SDK). The request is that peak with headroom; the limit
 * (and the 384 MiB old generation derived from it) leaves room for one page
 * of maxResponseBytes' 32 MiB default (~340 MiB RSS) beside the 128 MiB
 * in-flight budget. 250m is ~150 real pages/s, more than a polite crawl
 * fetches. No CPU limit: throttling slows GC bursts for nothing.
 */
export const DEFAULT_RUNNER_RESOURCES = {
  requests: { cpu: "250m", memory: "256Mi" },
  limits: { memory: "512Mi" },
};

/**
 * Exit 2 (a configuration error) fails the Job at once; a runner stopped by
 * SIGTERM that stored and reported everything (143) and pods disrupted by
 * Kubernetes (evictions, preemption, node drains) are retried without
 * counting against backoffLimit. Everything else counts.
 */
export const RUNNER_POD_FAILURE_POLICY = {
  rules: [
    {
      action: "FailJob",
      onExitCodes: { containerName: RUNNER_CONTAINER, operator: "In", values: [EXIT_CONFIG] },
    },
    {
      action: "Ignore",
      onExitCodes: { containerName: RUNNER_CONTAINER, operator: "In", values: [EXIT_STOPPED] },
    },
    { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
  ],
};

/** The /tmp emptyDir's sizeLimit and the spool budget inside it (half of it: the rest is the frontier's). */
export function tmpSizing(job: CrawlJob): { sizeLimit: string; spoolMaxBytes: number } {
  const sizeLimit = job.spec.runner?.tmpSizeLimit ?? DEFAULT_TMP_SIZE_LIMIT;
  const bytes = parseByteQuantity(sizeLimit) ?? parseByteQuantity(DEFAULT_TMP_SIZE_LIMIT)!;
  return { sizeLimit, spoolMaxBytes: Math.floor(bytes / 2) };
}

/**
 * V8's young generation for runner processes: Node's default lets each
 * semi-space grow to 64 MiB (x3 with the copy reserve), yet every page's tree
 * dies young, so a small one costs few extra scavenges and ~100 MiB less RSS
 * (docs/runner.md "Performance"). Smaller than 4 MiB promotes trees still in
 * use and grows the old generation instead.
 */
export const RUNNER_SEMI_SPACE_MIB = 4;
/** The old generation's share of the container's memory limit; the rest is code, Buffers, sockets (as the chart's). */
const OLD_SPACE_SHARE = 0.75;

/**
 * The runner's V8 flags: the young generation above and, when the container
 * has a memory limit, an old generation of 75 % of it, so that V8 collects
 * hard before the kernel kills the pod.
 */
export function runnerNodeOptions(memoryLimit?: string | number): string {
  const flags = [`--max-semi-space-size=${RUNNER_SEMI_SPACE_MIB}`];
  const bytes = memoryLimit === undefined ? undefined : parseByteQuantity(String(memoryLimit));
  if (bytes) flags.push(`--max-old-space-size=${Math.floor((bytes * OLD_SPACE_SHARE) / 1048576)}`);
  return flags.join(" ");
}

/**
 * glibc's malloc arenas: by default up to 8 per core, one per thread that
 * allocates (V8's GC and compiler threads); two kept ~8 MiB of RSS less at
 * the same CPU (docs/runner.md "Performance"). A spec.runner.env value wins.
 */
export const RUNNER_MALLOC_ARENA_MAX = "2";
const MALLOC_ARENA_MAX = "MALLOC_ARENA_MAX";
const NODE_OPTIONS = "NODE_OPTIONS";

/**
 * The runtime env: NODE_OPTIONS (ours, then a spec.runner.env NODE_OPTIONS
 * value after them: V8 keeps the last of a repeated flag, so the user's win
 * and ours fill in the rest; one from valueFrom replaces ours, as its value
 * is not known here) and MALLOC_ARENA_MAX unless spec.runner.env sets it.
 */
function withRuntimeEnv(job: CrawlJob, operatorEnv: Record<string, unknown>[]): Record<string, unknown>[] {
  const resources = (job.spec.runner?.resources ?? DEFAULT_RUNNER_RESOURCES) as {
    limits?: { memory?: string | number };
  };
  const ours = runnerNodeOptions(resources.limits?.memory);
  const userEnv = job.spec.runner?.env ?? [];
  const runtime: Record<string, unknown>[] = [];
  if (!userEnv.some((e) => e.name === MALLOC_ARENA_MAX))
    runtime.push({ name: MALLOC_ARENA_MAX, value: RUNNER_MALLOC_ARENA_MAX });
  const theirs = userEnv.find((e) => e.name === NODE_OPTIONS);
  if (!theirs) return [...operatorEnv, ...runtime, { name: NODE_OPTIONS, value: ours }, ...userEnv];
  if (theirs.valueFrom !== undefined) return [...operatorEnv, ...runtime, ...userEnv];
  return [
    ...operatorEnv,
    ...runtime,
    ...userEnv.map((e) => (e === theirs ? { name: NODE_OPTIONS, value: `${ours} ${theirs.value ?? ""}`.trim() } : e)),
  ];
}

/** What a runner pod with the default resources gets (the bench runs feedcrawl with it). */
export const DEFAULT_RUNNER_NODE_OPTIONS = runnerNodeOptions(DEFAULT_RUNNER_RESOURCES.limits.memory);
/** The runtime env of a runner pod with the default resources and no spec.runner.env (for the bench). */
export const DEFAULT_RUNNER_RUNTIME_ENV = {
  [MALLOC_ARENA_MAX]: RUNNER_MALLOC_ARENA_MAX,
  [NODE_OPTIONS]: DEFAULT_RUNNER_NODE_OPTIONS,
};

/** The operator's env first (a user's env may refer to it with $(NAME)), then spec.runner.env. */
function runnerEnv(job: CrawlJob): Record<string, unknown>[] {
  const parallelism = job.spec.runner?.parallelism ?? 1;
  const env: Record<string, unknown>[] = [
    { name: "FEEDCRAWL_SPEC", value: `${SPEC_MOUNT_PATH}/${SPEC_KEY}` },
    { name: "FEEDCRAWL_SHARD_COUNT", value: String(parallelism) },
    { name: "FEEDCRAWL_SPOOL_DIR", value: SPOOL_DIR },
    { name: "FEEDCRAWL_SPOOL_MAX_BYTES", value: String(tmpSizing(job).spoolMaxBytes) },
  ];
  const creds = job.spec.storage?.s3?.credentialsSecretRef;
  if (creds) {
    env.push(
      { name: "AWS_ACCESS_KEY_ID", valueFrom: { secretKeyRef: { name: creds.name, key: S3_ACCESS_KEY_ID } } },
      { name: "AWS_SECRET_ACCESS_KEY", valueFrom: { secretKeyRef: { name: creds.name, key: S3_SECRET_ACCESS_KEY } } },
    );
  }
  env.push(...proxyCredentialsEnv(job), ...frontierEnv(job));
  return withRuntimeEnv(job, env);
}

/**
 * spec.frontier.redis: the URL straight from its Secret (the kubelet reads it;
 * it never passes the operator), the key every shard of this CrawlJob shares
 * (a new uid, a new crawl) and the lease.
 */
function frontierEnv(job: CrawlJob): Record<string, unknown>[] {
  const redis = job.spec.frontier?.redis;
  if (!redis) return [];
  const { name, key = DEFAULT_REDIS_URL_KEY } = redis.urlSecretRef;
  const { namespace, name: jobName, uid } = job.metadata;
  return [
    { name: FRONTIER_REDIS_URL_ENV, valueFrom: { secretKeyRef: { name, key } } },
    { name: FRONTIER_JOB_ENV, value: `${namespace}/${jobName}/${uid}` },
    { name: FRONTIER_LEASE_ENV, value: String(redis.leaseSeconds ?? DEFAULT_LEASE_SECONDS) },
  ];
}

/** The Secret keys settings.proxy.credentialsSecretRef names, with the env variable each goes to. */
export function proxyCredentialKeys(job: Pick<CrawlJob, "spec">): { env: string; key: string }[] {
  const ref = job.spec.spider.settings?.proxy?.credentialsSecretRef;
  if (!ref) return [];
  if (ref.key) return [{ env: PROXY_CREDENTIALS_ENV, key: ref.key }];
  return [
    { env: PROXY_USERNAME_ENV, key: ref.usernameKey ?? PROXY_USERNAME_KEY },
    { env: PROXY_PASSWORD_ENV, key: ref.passwordKey ?? PROXY_PASSWORD_KEY },
  ];
}

/** Proxy credentials as env from their Secret (the kubelet reads it; the values never pass the operator). */
function proxyCredentialsEnv(job: CrawlJob): Record<string, unknown>[] {
  const name = job.spec.spider.settings?.proxy?.credentialsSecretRef?.name;
  return proxyCredentialKeys(job).map(({ env, key }) => ({ name: env, valueFrom: { secretKeyRef: { name, key } } }));
}

/** spider.moduleConfigMapRef's key, mounted read-only as one file at SPIDER_MODULE_MOUNT_PATH/<key>. */
function moduleVolume(job: CrawlJob): { mounts: Record<string, unknown>[]; volumes: Record<string, unknown>[] } {
  const ref = job.spec.spider.moduleConfigMapRef;
  if (!ref) return { mounts: [], volumes: [] };
  return {
    mounts: [{ name: "spider-module", mountPath: SPIDER_MODULE_MOUNT_PATH, readOnly: true }],
    volumes: [
      {
        name: "spider-module",
        configMap: { name: ref.name, items: [{ key: ref.key, path: ref.key }], defaultMode: 0o444 },
      },
    ],
  };
}

/** Scheduling and pull settings copied from spec.runner when set. */
function placement(job: CrawlJob): Record<string, unknown> {
  const r = job.spec.runner ?? {};
  const out: Record<string, unknown> = {};
  if (r.nodeSelector && Object.keys(r.nodeSelector).length > 0) out.nodeSelector = r.nodeSelector;
  if (r.tolerations?.length) out.tolerations = r.tolerations;
  if (r.affinity && Object.keys(r.affinity).length > 0) out.affinity = r.affinity;
  if (r.imagePullSecrets?.length) out.imagePullSecrets = r.imagePullSecrets;
  return out;
}

/**
 * The runner pod's spec. Restricted Pod Security Standard: nothing in
 * spec.runner reaches the security contexts, volumes or host settings.
 */
export function runnerPodSpec(
  job: CrawlJob,
  names: { serviceAccount: string; configMap: string; image: string },
): Record<string, unknown> {
  const runner = job.spec.runner ?? {};
  const module = moduleVolume(job);
  return {
    restartPolicy: "Never", // podFailurePolicy requires it
    terminationGracePeriodSeconds: runner.terminationGracePeriodSeconds ?? DEFAULT_TERMINATION_GRACE_SECONDS,
    serviceAccountName: names.serviceAccount,
    automountServiceAccountToken: true,
    ...placement(job),
    securityContext: {
      runAsNonRoot: true,
      runAsUser: RUNNER_UID,
      runAsGroup: RUNNER_UID,
      fsGroup: RUNNER_UID,
      seccompProfile: { type: "RuntimeDefault" },
    },
    containers: [
      {
        name: RUNNER_CONTAINER,
        image: names.image,
        command: ["feedcrawl"],
        args: ["run"],
        env: runnerEnv(job),
        ...(runner.envFrom?.length ? { envFrom: runner.envFrom } : {}),
        resources: runner.resources ?? DEFAULT_RUNNER_RESOURCES,
        // A runner that fails without a termination message gets its last log lines as one.
        terminationMessagePolicy: "FallbackToLogsOnError",
        securityContext: {
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          runAsNonRoot: true,
          runAsUser: RUNNER_UID,
          capabilities: { drop: ["ALL"] },
          seccompProfile: { type: "RuntimeDefault" },
        },
        volumeMounts: [
          { name: "spec", mountPath: SPEC_MOUNT_PATH, readOnly: true },
          { name: "tmp", mountPath: TMP_PATH },
          ...module.mounts,
        ],
      },
    ],
    volumes: [
      { name: "spec", configMap: { name: names.configMap } },
      { name: "tmp", emptyDir: { sizeLimit: tmpSizing(job).sizeLimit } },
      ...module.volumes,
    ],
  };
}
