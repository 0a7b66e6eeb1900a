// The test node: a real kubelet, containerd (+ Debian's runc), kube-proxy and
// kube-scheduler on a bridge the platform creates. One node per machine: its
// state (PIDs, what the machine had before) is kept in
// /run/feedcrawl-node/node.json from the first change on, so `stopNode` can
// undo everything — also for a node whose test run was killed, which the next
// start cleans up first. platform.ts calls claimNodeHost before the control
// plane (the apiserver listens on the bridge), then startNode.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { binaryPath, cniBinDir, requireBinaries, requireHostTools } from "../binaries.ts";
import { type ControlPlaneCerts, type IssuedCert, issueCert } from "../certs.ts";
import { isAlive, type ManagedProcess, stopPid } from "../process.ts";
import { ApiReader, type NodeObject, nodeReadiness } from "./api.ts";
import { bridgeExists, checkRangeFree, createBridge, deleteBridge, type NodeNetwork, nodeNetwork } from "./bridge.ts";
import { writeCniConfig } from "./cni.ts";
import { CONTAINERD_ADDRESS, NODE_RUN_DIR, SHIM_SOCKET_DIR, startContainerd } from "./containerd.ts";
import { execQuiet } from "./exec.ts";
import {
  checkFirewallFree,
  dropNewNftObjects,
  type NftObjects,
  nftObjects,
  nodeChains,
  removeNodeChains,
} from "./firewall.ts";
import {
  cgroupProcesses,
  killPids,
  kubepodsCgroups,
  listTree,
  mountPoints,
  processesOf,
  removeCgroups,
  restoreTree,
  startTimeOf,
  unmountUnder,
} from "./host.ts";
import { cleanupKubeProxy, startKubeProxy } from "./kube-proxy.ts";
import { kubeletPaths, shareRootDir, startKubelet } from "./kubelet.ts";
import { startScheduler } from "./scheduler.ts";

export const NODE_NAME = "feedcrawl-node";
export const NODE_STATE_FILE = join(NODE_RUN_DIR, "node.json");
/**
 * Fixed paths the node writes to whatever its config says: the kubelet's
 * device-plugin socket, its links to container logs, libcni's result cache
 * (go-cni has no setting for it) and containerd's shim sockets. Teardown puts
 * each back as it was.
 */
const FIXED_HOST_PATHS = ["/var/lib/kubelet", "/var/log/containers", "/var/lib/cni", SHIM_SOCKET_DIR];

export interface NodeState {
  name: string;
  workDir: string;
  nodeDir: string;
  net: NodeNetwork;
  containerdAddress: string;
  shim: string;
  /**
   * The node's processes and the platform's: the apiserver listens on the
   * bridge address and the others talk to it, so all of them stop before the
   * bridge goes (packets to its address would otherwise follow the default route).
   */
  processes: NodeProcess[];
  /** What the machine had before the node, so teardown removes only the node's. */
  before: { nft: NftObjects; hostPaths: Record<string, string[] | null> };
}

export interface NodeProcess {
  name: string;
  pid: number;
  /** With the PID, tells this process from a later one that got the same PID. */
  startTime: string;
  log: string;
  role: "node" | "platform";
}

/** Alive and still the process that was recorded (not a reused PID). */
export function isRunning(p: NodeProcess): boolean {
  return isAlive(p.pid) && startTimeOf(p.pid) === p.startTime;
}

export interface NodeCerts {
  kubeletServing: IssuedCert;
  apiserverKubeletClient: IssuedCert;
}

/** What tests and `local-cluster up` export about the node. */
export function nodeEnv(state: NodeState): Record<string, string> {
  return {
    FEEDCRAWL_NODE_HOST: state.net.address,
    FEEDCRAWL_NODE_SITE_HOSTS: state.net.siteHosts.join(","),
    FEEDCRAWL_NODE_NAME: state.name,
    FEEDCRAWL_CONTAINERD_ADDRESS: state.containerdAddress,
  };
}

function saveState(state: NodeState): void {
  mkdirSync(NODE_RUN_DIR, { recursive: true });
  writeFileSync(NODE_STATE_FILE, `${JSON.stringify(state, null, 2)}\n`);
}

export function readNodeState(): NodeState | undefined {
  if (!existsSync(NODE_STATE_FILE)) return undefined;
  return JSON.parse(readFileSync(NODE_STATE_FILE, "utf8")) as NodeState;
}

/**
 * Checks the machine can take the node, records what it has now, and creates
 * the bridge. Fails when a node already runs here; cleans up one that died.
 */
