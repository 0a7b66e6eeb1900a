// The kubelet, run the way real-node.md found works on these machines
// (cgroup v1, cgroupfs, no swap check, relaxed eviction so a busy box never
// evicts test pods), in a mount namespace of its own: there the kernel
// tunables it insists on (vm.overcommit_memory, kernel.panic, …) are files of
// the work dir bind-mounted over /proc/sys, so the host's values never
// change. Its root dir is a shared bind mount, so the volumes it mounts for
// pods propagate back to the host, where containerd and runc see them.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { binaryPath, hostTool } from "../binaries.ts";
import type { ControlPlaneCerts, IssuedCert } from "../certs.ts";
import { freePorts } from "../ports.ts";
import { ManagedProcess } from "../process.ts";
import type { NodeNetwork } from "./bridge.ts";
import { CONTAINERD_ADDRESS } from "./containerd.ts";
import { exec } from "./exec.ts";

/** The kubelet's kernel tunables (pkg/kubelet/cm setupKernelTunables) and the values it wants. */
export const KUBELET_SYSCTLS: Record<string, string> = {
  "vm/overcommit_memory": "1",
  "vm/panic_on_oom": "0",
  "kernel/panic": "10",
  "kernel/panic_on_oops": "1",
  "kernel/keys/root_maxkeys": "1000000",
  "kernel/keys/root_maxbytes": "25000000",
};

export interface KubeletPaths {
  rootDir: string;
  podLogsDir: string;
}

export function kubeletPaths(nodeDir: string): KubeletPaths {
  return { rootDir: join(nodeDir, "kubelet"), podLogsDir: join(nodeDir, "pod-logs") };
}

/** Makes the root dir a shared mount point before the kubelet's namespace copies it. */
export async function shareRootDir(rootDir: string): Promise<void> {
  mkdirSync(rootDir, { recursive: true });
  const mount = hostTool("mount");
  await exec(mount, ["--bind", rootDir, rootDir]);
  await exec(mount, ["--make-shared", rootDir]);
}

export async function startKubelet(options: {
  workDir: string;
  nodeDir: string;
  nodeName: string;
  net: NodeNetwork;
  kubeconfig: string;
  certs: ControlPlaneCerts;
  serving: IssuedCert;
}): Promise<{ process: ManagedProcess; port: number; healthz: string }> {
  const { nodeDir, net } = options;
  const paths = kubeletPaths(nodeDir);
  const dir = join(nodeDir, "kubelet-config");
  const sysctlDir = join(dir, "sysctl");
  mkdirSync(sysctlDir, { recursive: true });
  mkdirSync(paths.podLogsDir, { recursive: true });
  const [port = 0, healthzPort = 0] = await freePorts(2);
  // No DNS add-on: pods get a resolv.conf without name servers.
  const resolvConf = join(dir, "resolv.conf");
  writeFileSync(resolvConf, "# feedcrawl test node: no DNS in pods\n");
  const config = {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    // The apiserver reaches the kubelet (logs, exec) on the node IP; pods cannot use it without a client cert.
    address: net.address,
    port,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort,
    tlsCertFile: options.serving.cert,
    tlsPrivateKeyFile: options.serving.key,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: options.certs.caCert },
    },
    authorization: { mode: "Webhook" },
    containerRuntimeEndpoint: `unix://${CONTAINERD_ADDRESS}`,
    cgroupDriver: "cgroupfs",
    // 1.36 refuses cgroup v1 by default; these machines have v1 (hybrid).
    failCgroupV1: false,
    failSwapOn: false,
    resolvConf,
    podLogsDir: paths.podLogsDir,
    // FlexVolume plugins; default /usr/libexec/kubernetes/kubelet-plugins/volume/exec.
    volumePluginDir: join(nodeDir, "volume-plugins"),
    clusterDomain: "cluster.local",
    evictionHard: {
      "memory.available": "1Mi",
      "nodefs.available": "1%",
      "nodefs.inodesFree": "1%",
      "imagefs.available": "1%",
      "imagefs.inodesFree": "1%",
    },
    mergeDefaultEvictionSettings: false,
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    serializeImagePulls: false,
    rotateCertificates: false,
    serverTLSBootstrap: false,
  };
  const configFile = join(dir, "kubelet.yaml");
  writeFileSync(configFile, stringify(config));
  for (const [key, value] of Object.entries(KUBELET_SYSCTLS)) {
    writeFileSync(join(sysctlDir, key.replaceAll("/", ".")), `${value}\n`);
  }
  // In the new namespace: /proc private first (so the bind mounts stay here even
  // where / is shared), then each tunable covered by its file, then exec the kubelet.
  const script = [
    "set -e",
    "mount --make-rprivate /proc",
    ...Object.keys(KUBELET_SYSCTLS).map(
      (key) => `mount --bind ${JSON.stringify(join(sysctlDir, key.replaceAll("/", ".")))} /proc/sys/${key}`,
    ),
    'exec "$@"',
  ].join("\n");
  const proc = new ManagedProcess({
    name: "kubelet",
    command: hostTool("unshare"),
    args: [
      "--mount",
      "--propagation",
      "unchanged",
      "--",
      "/bin/sh",
      "-c",
      script,
      "kubelet",
      binaryPath("kubelet"),
      `--config=${configFile}`,
      `--kubeconfig=${options.kubeconfig}`,
      `--hostname-override=${options.nodeName}`,
      `--node-ip=${net.address}`,
      `--root-dir=${paths.rootDir}`,
      "--v=1",
    ],
    logFile: join(options.workDir, "logs", "kubelet.log"),
  });
  proc.start();
  return { process: proc, port, healthz: `http://127.0.0.1:${healthzPort}/healthz` };
}
