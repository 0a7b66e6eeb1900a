// The node's network: a Linux bridge the platform creates, whose address is
// the node's IP, the pods' gateway and the host address pods reach (S3,
// toxiproxy, the apiserver, the reference backend listen on it). The bridge
// also holds more host addresses, the site hosts (.2–.9 of the /24, as /32s),
// so fixture sites can listen on several distinct hosts pods reach (the runner
// shards a crawl by hostname; with the default range they cover every shard
// of 2, 3 or 4); the pods' addresses start above them, at .10 (cni.ts). 10.213.0.0/24 is used by no common
// tool (docker 172.17/16, podman 10.88/16, flannel/kind 10.244/16, k3s
// 10.42/16, libvirt 192.168.122/24); FEEDCRAWL_NODE_CIDR picks another /24,
// and `up` refuses a range that overlaps a route or address of the machine.
import { hostTool } from "../binaries.ts";
import { exec, execQuiet } from "./exec.ts";

export interface NodeNetwork {
  bridge: string;
  /** The pods' /24, e.g. 10.213.0.0/24. */
  cidr: string;
  /** Its first address, on the bridge: node IP, pods' gateway, FEEDCRAWL_NODE_HOST. */
  address: string;
  /** More host addresses on the bridge (.2–.9) for fixture sites: FEEDCRAWL_NODE_SITE_HOSTS. */
  siteHosts: string[];
}

/** How many site hosts the bridge holds; pod addresses start at .10 (cni.ts). */
export const SITE_HOST_COUNT = 8;

export function nodeNetwork(): NodeNetwork {
  const cidr = process.env.FEEDCRAWL_NODE_CIDR || "10.213.0.0/24";
  const match = /^(\d+)\.(\d+)\.(\d+)\.0\/24$/.exec(cidr);
  if (!match) throw new Error(`FEEDCRAWL_NODE_CIDR=${cidr} is not a /24 of the form a.b.c.0/24`);
  const base = `${match[1]}.${match[2]}.${match[3]}`;
  const siteHosts = Array.from({ length: SITE_HOST_COUNT }, (_, i) => `${base}.${i + 2}`);
  return { bridge: "feedcrawl0", cidr, address: `${base}.1`, siteHosts };
}

function toInt(ip: string): number {
  return ip.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

/** True when two IPv4 CIDRs share an address. */
export function overlaps(a: string, b: string): boolean {
  const [ipA = "", lenA = "32"] = a.split("/");
  const [ipB = "", lenB = "32"] = b.split("/");
  const len = Math.min(Number(lenA), Number(lenB));
  const size = 2 ** (32 - len);
  return Math.floor(toInt(ipA) / size) === Math.floor(toInt(ipB) / size);
}

export async function bridgeExists(net: NodeNetwork): Promise<boolean> {
  return (await execQuiet(hostTool("ip"), ["link", "show", "dev", net.bridge])).code === 0;
}

/** Fails when the pods' range clashes with a route or an address the machine already has. */
export async function checkRangeFree(net: NodeNetwork): Promise<void> {
  const ip = hostTool("ip");
  const routes = JSON.parse(await exec(ip, ["-j", "-4", "route", "show", "table", "all"])) as {
    dst: string;
    dev?: string;
  }[];
  const addrs = JSON.parse(await exec(ip, ["-j", "-4", "addr", "show"])) as {
    ifname: string;
    addr_info: { local: string; prefixlen: number }[];
  }[];
  const taken = [
    ...routes.filter((r) => r.dst !== "default" && r.dev !== net.bridge).map((r) => `${r.dst} (route via ${r.dev})`),
    ...addrs
      .filter((a) => a.ifname !== net.bridge)
      .flatMap((a) => a.addr_info.map((i) => `${i.local}/${i.prefixlen} (address of ${a.ifname})`)),
  ].filter((entry) => {
    const cidr = entry.split(" ")[0] ?? "";
    return !cidr.startsWith("127.") && overlaps(cidr.includes("/") ? cidr : `${cidr}/32`, net.cidr);
  });
  if (taken.length > 0) {
    throw new Error(
      `The test node's pod range ${net.cidr} overlaps ${taken.join(", ")} on this machine. ` +
        "Pick a free /24 with FEEDCRAWL_NODE_CIDR (e.g. FEEDCRAWL_NODE_CIDR=10.214.0.0/24).",
    );
  }
}

export async function createBridge(net: NodeNetwork): Promise<void> {
  const ip = hostTool("ip");
  await exec(ip, ["link", "add", "name", net.bridge, "type", "bridge"]);
  // A MAC of its own, set once: a bridge without one takes its lowest port's MAC, which changes when that
  // pod's veth goes, and every other pod's ARP entry for the bridge's addresses then points nowhere for
  // ~50 s (a runner pod stalled mid-crawl when the operator pod was deleted). Locally administered,
  // from the bridge address: 10.213.0.1 → 02:fc:0a:d5:00:01.
  const mac = ["02", "fc", ...net.address.split(".").map((o) => Number(o).toString(16).padStart(2, "0"))].join(":");
  await exec(ip, ["link", "set", "dev", net.bridge, "address", mac]);
  await exec(ip, ["addr", "add", `${net.address}/24`, "dev", net.bridge]);
  // /32s: local addresses only, no second route for the /24 (the host's source address to pods stays .1).
  for (const host of net.siteHosts) await exec(ip, ["addr", "add", `${host}/32`, "dev", net.bridge]);
  await exec(ip, ["link", "set", net.bridge, "up"]);
}

/** Deletes the bridge (with its addresses) and any pod veth still attached to it. */
export async function deleteBridge(net: NodeNetwork): Promise<void> {
  const ip = hostTool("ip");
  if (!(await bridgeExists(net))) return;
  const ports = JSON.parse((await execQuiet(ip, ["-j", "link", "show", "master", net.bridge])).stdout || "[]") as {
    ifname: string;
  }[];
  for (const port of ports) await execQuiet(ip, ["link", "delete", port.ifname]);
  await exec(ip, ["link", "delete", net.bridge]);
}
