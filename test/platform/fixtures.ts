// Per-test resources on the shared platform, each with a cleanup that the
// test calls in `after`/`finally` (or `await using`): a namespace, an S3
// bucket, a PostgreSQL database, and a private control plane for tests that
// must stop and start the apiserver. Redis has no helper: no part uses it yet.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";
import { ApiException, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { type ApiServer, startApiServer } from "./apiserver.ts";
import { binaryPath } from "./binaries.ts";
import { makeCerts } from "./certs.ts";
import { adminKubeConfig, platform } from "./env.ts";
import { type Etcd, startEtcd } from "./etcd.ts";
import { closeProbes } from "./probe.ts";

export { pgDatabase, type TestDatabase } from "./postgres.ts";

export interface Disposable {
  name: string;
  cleanup(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

function disposable(name: string, cleanup: () => Promise<void>): Disposable {
  return { name, cleanup, [Symbol.asyncDispose]: cleanup };
}

/**
 * Runs the kubectl built for the platform (same version as the apiserver)
 * with the admin kubeconfig, `input` on stdin; resolves to stdout.
 */
export function kubectl(args: string[], options: { input?: string; kubeconfig?: string } = {}): Promise<string> {
  const kubeconfig = options.kubeconfig ?? platform().kubeconfig;
  return new Promise((resolve, reject) => {
    const child = execFile(
      binaryPath("kubectl"),
      [`--kubeconfig=${kubeconfig}`, ...args],
      { maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`kubectl ${args.join(" ")} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    child.stdin?.end(options.input ?? "");
  });
}

/** A DNS-1123 name: the prefix (lower-cased, cleaned) plus a random suffix. */
export function uniqueName(prefix: string, maxLength = 63): string {
  const suffix = randomBytes(4).toString("hex");
  const base = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, maxLength - suffix.length - 1);
  return `${base || "t"}-${suffix}`;
}

function isNotFound(err: unknown): boolean {
  return err instanceof ApiException && err.code === 404;
}

/** A fresh namespace on the shared apiserver; cleanup deletes it (the namespace controller empties it). */
export async function createNamespace(prefix: string, kc: KubeConfig = adminKubeConfig()): Promise<Disposable> {
  const api = kc.makeApiClient(CoreV1Api);
  const name = uniqueName(prefix);
  await api.createNamespace({ body: { metadata: { name, labels: { "feedcrawl.test/owner": "test" } } } });
  return disposable(name, async () => {
    try {
      await api.deleteNamespace({ name });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  });
}

/** An S3 client for the platform's server (path-style, test credentials). */
export function s3Client(): S3Client {
  const { s3 } = platform();
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
}

/** A fresh bucket; cleanup deletes every object in it and then the bucket. */
export async function createBucket(prefix: string): Promise<Disposable> {
  const client = s3Client();
  const name = uniqueName(prefix);
  await client.send(new CreateBucketCommand({ Bucket: name }));
  return disposable(name, async () => {
    try {
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: name, ContinuationToken: token }));
        for (const object of page.Contents ?? []) {
          await client.send(new DeleteObjectCommand({ Bucket: name, Key: object.Key }));
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      await client.send(new DeleteBucketCommand({ Bucket: name }));
    } finally {
      client.destroy();
    }
  });
}

/**
 * A private etcd + kube-apiserver for one test (no controller manager), for
 * tests that stop and start the apiserver: `apiserver.stop()` then
 * `apiserver.start()` brings it back on the same port and data.
 */
export interface OwnControlPlane {
  workDir: string;
  etcd: Etcd;
  apiserver: ApiServer;
  /** A fresh admin KubeConfig for this control plane. */
  kubeConfig(): KubeConfig;
  /** Stops both processes and removes the work dir. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startOwnControlPlane(prefix = "own"): Promise<OwnControlPlane> {
  const parent = process.env.FEEDCRAWL_TEST_WORKDIR || tmpdir();
  const workDir = mkdtempSync(join(parent, `${uniqueName(prefix, 30)}-`));
  let etcd: Etcd | undefined;
  try {
    const [certsResult, etcdResult] = await Promise.allSettled([
      makeCerts(join(workDir, "pki")),
      startEtcd({ workDir }),
    ]);
    if (etcdResult.status === "fulfilled") etcd = etcdResult.value;
    if (certsResult.status === "rejected") throw certsResult.reason;
    if (etcdResult.status === "rejected") throw etcdResult.reason;
    const certs = certsResult.value;
    const startedEtcd = etcdResult.value;
    const apiserver = await startApiServer({ workDir, etcdUrl: startedEtcd.url, certs });
    const stop = async () => {
      await apiserver.stop();
      await startedEtcd.stop();
      await closeProbes();
      rmSync(workDir, { recursive: true, force: true });
    };
    return {
      workDir,
      etcd: startedEtcd,
      apiserver,
      kubeConfig() {
        const kc = new KubeConfig();
        kc.loadFromFile(apiserver.kubeconfig);
        return kc;
      },
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (err) {
    await etcd?.stop();
    await closeProbes();
    // Keep the logs of a failed start: the error names the log file.
    throw err;
  }
}

/**
 * Polls `check` until it returns a value other than undefined/false, and
 * fails with `what` (and the last error) after `timeoutMs`.
 */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`Timed out after ${timeoutMs / 1000} s waiting for ${what}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
