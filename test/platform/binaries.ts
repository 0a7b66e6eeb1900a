// Where the test platform's real servers are: built by build-testbin.sh into
// ~/.cache/feedcrawl/testbin/<name>-<version>/ at the versions pinned in
// versions.env. A missing binary is an error that says how to build it;
// tests never skip because of it. The node's host tools (runc, iptables, …)
// are Debian packages: a missing one names the package to install.
import { createHash } from "node:crypto";
import { accessSync, constants, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

const versionsFile = new URL("versions.env", import.meta.url);
const podcheckDir = new URL("testbin/podcheck/", import.meta.url);

export type BinaryName =
  | "etcd"
  | "kube-apiserver"
  | "kube-controller-manager"
  | "kubectl"
  | "kubelet"
  | "kube-scheduler"
  | "kube-proxy"
  | "helm"
  | "versitygw"
  | "toxiproxy-server"
  | "promtool"
  | "containerd"
  | "ctr"
  | "containerd-shim-runc-v2"
  | "crictl";

/** Images the node imports from an OCI archive (it has no registry). */
export type ImageName = "pause" | "podcheck";

/** The pinned versions, e.g. { K8S_VERSION: "1.36.3", … }. */
export function versions(): Record<string, string> {
  const result: Record<string, string> = {};
  for (const line of readFileSync(versionsFile, "utf8").split("\n")) {
    const match = /^\s*([A-Z0-9_]+)=(\S+)/.exec(line);
    if (match?.[1] && match[2]) result[match[1]] = match[2];
  }
  return result;
}

/** The cache folder; FEEDCRAWL_TESTBIN overrides it (build-testbin.sh reads it too). */
export function testbinDir(): string {
  return process.env.FEEDCRAWL_TESTBIN || join(homedir(), ".cache", "feedcrawl", "testbin");
}

const folderOf: Record<BinaryName, [dir: string, versionKey: string]> = {
  etcd: ["etcd", "ETCD_VERSION"],
  "kube-apiserver": ["kubernetes", "K8S_VERSION"],
  "kube-controller-manager": ["kubernetes", "K8S_VERSION"],
  kubectl: ["kubernetes", "K8S_VERSION"],
  kubelet: ["kubernetes", "K8S_VERSION"],
  "kube-scheduler": ["kubernetes", "K8S_VERSION"],
  "kube-proxy": ["kubernetes", "K8S_VERSION"],
  helm: ["helm", "HELM_VERSION"],
  versitygw: ["versitygw", "VERSITYGW_VERSION"],
  "toxiproxy-server": ["toxiproxy", "TOXIPROXY_VERSION"],
  promtool: ["promtool", "PROMTOOL_VERSION"],
  containerd: ["containerd", "CONTAINERD_VERSION"],
  ctr: ["containerd", "CONTAINERD_VERSION"],
  "containerd-shim-runc-v2": ["containerd", "CONTAINERD_VERSION"],
  crictl: ["crictl", "CRICTL_VERSION"],
};

export class MissingBinaryError extends Error {
  override name = "MissingBinaryError";
}

function pinned(key: string): string {
  const version = versions()[key];
  if (!version) throw new Error(`${key} is missing from test/platform/versions.env`);
  return version;
}

function requireFile(path: string, what: string, mode = constants.X_OK): string {
  try {
    accessSync(path, mode);
  } catch {
    throw new MissingBinaryError(
      `${what} is not built: ${path} does not exist. Build the test platform's binaries with ` +
        "`npm run testbin` (bash test/platform/build-testbin.sh; needs Go and the Go module proxy, " +
        "a cold build takes about 30 min on 2 cores, later runs reuse the cache).",
    );
  }
  return path;
}

/** Absolute path of a built binary, or a MissingBinaryError saying how to build it. */
export function binaryPath(name: BinaryName): string {
  const [dir, key] = folderOf[name];
  const version = pinned(key);
  return requireFile(join(testbinDir(), `${dir}-${version}`, name), `${name} ${version}`);
}

export const CNI_PLUGINS = ["bridge", "host-local", "loopback", "portmap"] as const;

/** The folder of the built CNI plugins (containerd's `bin_dirs`). */
export function cniBinDir(): string {
  const version = pinned("CNI_PLUGINS_VERSION");
  const dir = join(testbinDir(), `cni-plugins-${version}`);
  for (const plugin of CNI_PLUGINS) requireFile(join(dir, plugin), `CNI plugin ${plugin} ${version}`);
  return dir;
}

/** podcheck's cache folder is named after a hash of its source, as build-testbin.sh names it. */
function podcheckHash(): string {
  const hash = createHash("sha256");
  for (const file of ["go.mod", "main.go"]) hash.update(readFileSync(new URL(file, podcheckDir)));
  return hash.digest("hex").slice(0, 12);
}

/** An image archive for `ctr images import`, and the name the image gets. */
export function imageArchive(image: ImageName): { archive: string; name: string } {
  const folder = image === "pause" ? `pause-${pinned("K8S_VERSION")}` : `podcheck-${podcheckHash()}`;
  const dir = join(testbinDir(), folder);
  const archive = requireFile(join(dir, `${image}.oci.tar`), `the ${image} image`, constants.R_OK);
  return { archive, name: readFileSync(join(dir, "image-name"), "utf8").trim() };
}

/** Fails with the build hint unless every binary the platform starts is built. */
export function requireBinaries(names: BinaryName[]): Record<BinaryName, string> {
  const missing: string[] = [];
  const found: Partial<Record<BinaryName, string>> = {};
  for (const name of names) {
    try {
      found[name] = binaryPath(name);
    } catch (err) {
      if (!(err instanceof MissingBinaryError)) throw err;
      missing.push(name);
    }
  }
  if (missing.length > 0) {
    // Re-throw the first one's message, naming all that are missing.
    const first = missing[0] as BinaryName;
    try {
      binaryPath(first);
    } catch (err) {
      throw new MissingBinaryError(`Missing test binaries: ${missing.join(", ")}. ${(err as Error).message}`);
    }
  }
  return found as Record<BinaryName, string>;
}

/** Host programs the node runs, with the Debian package that has each. */
const hostTools = {
  runc: "runc",
  iptables: "iptables",
  "iptables-save": "iptables",
  ip6tables: "iptables",
  "ip6tables-save": "iptables",
  nft: "nftables",
  ip: "iproute2",
  unshare: "util-linux",
  mount: "mount",
  umount: "mount",
} as const;
export type HostTool = keyof typeof hostTools;

const searchPath = () => [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/** Absolute path of a host program, or a MissingBinaryError naming its Debian package. */
export function hostTool(name: HostTool): string {
  for (const dir of searchPath()) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {}
  }
  throw new MissingBinaryError(
    `${name} is not installed: the test node needs it. Install it with \`apt-get install -y ${hostTools[name]}\` ` +
      "(.ci/run installs the node's packages when they are missing).",
  );
}

/** Fails naming every missing host program and its package. */
export function requireHostTools(names: HostTool[] = Object.keys(hostTools) as HostTool[]): void {
  const missing = names.filter((name) => {
    try {
      hostTool(name);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((name) => hostTools[name]))];
    throw new MissingBinaryError(
      `Missing host programs for the test node: ${missing.join(", ")}. Install them with ` +
        `\`apt-get install -y ${packages.join(" ")}\` (.ci/run does).`,
    );
  }
}
