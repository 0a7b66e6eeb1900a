// What the test node could change on the machine, captured so a test can
// compare it before `up`, while the node runs, and after `down`: firewall
// rules (iptables v4/v6 and the nftables ruleset under them), mounts, network
// links, kernel tunables, pod cgroups and the runtime's folders.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";

/** The kubelet's, kube-proxy's and the CNI bridge plugin's tunables. */
export const WATCHED_SYSCTLS = [
  "vm/overcommit_memory",
  "vm/panic_on_oom",
  "kernel/panic",
  "kernel/panic_on_oops",
  "kernel/keys/root_maxkeys",
  "kernel/keys/root_maxbytes",
  "net/ipv4/ip_forward",
  "net/ipv6/conf/all/forwarding",
  "net/ipv4/conf/all/route_localnet",
  "net/bridge/bridge-nf-call-iptables",
  "net/bridge/bridge-nf-call-ip6tables",
  "net/netfilter/nf_conntrack_max",
  "net/netfilter/nf_conntrack_tcp_timeout_established",
  "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
  "net/netfilter/nf_conntrack_tcp_be_liberal",
  "net/netfilter/nf_conntrack_udp_timeout",
  "net/netfilter/nf_conntrack_udp_timeout_stream",
];

export interface HostSnapshot {
  iptables: string;
  ip6tables: string;
  nft: string;
  mounts: string[];
  links: string[];
  sysctls: Record<string, string>;
  cgroups: string[];
  paths: Record<string, boolean>;
}

// stderr ignored: nft warns that iptables-nft manages the tables it lists.
const run = (command: string, args: string[]) =>
  execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });

/** iptables-save without its comment lines and packet counters, which change by themselves. */
const rules = (save: string) =>
  run(save, [])
    .split("\n")
    .filter((line) => !line.startsWith("#"))
    .map((line) => line.replace(/\[\d+:\d+\]$/, ""))
    .join("\n");

export function snapshotHost(): HostSnapshot {
  const sysctls: Record<string, string> = {};
  for (const key of WATCHED_SYSCTLS) {
    try {
      sysctls[key] = readFileSync(`/proc/sys/${key}`, "utf8").trim();
    } catch {
      sysctls[key] = "(absent)";
    }
  }
  const cgroups = readdirSync("/sys/fs/cgroup").filter((c) => existsSync(`/sys/fs/cgroup/${c}/kubepods`));
  return {
    iptables: rules("iptables-save"),
    ip6tables: rules("ip6tables-save"),
    nft: run("nft", ["list", "ruleset"]),
    // mount point, type and source; mount IDs change with every mount. Image
    // builds (buildah, `npm run image`) may mount and unmount in their own
    // storage while this test runs: not the node's, so left out.
    mounts: readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .filter((line) => line && !line.includes("/.cache/feedcrawl/images/"))
      .map((line) => {
        const fields = line.split(" ");
        const dash = fields.indexOf("-");
        return `${fields[4]} ${fields[dash + 1]} ${fields[dash + 2]}`;
      })
      .sort(),
    links: (JSON.parse(run("ip", ["-j", "link", "show"])) as { ifname: string }[]).map((l) => l.ifname).sort(),
    sysctls,
    cgroups,
    paths: Object.fromEntries(
      [
        "/run/containerd",
        "/run/feedcrawl-node",
        "/var/log/containers",
        "/var/log/pods",
        "/var/lib/kubelet",
        "/var/lib/cni",
        "/usr/libexec/kubernetes",
        "/opt/containerd",
        "/var/run/netns",
        "/etc/cni/net.d/10-feedcrawl.conflist",
      ].map((p) => [p, existsSync(p)]),
    ),
  };
}
