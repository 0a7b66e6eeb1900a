// The SSRF guard: refuses connections to loopback, private, link-local and
// other non-public addresses unless the setting allows them. The check runs on
// the addresses the socket is actually about to connect to (inside DNS lookup
// and again on the connected socket), so DNS rebinding cannot slip past a
// pre-flight check. Shared by the crawler and the operator's webhook delivery.
import dns from "node:dns";
import net from "node:net";
import ipaddr from "ipaddr.js";
import { Agent, buildConnector } from "undici";

/** `true`: every address; `false`/absent: public only; a list: public plus these CIDRs. */
export type PrivateNetworkSetting = boolean | readonly string[] | undefined;

/** Refused unless allowed: everything that is not a public unicast address. */
const REFUSED_V4 = new Set([
  "unspecified",
  "broadcast",
  "multicast",
  "linkLocal",
  "loopback",
  "carrierGradeNat",
  "private",
  "reserved",
]);
const REFUSED_V6 = new Set([
  "unspecified",
  "linkLocal",
  "multicast",
  "loopback",
  "uniqueLocal",
  "deprecatedSiteLocal",
  "discard",
  "teredo",
  "reserved",
]);

export class AddressBlockedError extends Error {
  readonly code = "EADDRBLOCKED";
  readonly address: string;
  readonly hostname: string;
  url?: string;
  constructor(hostname: string, address: string) {
    super(
      `Address ${address}${hostname && hostname !== address ? ` (host ${hostname})` : ""} is not a public address and allowPrivateNetworks does not allow it`,
    );
    this.name = "AddressBlockedError";
    this.hostname = hostname;
    this.address = address;
  }
}

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses a CIDR list; throws an Error naming the bad entry. */
export function parseCidrs(cidrs: readonly string[]): Cidr[] {
  return cidrs.map((c) => {
    try {
      return c.includes("/")
        ? ipaddr.parseCIDR(c)
        : ([ipaddr.parse(c), ipaddr.parse(c).kind() === "ipv4" ? 32 : 128] as Cidr);
    } catch {
      throw new Error(`Invalid CIDR '${c}' in allowPrivateNetworks`);
    }
  });
}

/** The IPv4 address embedded in an IPv4-mapped / NAT64 / 6to4 IPv6 address, if any. */
function embeddedV4(addr: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const range = addr.range();
  const b = addr.toByteArray();
  if (range === "ipv4Mapped" || range === "rfc6145" || range === "rfc6052") {
    return new ipaddr.IPv4(b.slice(12, 16));
  }
  if (range === "6to4") return new ipaddr.IPv4(b.slice(2, 6));
  return undefined;
}

function isPublic(addr: ipaddr.IPv4 | ipaddr.IPv6): boolean {
  if (addr.kind() === "ipv4") return !REFUSED_V4.has(addr.range());
  const v4 = embeddedV4(addr as ipaddr.IPv6);
  if (v4) return isPublic(v4);
  return !REFUSED_V6.has(addr.range());
}

function matchesAny(addr: ipaddr.IPv4 | ipaddr.IPv6, cidrs: Cidr[]): boolean {
  const forms: (ipaddr.IPv4 | ipaddr.IPv6)[] = [addr];
  if (addr.kind() === "ipv6") {
    const v4 = embeddedV4(addr as ipaddr.IPv6);
    if (v4) forms.push(v4);
  }
  return forms.some((f) => cidrs.some(([net, bits]) => f.kind() === net.kind() && f.match(net, bits)));
}

function compile(setting: PrivateNetworkSetting): (ip: string) => boolean {
  if (setting === true) return () => true;
  const cidrs = Array.isArray(setting) ? parseCidrs(setting) : [];
  return (ip: string) => {
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      addr = ipaddr.parse(ip.replace(/^\[|\]$/g, "").replace(/%.*$/, ""));
    } catch {
      return false;
    }
    return isPublic(addr) || matchesAny(addr, cidrs);
  };
}

/** Whether an IP address literal may be connected to under `setting`. */
export function isAddressAllowed(ip: string, setting: PrivateNetworkSetting): boolean {
  return compile(setting)(ip);
}

/** A reusable checker (parses the CIDR list once). */
export function addressChecker(setting: PrivateNetworkSetting): (ip: string) => boolean {
  return compile(setting);
}

type LookupAll = (err: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void;
type LookupOne = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

/** A `net.connect` lookup that resolves every address and fails if any resolved address is refused. */
export function guardedLookup(setting: PrivateNetworkSetting) {
  const allowed = compile(setting);
  return (hostname: string, options: dns.LookupOptions, callback: LookupAll | LookupOne) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return (callback as LookupAll)(err, []);
      // Refuse the host when any of its addresses is refused: a name that mixes
      // public and private answers is a rebinding attempt, not a real site.
      const bad = addresses.find((a) => !allowed(a.address));
      if (bad) return (callback as LookupAll)(new AddressBlockedError(hostname, bad.address) as never, []);
      if (options.all) return (callback as LookupAll)(null, addresses);
      const first = addresses[0];
      if (!first)
        return (callback as LookupAll)(
          Object.assign(new Error(`No address for ${hostname}`), { code: "ENOTFOUND" }),
          [],
        );
      (callback as LookupOne)(null, first.address, first.family);
    });
  };
}

export interface GuardedAgentOptions extends Agent.Options {
  /** Connect timeout in ms (undici's default is 10 s). */
  connectTimeoutMs?: number;
}

/**
 * An undici Agent that refuses addresses the setting does not allow: IP
 * literals before any socket is opened, names inside DNS lookup, and the
 * connected socket's remote address once more (belt and braces).
 */
export function createGuardedAgent(setting: PrivateNetworkSetting, options: GuardedAgentOptions = {}): Agent {
  const allowed = compile(setting);
  const { connectTimeoutMs, ...agentOptions } = options;
  const base = buildConnector({ timeout: connectTimeoutMs ?? 10_000, lookup: guardedLookup(setting) } as never);
  const connect: buildConnector.connector = (opts, callback) => {
    const host = opts.hostname.replace(/^\[|\]$/g, "");
    if (net.isIP(host) && !allowed(host)) {
      callback(new AddressBlockedError(host, host), null);
      return;
    }
    base(opts, (err, socket) => {
      if (err || !socket) return callback(err, null);
      const remote = socket.remoteAddress;
      if (!remote || !allowed(remote)) {
        socket.destroy();
        return callback(new AddressBlockedError(host, remote ?? "unknown"), null);
      }
      callback(null, socket);
    });
  };
  return new Agent({ ...agentOptions, connect });
}