export async function claimNodeHost(workDir: string, log: (line: string) => void = () => {}): Promise<NodeState> {
  requireHostTools();
  requireBinaries([
    "kubelet",
    "kube-scheduler",
    "kube-proxy",
    "containerd",
    "ctr",
    "containerd-shim-runc-v2",
    "crictl",
  ]);
  cniBinDir();
  if (process.getuid?.() !== 0) throw new Error("The test node needs root (mounts, bridge, iptables, cgroups).");
  const old = readNodeState();
  if (old) {
    const alive = old.processes.filter(isRunning);
    if (alive.length > 0) {
      throw new Error(
        `A feedcrawl test node already runs on this machine (work dir ${old.workDir}, ` +
          `${alive.map((p) => `${p.name} pid ${p.pid}`).join(", ")}): one node per machine. ` +
          "Stop it first (`npm run local-cluster -- down`, or let its test run end).",
      );
    }
    log(`a test node whose processes died (work dir ${old.workDir}) is left on this machine: removing it first`);
    await stopNode(old);
  }
  const net = nodeNetwork();
  if (await bridgeExists(net)) {
    throw new Error(
      `The bridge ${net.bridge} exists but no test node owns it (${NODE_STATE_FILE} is missing). ` +
        `Delete it if nothing else uses it: \`ip link delete ${net.bridge}\`.`,
    );
  }
  await checkRangeFree(net);
  await checkFirewallFree();
  const cgroups = kubepodsCgroups();
  if (cgroups.length > 0) {
    throw new Error(`Pod cgroups of another kubelet exist (${cgroups.join(", ")}): the test node will not share them.`);
  }
  const nodeDir = join(workDir, "node");
  mkdirSync(nodeDir, { recursive: true });
  const state: NodeState = {
    name: NODE_NAME,
    workDir,
    nodeDir,
    net,
    containerdAddress: CONTAINERD_ADDRESS,
    shim: binaryPath("containerd-shim-runc-v2"),
    processes: [],
    before: {
      nft: await nftObjects(),
      hostPaths: Object.fromEntries(FIXED_HOST_PATHS.map((p) => [p, listTree(p) ?? null])),
    },
  };
  saveState(state);
  await createBridge(net);
  return state;
}

/** Adds a running process to the node's state, so a teardown (also after a crash) stops it. */
export function recordProcess(state: NodeState, p: ManagedProcess, role: "node" | "platform"): void {
  state.processes.push({
    name: p.spec.name,
    pid: p.pid,
    startTime: startTimeOf(p.pid) ?? "",
    log: p.spec.logFile,
    role,
  });
  saveState(state);
}

/** The kubelet's serving certificate and the apiserver's client certificate for the kubelet. */
export async function issueNodeCerts(certs: ControlPlaneCerts, state: NodeState): Promise<NodeCerts> {
  const [kubeletServing, apiserverKubeletClient] = await Promise.all([
    issueCert(certs, "kubelet", { cn: state.name, usage: "server", ips: [state.net.address], dns: [state.name] }),
    issueCert(certs, "apiserver-kubelet-client", {
      cn: "kube-apiserver-kubelet-client",
      org: "system:masters",
      usage: "client",
    }),
  ]);
  return { kubeletServing, apiserverKubeletClient };
}

/**
 * Starts containerd, the kubelet, kube-proxy and kube-scheduler and waits
 * until the Node is Ready and untainted and the default ServiceAccount exists,
 * so a pod created next schedules and starts at once.
 */
export async function startNode(
  state: NodeState,
  options: {
    certs: ControlPlaneCerts;
    nodeCerts: NodeCerts;
    apiserverUrl: string;
    adminToken: string;
    kubeconfig: string;
    /** Receives each process as soon as it runs, so the caller can stop it whatever fails later. */
    track: (p: ManagedProcess) => void;
    timeoutMs?: number;
  },
): Promise<void> {
  const { workDir, nodeDir, net } = state;
  const track = (p: ManagedProcess) => {
    options.track(p);
    recordProcess(state, p, "node");
  };
  const { rootDir } = kubeletPaths(nodeDir);
  await shareRootDir(rootDir);
  const cniBin = cniBinDir();
  writeCniConfig({ confDir: join(nodeDir, "cni", "net.d"), ipamDir: join(nodeDir, "cni", "ipam"), net });
  const containerd = await startContainerd({ workDir, nodeDir, cniBinDir: cniBin });
  track(containerd.process);
  const common = { workDir, nodeDir, nodeName: state.name, net, kubeconfig: options.kubeconfig };
  const kubelet = await startKubelet({ ...common, certs: options.certs, serving: options.nodeCerts.kubeletServing });
  track(kubelet.process);
  const [proxy, scheduler] = await Promise.all([startKubeProxy(common), startScheduler(common)]);
  track(proxy);
  track(scheduler);

  const api = new ApiReader(options.apiserverUrl, options.certs.caCert, options.adminToken);
  try {
    const timeoutMs = options.timeoutMs ?? 120_000;
    let readiness = "not registered";
    try {
      await kubelet.process.waitReady(
        async () => {
          readiness = nodeReadiness(await api.get<NodeObject>(`/api/v1/nodes/${state.name}`));
          return readiness === "Ready";
        },
        timeoutMs,
        "serving a Ready node",
      );
    } catch (err) {
      throw new Error(`Node ${state.name} is not Ready (${readiness}): ${(err as Error).message}`);
    }
    await kubelet.process.waitReady(
      async () => (await api.get("/api/v1/namespaces/default/serviceaccounts/default")) !== undefined,
      30_000,
      "joined by the default ServiceAccount (kube-controller-manager's serviceaccount-controller)",
    );
  } finally {
    await api.close();
  }
}

