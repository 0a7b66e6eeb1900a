// Starts and stops the whole test platform: etcd, kube-apiserver,
// kube-controller-manager, versitygw and toxiproxy on free loopback ports with
// their data and logs under one work dir, and — with `node: true` — a real
// node (test/platform/node/): the apiserver, S3 and toxiproxy then listen on
// the node's bridge address (reachable from the host and from pods) and the
// apiserver runs as a cluster's would (ServiceAccount admission, the default
// controllers). `npm test` (test/run.ts) starts it once per run;
// `npm run local-cluster -- up` starts it and releases the processes. Tests
// reach it through the FEEDCRAWL_TEST_* (and FEEDCRAWL_NODE_*) variables that
// `env` below holds (read them with platform() in env.ts).
import { join } from "node:path";
import { startApiServer } from "./apiserver.ts";
import { requireBinaries } from "./binaries.ts";
import { makeCerts } from "./certs.ts";
import { startControllerManager } from "./controller-manager.ts";
import { startEtcd } from "./etcd.ts";
import {
  claimNodeHost,
  issueNodeCerts,
  type NodeState,
  nodeEnv,
  recordProcess,
  startNode,
  stopNode,
} from "./node/node.ts";
import { checkPostgres } from "./postgres.ts";
import { closeProbes } from "./probe.ts";
import { type ManagedProcess, stopPid } from "./process.ts";
import { startS3 } from "./s3.ts";
import { startToxiproxy } from "./toxiproxy.ts";

export interface RunningPlatform {
  workDir: string;
  /** The FEEDCRAWL_TEST_* variables for test processes (and FEEDCRAWL_NODE_* with a node). */
  env: Record<string, string>;
  /** In start order; `stop` stops them in reverse. */
  processes: ManagedProcess[];
  /** The node's state, with `node: true`. */
  node?: NodeState;
  stop(): Promise<void>;
}

export interface PlatformOptions {
  workDir: string;
  /** Also start a real node (kubelet, containerd, kube-proxy, kube-scheduler). */
  node?: boolean;
  /** Progress lines (e.g. console.error); silent by default. */
  log?: (line: string) => void;
}

export async function startPlatform(options: PlatformOptions): Promise<RunningPlatform> {
  const { workDir } = options;
  const log = options.log ?? (() => {});
  // Fail before starting anything when a binary is missing, naming all of them.
  requireBinaries(["etcd", "kube-apiserver", "kube-controller-manager", "versitygw", "toxiproxy-server"]);
  const processes: ManagedProcess[] = [];
  let node: NodeState | undefined;
  const stop = async () => {
    let nodeError: unknown;
    if (node) {
      const state = node;
      // The node's processes are ours: stop them through their ManagedProcess.
      const stopOne = async (p: { pid: number }) => {
        const managed = processes.find((m) => m.child?.pid === p.pid);
        await (managed ? managed.stop() : stopPid(p.pid));
      };
      await stopNode(state, stopOne).catch((err: unknown) => {
        nodeError = err;
      });
    }
    for (const p of [...processes].reverse()) await p.stop();
    await closeProbes();
    if (nodeError) throw nodeError;
  };
  try {
    if (options.node) {
      log("claiming the machine for the test node (bridge, checks)");
      node = await claimNodeHost(workDir, log);
    }
    // Independent parts start together; each registers as soon as it runs so
    // a failure elsewhere still stops it.
    const add = (p: ManagedProcess) => {
      processes.push(p);
      if (node) recordProcess(node, p, "platform");
    };
    const track = <T extends { process: ManagedProcess }>(part: Promise<T>) =>
      part.then((p) => {
        add(p.process);
        return p;
      });
    const results = await Promise.allSettled([
      makeCerts(join(workDir, "pki"), { ips: node ? [node.net.address] : [] }),
      track(startEtcd({ workDir })),
      // With a node, on the bridge address: every endpoint works from the host and from pods.
      track(startS3({ workDir, ...(node ? { host: node.net.address } : {}) })),
      track(startToxiproxy({ workDir, ...(node ? { host: node.net.address } : {}) })),
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
    const nodeCerts = node ? await issueNodeCerts(certs, node) : undefined;
    const apiserver = await track(
      startApiServer({
        workDir,
        etcdUrl: etcd.url,
        certs,
        ...(node && nodeCerts
          ? { node: { address: node.net.address, kubeletClient: nodeCerts.apiserverKubeletClient } }
          : {}),
      }),
    );
    const kcm = await startControllerManager({ workDir, kubeconfig: apiserver.kubeconfig, certs, node: !!node });
    add(kcm);
    if (node && nodeCerts) {
      const nodeStarted = Date.now();
      log(
        `starting the node ${node.name} (containerd, kubelet, kube-proxy, kube-scheduler) on ${node.net.bridge} ${node.net.address}`,
      );
      await startNode(node, {
        certs,
        nodeCerts,
        apiserverUrl: apiserver.url,
        adminToken: apiserver.adminToken,
        kubeconfig: apiserver.kubeconfig,
        track: (p) => processes.push(p),
      });
      log(`node ${node.name} Ready in ${((Date.now() - nodeStarted) / 1000).toFixed(1)} s (control plane before it)`);
    }
    await closeProbes();
    return {
      workDir,
      processes,
      ...(node ? { node } : {}),
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
        ...(node ? nodeEnv(node) : {}),
      },
    };
  } catch (err) {
    await stop().catch((stopErr: unknown) => {
      (err as Error).message += `\n(and cleaning up failed: ${(stopErr as Error).message})`;
    });
    throw err;
  }
}
