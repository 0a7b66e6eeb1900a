// Starts and stops the whole test platform: etcd, kube-apiserver,
// kube-controller-manager, versitygw and toxiproxy on free loopback ports with
// their data and logs under one work dir. `npm test` (test/run.ts) starts it
// once per run; `npm run local-cluster -- up` starts it and releases the processes. Tests reach
// it through the FEEDCRAWL_TEST_* variables that `env` below holds (read them
// with platform() in env.ts).
import { join } from "node:path";
import { startApiServer } from "./apiserver.ts";
import { requireBinaries } from "./binaries.ts";
import { makeCerts } from "./certs.ts";
import { startControllerManager } from "./controller-manager.ts";
import { startEtcd } from "./etcd.ts";
import { checkPostgres } from "./postgres.ts";
import { closeProbes } from "./probe.ts";
import type { ManagedProcess } from "./process.ts";
import { startS3 } from "./s3.ts";
import { startToxiproxy } from "./toxiproxy.ts";

export interface RunningPlatform {
  workDir: string;
  /** The FEEDCRAWL_TEST_* variables for test processes. */
  env: Record<string, string>;
  /** In start order; `stop` stops them in reverse. */
  processes: ManagedProcess[];
  stop(): Promise<void>;
}

export async function startPlatform(options: { workDir: string }): Promise<RunningPlatform> {
  const { workDir } = options;
  // Fail before starting anything when a binary is missing, naming all of them.
  requireBinaries(["etcd", "kube-apiserver", "kube-controller-manager", "versitygw", "toxiproxy-server"]);
  const processes: ManagedProcess[] = [];
  const stop = async () => {
    for (const p of [...processes].reverse()) await p.stop();
    await closeProbes();
  };
  try {
    // Independent parts start together; each registers as soon as it runs so
    // a failure elsewhere still stops it.
    const track = <T extends { process: ManagedProcess }>(part: Promise<T>) =>
      part.then((p) => {
        processes.push(p.process);
        return p;
      });
    const results = await Promise.allSettled([
      makeCerts(join(workDir, "pki")),
      track(startEtcd({ workDir })),
      track(startS3({ workDir })),
      track(startToxiproxy({ workDir })),
      checkPostgres(),
    ]);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const [certs, etcd, s3, toxiproxy] = results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as [
      Awaited<ReturnType<typeof makeCerts>>,
      Awaited<ReturnType<typeof startEtcd>>,
      Awaited<ReturnType<typeof startS3>>,
      Awaited<ReturnType<typeof startToxiproxy>>,
    ];
    const apiserver = await track(startApiServer({ workDir, etcdUrl: etcd.url, certs }));
    const kcm = await startControllerManager({ workDir, kubeconfig: apiserver.kubeconfig, certs });
    processes.push(kcm);
    await closeProbes();
    return {
      workDir,
      processes,
      stop,
      env: {
        FEEDCRAWL_TEST_KUBECONFIG: apiserver.kubeconfig,
        FEEDCRAWL_TEST_APISERVER: apiserver.url,
        FEEDCRAWL_TEST_CA: certs.caCert,
        FEEDCRAWL_TEST_S3_ENDPOINT: s3.endpoint,
        FEEDCRAWL_TEST_S3_REGION: s3.region,
        FEEDCRAWL_TEST_S3_ACCESS_KEY: s3.accessKeyId,
        FEEDCRAWL_TEST_S3_SECRET_KEY: s3.secretAccessKey,
        FEEDCRAWL_TEST_TOXIPROXY: toxiproxy.url,
        FEEDCRAWL_TEST_WORKDIR: workDir,
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
