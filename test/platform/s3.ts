// The S3-compatible server: versitygw with its posix backend (buckets are
// folders under the work dir), path-style, region us-east-1. It listens on
// loopback, or on `host` (the node's bridge address with a node, so pods
// reach it at the same endpoint as the host).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { binaryPath } from "./binaries.ts";
import { freePort, retryOnPortClash } from "./ports.ts";
import { httpOk } from "./probe.ts";
import { ManagedProcess } from "./process.ts";

export interface S3Server {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** Test-only credentials: the server listens on loopback or the node's bridge and holds throwaway data. */
export const S3_TEST_CREDENTIALS = { accessKeyId: "feedcrawl-test", secretAccessKey: "feedcrawl-test-secret" };

export interface S3Options {
  workDir: string;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
}

export function startS3(options: S3Options): Promise<S3Server> {
  return retryOnPortClash(() => startS3Once(options));
}

async function startS3Once(options: S3Options): Promise<S3Server> {
  const bin = binaryPath("versitygw");
  const host = options.host ?? "127.0.0.1";
  const port = await freePort(host);
  const root = join(options.workDir, "s3-data");
  mkdirSync(root, { recursive: true });
  const proc = new ManagedProcess({
    name: "versitygw",
    command: bin,
    args: ["--port", `${host}:${port}`, "--health", "/health", "--quiet", "posix", root],
    env: {
      ...process.env,
      ROOT_ACCESS_KEY: S3_TEST_CREDENTIALS.accessKeyId,
      ROOT_SECRET_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
    },
    logFile: join(options.workDir, "logs", "versitygw.log"),
  });
  const endpoint = `http://${host}:${port}`;
  await proc.startAndWait(() => httpOk(`${endpoint}/health`), 30_000, "healthy");
  return { endpoint, region: "us-east-1", ...S3_TEST_CREDENTIALS, process: proc, stop: () => proc.stop() };
}
