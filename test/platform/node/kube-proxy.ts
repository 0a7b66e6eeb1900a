// kube-proxy in iptables mode, so ClusterIP Services (first of all
// `kubernetes`) work from pods and from the host. Set so it changes no host
// sysctl: no localhost NodePorts (they need route_localnet), every conntrack
// value 0 (leave the kernel's), NodePorts only on the bridge address; its
// health and metrics listeners on loopback. `--cleanup` removes its rules at `down`.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { binaryPath } from "../binaries.ts";
import { freePorts } from "../ports.ts";
import { httpOk } from "../probe.ts";
import { ManagedProcess } from "../process.ts";
import type { NodeNetwork } from "./bridge.ts";
import { execQuiet } from "./exec.ts";

export function kubeProxyConfigFile(nodeDir: string): string {
  return join(nodeDir, "kube-proxy.yaml");
}

export async function startKubeProxy(options: {
  workDir: string;
  nodeDir: string;
  nodeName: string;
  net: NodeNetwork;
  kubeconfig: string;
}): Promise<ManagedProcess> {
  const [healthzPort, metricsPort] = await freePorts(2);
  const config = {
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    mode: "iptables",
    clientConnection: { kubeconfig: options.kubeconfig },
    hostnameOverride: options.nodeName,
    clusterCIDR: options.net.cidr,
    healthzBindAddress: `127.0.0.1:${healthzPort}`,
    metricsBindAddress: `127.0.0.1:${metricsPort}`,
    nodePortAddresses: [`${options.net.address}/32`],
    iptables: { localhostNodePorts: false, masqueradeAll: false },
    conntrack: {
      maxPerCore: 0,
      min: 0,
      tcpEstablishedTimeout: "0s",
      tcpCloseWaitTimeout: "0s",
      udpTimeout: "0s",
      udpStreamTimeout: "0s",
    },
  };
  const file = kubeProxyConfigFile(options.nodeDir);
  writeFileSync(file, stringify(config));
  const proc = new ManagedProcess({
    name: "kube-proxy",
    command: binaryPath("kube-proxy"),
    args: [`--config=${file}`, "--v=1"],
    logFile: join(options.workDir, "logs", "kube-proxy.log"),
  });
  await proc.startAndWait(() => httpOk(`http://127.0.0.1:${healthzPort}/healthz`), 60_000, "healthy (/healthz)");
  return proc;
}

/** `kube-proxy --cleanup`: removes the iptables, ipvs and nftables rules of every kube-proxy mode. */
export async function cleanupKubeProxy(logFile: string): Promise<void> {
  const result = await execQuiet(binaryPath("kube-proxy"), ["--cleanup", "--v=1"], { timeoutMs: 60_000 });
  writeFileSync(logFile, `${result.stdout}${result.stderr}`, { flag: "a" });
}
