import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import {
  DEFAULT_LEASE_SECONDS,
  DEFAULT_REDIS_URL_KEY,
  FRONTIER_JOB_ENV,
  FRONTIER_LEASE_ENV,
  FRONTIER_REDIS_URL_ENV,
} from "../../crds/schema/frontier.ts";
import { DEFAULT_TERMINATION_GRACE_SECONDS, DEFAULT_TMP_SIZE_LIMIT } from "../../crds/schema/runner.ts";
import {
  PROXY_CREDENTIALS_ENV,
  PROXY_PASSWORD_ENV,
  PROXY_USERNAME_ENV,
  SPIDER_MODULE_MOUNT_PATH,
} from "../../crds/schema/spider.ts";
import { parseByteQuantity } from "../../spec/validate.ts";

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
 * Measured (docs/deploy.md, docs/runner.md "Performance"): on real-weight
 * pages (40–56 KB) a crawl at concurrency 16 or 64 takes 1.5–2 CPU seconds
 * per 1,000 pages on at most one core and peaks at 330–350 MiB RSS (about the
 * same at both concurrencies: one page is parsed at a time). The memory
 * request is that peak with ~45 % headroom; the limit keeps room for pages up
 * to maxResponseBytes and the 128 MiB in-flight budget. 250m is ~150 real
 * pages/s, more than a polite crawl fetches. No CPU limit: throttling slows
 * GC bursts for nothing.
 */
export const DEFAULT_RUNNER_RESOURCES = {
  requests: { cpu: "250m", memory: "512Mi" },
  limits: { memory: "1Gi" },
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
  return [...env, ...(job.spec.runner?.env ?? [])];
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
