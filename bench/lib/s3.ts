// A private versitygw S3 server for the bench (the test platform's binary),
// on a free loopback port with its own data folder.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { freePort, waitForPort } from "./ports.ts";

export const VERSITYGW = join(homedir(), ".cache", "feedcrawl", "testbin", "versitygw-1.7.0", "versitygw");

export interface BenchS3 {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  client: S3Client;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startS3(workDir: string): Promise<BenchS3> {
  if (!existsSync(VERSITYGW)) {
    throw new Error(`${VERSITYGW} is missing: build it with \`npm run testbin\` (test/platform/build-testbin.sh)`);
  }
  const data = join(workDir, "s3");
  await mkdir(data, { recursive: true });
  const port = await freePort();
  const accessKeyId = "feedcrawl-bench";
  const secretAccessKey = "feedcrawl-bench-secret";
  const child: ChildProcess = spawn(VERSITYGW, ["--port", `127.0.0.1:${port}`, "posix", data], {
    env: { ...process.env, ROOT_ACCESS_KEY: accessKeyId, ROOT_SECRET_KEY: secretAccessKey },
    stdio: "ignore",
  });
  await waitForPort(port, "versitygw");
  const endpoint = `http://127.0.0.1:${port}`;
  const region = "us-east-1";
  const client = new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
  });
  return {
    endpoint,
    region,
    accessKeyId,
    secretAccessKey,
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async stop() {
      client.destroy();
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}