/**
 * Removes the node from the machine: processes (by PID), pods (crictl), the
 * mounts, cgroups, iptables chains, nftables objects, bridge and runtime state
 * it made. Throws, naming them, when traces are left.
 */
export async function stopNode(
  state: NodeState,
  stopProcess: (p: NodeProcess) => Promise<void> = (p) => stopPid(p.pid),
): Promise<void> {
  const problems: string[] = [];
  const step = async (what: string, run: () => Promise<unknown>) => {
    try {
      await run();
    } catch (err) {
      problems.push(`${what}: ${(err as Error).message}`);
    }
  };
  // Only processes still running as recorded: a PID reused since is someone else's.
  const byName = (name: string) => state.processes.filter((p) => p.name === name && isRunning(p));
  // Nothing may start new pods or rules while the pods are removed.
  for (const name of ["kube-scheduler", "kubelet", "kube-proxy"]) {
    for (const p of byName(name)) await step(`stop ${name} (pid ${p.pid})`, () => stopProcess(p));
  }
  const containerd = byName("containerd")[0];
  if (containerd) {
    // The CRI way: stops every container and sandbox, releases its IP, unmounts its rootfs and netns.
    await step("remove the pods (crictl rmp --all --force)", async () => {
      const result = await execQuiet(
        binaryPath("crictl"),
        ["--runtime-endpoint", `unix://${state.containerdAddress}`, "--timeout", "60s", "rmp", "--all", "--force"],
        { timeoutMs: 90_000 },
      );
      if (result.code !== 0) throw new Error(result.stderr.trim());
    });
  }
  for (const p of byName("containerd")) await step(`stop containerd (pid ${p.pid})`, () => stopProcess(p));
  // The control plane and servers, last started first, while the bridge address still exists.
  for (const p of state.processes.filter((x) => x.role === "platform" && isRunning(x)).reverse()) {
    await step(`stop ${p.name} (pid ${p.pid})`, () => stopProcess(p));
  }
  // Whatever a crash left: container processes in the pod cgroups, then the node's shims.
  await step("kill leftover pod processes", () => killPids(cgroupProcesses(kubepodsCgroups())));
  await step("kill leftover shims", () => killPids(processesOf(state.shim)));
  await step("unmount", () => unmountUnder([state.nodeDir, NODE_RUN_DIR]));
  await step("remove the kubepods cgroups", async () => {
    const left = await removeCgroups(kubepodsCgroups());
    if (left.length > 0) throw new Error(`still there: ${left.slice(0, 5).join(", ")}`);
  });
  await step("kube-proxy --cleanup", () => cleanupKubeProxy(join(state.workDir, "logs", "kube-proxy-cleanup.log")));
  await step("remove the kubelet's and CNI's iptables chains", () => removeNodeChains());
  await step("drop nftables objects made for them", async () => {
    const left = await dropNewNftObjects(state.before.nft);
    if (left.length > 0) throw new Error(`still holding rules: ${left.join(", ")}`);
  });
  await step(`delete the bridge ${state.net.bridge}`, () => deleteBridge(state.net));
  for (const [path, before] of Object.entries(state.before.hostPaths)) {
    await step(`put ${path} back as it was`, async () => restoreTree(path, before ?? undefined));
  }

  // What must be gone now.
  const mounts = mountPoints().filter((m) => m.startsWith(`${state.nodeDir}/`) || m.startsWith(`${NODE_RUN_DIR}/`));
  if (mounts.length > 0) problems.push(`mounts left: ${mounts.join(", ")}`);
  if (await bridgeExists(state.net)) problems.push(`the bridge ${state.net.bridge} is still there`);
  const chains = await nodeChains();
  if (chains.length > 0) problems.push(`iptables chains left: ${chains.join("; ")}`);
  const alive = state.processes.filter(isRunning);
  if (alive.length > 0) problems.push(`processes left: ${alive.map((p) => `${p.name} pid ${p.pid}`).join(", ")}`);
  if (problems.length > 0) {
    // Keep the state file: the next start (or `down`) tries again.
    throw new Error(`The test node was not removed cleanly:\n  - ${problems.join("\n  - ")}`);
  }
  rmSync(NODE_RUN_DIR, { recursive: true, force: true });
}
