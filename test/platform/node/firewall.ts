// The iptables rules of kube-proxy, the kubelet and the CNI portmap plugin
// live in the host's tables. `up` refuses to start when such chains already
// exist (another kube-proxy or kubelet owns them), so at `down` every KUBE-*
// and CNI-* chain is the node's: `kube-proxy --cleanup` removes its own, this
// removes the rest (the kubelet's KUBE-FIREWALL, KUBE-KUBELET-CANARY,
// KUBE-IPTABLES-HINT, v4 and v6), and drops the nftables chains and tables
// that iptables-nft created for them when they did not exist before.
import { hostTool } from "../binaries.ts";
import { execQuiet } from "./exec.ts";

const ours = /^(KUBE|CNI)-/;
const families = [
  { save: "iptables-save", cli: "iptables" },
  { save: "ip6tables-save", cli: "ip6tables" },
] as const;

export interface NftObjects {
  /** "family name", e.g. "ip filter". */
  tables: string[];
  /** "family table chain", e.g. "ip filter FORWARD". */
  chains: string[];
}

type NftItem = {
  table?: { family: string; name: string };
  chain?: { family: string; table: string; name: string };
  rule?: { family: string; table: string; chain: string };
};

async function nftRuleset(): Promise<NftItem[]> {
  const result = await execQuiet(hostTool("nft"), ["-j", "list", "ruleset"]);
  if (result.code !== 0) throw new Error(`nft list ruleset failed: ${result.stderr.trim()}`);
  return (JSON.parse(result.stdout || "{}") as { nftables?: NftItem[] }).nftables ?? [];
}

/** The nftables tables and chains that exist now (iptables-nft creates them on first use). */
export async function nftObjects(): Promise<NftObjects> {
  const items = await nftRuleset();
  return {
    tables: items.flatMap((i) => (i.table ? [`${i.table.family} ${i.table.name}`] : [])),
    chains: items.flatMap((i) => (i.chain ? [`${i.chain.family} ${i.chain.table} ${i.chain.name}`] : [])),
  };
}

/** The node's chains that exist now, as "iptables -t nat KUBE-SERVICES". */
export async function nodeChains(): Promise<string[]> {
  const found: string[] = [];
  for (const family of families) {
    const { stdout } = await execQuiet(hostTool(family.save), []);
    let table = "";
    for (const line of stdout.split("\n")) {
      if (line.startsWith("*")) table = line.slice(1);
      const chain = /^:(\S+)/.exec(line)?.[1];
      if (chain && ours.test(chain)) found.push(`${family.cli} -t ${table} ${chain}`);
    }
  }
  return found;
}

export async function checkFirewallFree(): Promise<void> {
  const chains = await nodeChains();
  if (chains.length > 0) {
    throw new Error(
      `Kubernetes or CNI iptables chains already exist on this machine (${chains.slice(0, 5).join("; ")}` +
        `${chains.length > 5 ? "; …" : ""}): another kube-proxy or kubelet runs here, or a test node was ` +
        "not cleaned up. The test node will not share the host's rules with them.",
    );
  }
}

/** Removes every KUBE- and CNI- chain and the jumps to them, v4 and v6. */
export async function removeNodeChains(): Promise<void> {
  for (const family of families) {
    const cli = hostTool(family.cli);
    const { stdout } = await execQuiet(hostTool(family.save), []);
    let table = "";
    const rules: [string, string[]][] = [];
    const chains: [string, string][] = [];
    for (const line of stdout.split("\n")) {
      if (line.startsWith("*")) table = line.slice(1);
      const chain = /^:(\S+)/.exec(line)?.[1];
      if (chain && ours.test(chain)) chains.push([table, chain]);
      const rule = /^-A (\S+) (.*)$/.exec(line);
      // Rules of built-in or other chains that jump to ours; our own chains are flushed below.
      if (rule?.[1] && !ours.test(rule[1]) && / -j (KUBE|CNI)-/.test(` ${rule[2]}`)) {
        rules.push([table, ["-D", rule[1], ...splitRule(rule[2] ?? "")]]);
      }
    }
    for (const [t, args] of rules) await execQuiet(cli, ["-w", "-t", t, ...args]);
    for (const [t, chain] of chains) await execQuiet(cli, ["-w", "-t", t, "-F", chain]);
    for (const [t, chain] of chains) await execQuiet(cli, ["-w", "-t", t, "-X", chain]);
  }
}

/** Splits an iptables-save rule into arguments, keeping "quoted strings" whole. */
function splitRule(rule: string): string[] {
  return (rule.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []).map((arg) =>
    arg.startsWith('"') ? arg.slice(1, -1).replace(/\\"/g, '"') : arg,
  );
}

/**
 * Deletes the empty nftables chains and tables that were not there before
 * `up` (iptables-nft leaves the built-in chains and tables it created);
 * returns what still holds rules and stays.
 */
export async function dropNewNftObjects(before: NftObjects): Promise<string[]> {
  const items = await nftRuleset();
  const withRules = new Set(items.flatMap((i) => (i.rule ? [`${i.rule.family} ${i.rule.table} ${i.rule.chain}`] : [])));
  const nft = hostTool("nft");
  const left: string[] = [];
  const now = await nftObjects();
  for (const chain of now.chains) {
    if (before.chains.includes(chain)) continue;
    if (withRules.has(chain)) left.push(chain);
    else await execQuiet(nft, ["delete", "chain", ...chain.split(" ")]);
  }
  for (const table of now.tables) {
    if (before.tables.includes(table)) continue;
    const chainsLeft = (await nftObjects()).chains.filter((c) => c.startsWith(`${table} `));
    if (chainsLeft.length > 0) left.push(table);
    else await execQuiet(nft, ["delete", "table", ...table.split(" ")]);
  }
  return left;
}
