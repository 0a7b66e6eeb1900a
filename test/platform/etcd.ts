// etcd for the test apiserver: one member on loopback ports, data in the work
// dir, no fsync (test data is throwaway and fsync dominates on slow disks).
import { rmSync } from "node:fs";
import { join } from "node:path";
import { binaryPath } from "./binaries.ts";
import { freePorts, retryOnPortClash } from "./ports.ts";
import { httpOk } from "./probe.ts";
import { ManagedProcess } from "./process.ts";

export interface Etcd {
  url: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export function startEtcd(options: { workDir: string }): Promise<Etcd> {
  return retryOnPortClash(() => startEtcdOnce(options));
}

async function startEtcdOnce(options: { workDir: string }): Promise<Etcd> {
  const bin = binaryPath("etcd");
  const [clientPort, peerPort] = await freePorts(2);
  const dataDir = join(options.workDir, "etcd-data");
  // A failed attempt (port clash) may have left a member with other URLs.
  rmSync(dataDir, { recursive: true, force: true });
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const proc = new ManagedProcess({
    name: "etcd",
    command: bin,
    args: [
      "--name=test",
      `--data-dir=${dataDir}`,
      "--unsafe-no-fsync=true",
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=test=${peer}`,
      "--log-level=warn",
      // A test run makes few revisions; keep the db small anyway.
      "--quota-backend-bytes=1073741824",
    ],
    logFile: join(options.workDir, "logs", "etcd.log"),
  });
  await proc.startAndWait(() => httpOk(`${url}/health`), 30_000, "healthy");
  return { url, process: proc, stop: () => proc.stop() };
}
