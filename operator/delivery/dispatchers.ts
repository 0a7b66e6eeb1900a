// Which undici dispatcher a webhook POST connects through. Every POST goes
// through the address guard (net/address-guard.ts: refuses loopback,
// private, link-local and metadata addresses on the address actually
// connected to, so DNS rebinding cannot get around it). Which private
// networks a webhook may reach is the operator's decision, not the job
// author's: the operator lists CIDRs and in-cluster host names
// (`--webhook-private-networks`), and a CrawlJob's
// ingest.webhook.allowPrivateNetworks can only narrow that list — false:
// public addresses only; true: public plus what the operator lists, never
// more. One long-lived dispatcher of each kind keeps keep-alive connections.
import type { Dispatcher } from "undici";
import { createGuardedAgent, parseCidrs } from "../../net/address-guard.ts";

/** The dispatcher for one webhook URL, given the CrawlJob's allowPrivateNetworks. */
export type DispatcherFor = (url: string, allowPrivateNetworks: boolean) => Dispatcher;

/** Where a listed host name may connect: the private ranges a cluster's Services live in. */
const SERVICE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"];

/** How the operator's setting is named in messages (the flag, and the chart value that sets it). */
export const PRIVATE_NETWORKS_SETTING = "--webhook-private-networks (chart value webhook.privateNetworks)";

/** The operator's list split into CIDRs and host names; throws on a bad entry. */
export interface PrivateNetworks {
  cidrs: string[];
  hosts: string[];
}

const HOST = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * Parses the operator's list: IPv4/IPv6 addresses and CIDRs (`10.0.0.0/8`,
 * `fd00::/8`, `127.0.0.1`), and exact host names of in-cluster Services
 * (`ingest.backend.svc.cluster.local`), which may then reach the private
 * ranges a Service address lives in (RFC 1918, CGNAT, ULA) but not loopback
 * or link-local (the metadata address) unless a CIDR lists them.
 */
export function parsePrivateNetworks(entries: readonly string[]): PrivateNetworks {
  const out: PrivateNetworks = { cidrs: [], hosts: [] };
  for (const raw of entries) {
    const entry = raw.trim().toLowerCase();
    if (entry === "") continue;
    if (/^[0-9.]+(\/\d+)?$/.test(entry) || entry.includes(":")) {
      parseCidrs([entry]);
      out.cidrs.push(entry);
    } else if (HOST.test(entry)) {
      out.hosts.push(entry);
    } else {
      throw new Error(`Invalid entry ${JSON.stringify(raw)} in the webhook private networks: a CIDR or a host name`);
    }
  }
  return out;
}

/** The environment variable the list is read from when the operator passes none (comma-separated). */
export const PRIVATE_NETWORKS_ENV = "FEEDCRAWL_WEBHOOK_PRIVATE_NETWORKS";

export function privateNetworksFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env[PRIVATE_NETWORKS_ENV] ?? "").split(",").filter((s) => s.trim() !== "");
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).hostname.toLowerCase().replace(/\.$/, "");
  } catch {
    return undefined;
  }
}

export function createDispatchers(networks: PrivateNetworks): { dispatcherFor: DispatcherFor; close(): Promise<void> } {
  const agents = new Map<string, Dispatcher>();
  const agent = (key: string, setting: readonly string[] | false) => {
    let made = agents.get(key);
    if (!made) {
      made = createGuardedAgent(setting, { connections: 16 });
      agents.set(key, made);
    }
    return made;
  };
  return {
    dispatcherFor(url, allowPrivateNetworks) {
      if (!allowPrivateNetworks) return agent("public", false);
      const host = hostOf(url);
      if (host !== undefined && networks.hosts.includes(host)) {
        return agent("service", [...SERVICE_RANGES, ...networks.cidrs]);
      }
      return agent("listed", networks.cidrs.length > 0 ? networks.cidrs : false);
    },
    async close() {
      await Promise.all([...agents.values()].map((d) => d.close()));
    },
  };
}
