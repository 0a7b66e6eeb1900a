// containerd, the node's container runtime, with everything of its own: root
// (images, snapshots) in the work dir, state and sockets under
// /run/feedcrawl-node, runc state there too, its own CNI and CDI folders and
// `opt` path, so it neither sees nor touches a containerd of the machine. The
// settings the machine needs (real-node.md): restrict_oom_score_adj (no
// CAP_SYS_RESOURCE here), no NRI, cgroupfs, Debian's runc. Shim sockets
// still go to /run/containerd/s (hard-coded in containerd); `down` removes them.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { binaryPath, hostTool, type ImageName, imageArchive } from "../binaries.ts";
import { ManagedProcess } from "../process.ts";
import { exec, execQuiet } from "./exec.ts";

export const NODE_RUN_DIR = "/run/feedcrawl-node";
export const CONTAINERD_ADDRESS = join(NODE_RUN_DIR, "containerd.sock");
export const RUNC_ROOT = join(NODE_RUN_DIR, "runc");
/** Where containerd's shims put their sockets whatever the config says. */
export const SHIM_SOCKET_DIR = "/run/containerd";

export interface ContainerdPaths {
  root: string;
  state: string;
  config: string;
  cniConfDir: string;
}

export function containerdPaths(nodeDir: string): ContainerdPaths {
  return {
    root: join(nodeDir, "containerd"),
    state: join(NODE_RUN_DIR, "containerd"),
    config: join(nodeDir, "containerd.toml"),
    cniConfDir: join(nodeDir, "cni", "net.d"),
  };
}

function writeConfig(nodeDir: string, paths: ContainerdPaths, cniBinDir: string, sandboxImage: string): void {
  const q = JSON.stringify;
  const cdiDir = join(nodeDir, "cdi");
  mkdirSync(cdiDir, { recursive: true });
  mkdirSync(paths.cniConfDir, { recursive: true });
  const config = `version = 3
root = ${q(paths.root)}
state = ${q(paths.state)}
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = ${q(CONTAINERD_ADDRESS)}

[ttrpc]
  address = ${q(join(NODE_RUN_DIR, "containerd-ttrpc.sock"))}

[plugins.'io.containerd.internal.v1.opt']
  path = ${q(join(nodeDir, "containerd-opt"))}

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = ${q(sandboxImage)}

[plugins.'io.containerd.cri.v1.runtime']
  # The pause container asks for oom_score_adj -998, which needs CAP_SYS_RESOURCE.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = [${q(cdiDir)}]
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = ${q(hostTool("runc"))}
        Root = ${q(RUNC_ROOT)}
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [${q(cniBinDir)}]
    conf_dir = ${q(paths.cniConfDir)}
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`;
  writeFileSync(paths.config, config);
}

export async function startContainerd(options: {
  workDir: string;
  nodeDir: string;
  cniBinDir: string;
}): Promise<{ process: ManagedProcess; paths: ContainerdPaths }> {
  const paths = containerdPaths(options.nodeDir);
  const pause = imageArchive("pause");
  writeConfig(options.nodeDir, paths, options.cniBinDir, pause.name);
  const ctr = binaryPath("ctr");
  const proc = new ManagedProcess({
    name: "containerd",
    command: binaryPath("containerd"),
    args: [`--config=${paths.config}`, "--log-level=info"],
    // The shim is found next to containerd; runc by its absolute path in the config.
    env: {
      ...process.env,
      PATH: `${binaryPath("containerd-shim-runc-v2").replace(/\/[^/]+$/, "")}:${process.env.PATH ?? ""}`,
    },
    logFile: join(options.workDir, "logs", "containerd.log"),
  });
  await proc.startAndWait(
    async () => (await execQuiet(ctr, ["--address", CONTAINERD_ADDRESS, "version"], { timeoutMs: 5000 })).code === 0,
    60_000,
    "answering on its socket",
  );
  await importImage("pause");
  return { process: proc, paths };
}

/** Imports a built image archive into the node (namespace k8s.io, where the kubelet's images live). */
export async function importImage(image: ImageName): Promise<string> {
  const { archive, name } = imageArchive(image);
  await exec(binaryPath("ctr"), ["--address", CONTAINERD_ADDRESS, "-n", "k8s.io", "images", "import", archive], {
    timeoutMs: 120_000,
  });
  return name;
}
