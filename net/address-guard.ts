// The SSRF guard: refuses connections to loopback, private, link-local and
// other non-public addresses unless the setting allows them. The check runs on
// the addresses the socket is actually about to connect to (inside DNS lookup
// and again on the connected socket), so DNS rebinding cannot slip past a
// pre-flight check. Shared by the crawler and the operator's webhook delivery.
import dns from "node:dns";
import net from "node:net";
import ipaddr from "ipaddr.js";
import { Agent, buildConnector } from "../lib/undici.ts";

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
    const notes = [ipv4Of(address), hostname && hostname !== address ? `host ${hostname}` : ""].filter(Boolean);
    super(
      `Address ${address}${notes.length ? ` (${notes.join(", ")})` : ""} is not a public address and allowPrivateNetworks does not allow it`,
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

/**
 * The IPv4 address an IPv6 address stands for: IPv4-mapped `::ffff:0:0/96`,
 * IPv4-translated `::ffff:0:0:0/96`, IPv4-compatible `::/96`, NAT64
 * `64:ff9b::/96` and 6to4 `2002::/16` reach (or are translated to) that IPv4
 * address. "unknown" for the local-use NAT64 `64:ff9b:1::/48` outside its
 * `/96` form: RFC 6052 lets the operator put the IPv4 at several offsets.
 * Teredo (`2001::/32`, client IPv4 XOR 0xffffffff in the last 32 bits) is not
 * read: it is refused whatever it embeds (REFUSED_V6), being a tunnel, not a server.
 */
function embeddedV4(addr: ipaddr.IPv6): ipaddr.IPv4 | "unknown" | undefined {
  const b = addr.toByteArray();
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  const last32 = () => new ipaddr.IPv4(b.slice(12, 16));
  switch (addr.range()) {
    case "ipv4Mapped":
    case "rfc6145":
      return last32();
    case "rfc6052":
      return b[5] === 1 && !zero(6, 12) ? "unknown" : last32();
    case "6to4":
      return new ipaddr.IPv4(b.slice(2, 6));
    default:
      // IPv4-compatible ::a.b.c.d; `::` and `::1` are IPv6's own unspecified and loopback.
      return zero(0, 12) && !(zero(12, 15) && (b[15] ?? 0) <= 1) ? last32() : undefined;
  }
}

/** "IPv4 a.b.c.d" for an IPv6 address that embeds one, so messages name the real target. */
function ipv4Of(ip: string): string {
  try {
    const addr = ipaddr.parse(ip.replace(/^\[|\]$/g, "").replace(/%.*$/, ""));
    const v4 = addr.kind() === "ipv6" ? embeddedV4(addr as ipaddr.IPv6) : undefined;
    return v4 instanceof ipaddr.IPv4 ? `IPv4 ${v4}` : "";
  } catch {
    return "";
  }
}

const publicV4 = (a: ipaddr.IPv4) => !REFUSED_V4.has(a.range());

function inList(addr: ipaddr.IPv4 | ipaddr.IPv6, cidrs: Cidr[]): boolean {
  return cidrs.some(([net, bits]) => addr.kind() === net.kind() && addr.match(net, bits));
}

/**
 * IPv4 by its range; IPv6 that embeds IPv4 by the IPv4 it stands for (so
 * `::a9fe:a9fe` is the metadata address, whichever way it is written); a
 * listed IPv6 CIDR allows an IPv6 address whatever it embeds.
 */
function allowedAddress(addr: ipaddr.IPv4 | ipaddr.IPv6, cidrs: Cidr[]): boolean {
  if (inList(addr, cidrs)) return true;
  if (addr.kind() === "ipv4") return publicV4(addr as ipaddr.IPv4);
  const v6 = addr as ipaddr.IPv6;
  if (REFUSED_V6.has(v6.range())) return false;
  const v4 = embeddedV4(v6);
  if (v4 === "unknown") return false;
  return v4 === undefined || publicV4(v4) || inList(v4, cidrs);
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
    return allowedAddress(addr, cidrs);
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

/** Every address of a name, as `dns.lookup(name, { all: true })` gives them. */
export type ResolveAll = (
  hostname: string,
  options: dns.LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void,
) => void;

const systemResolve: ResolveAll = (hostname, options, callback) => dns.lookup(hostname, options, callback);

/**
 * A `net.connect` lookup that resolves every address and fails if any resolved
 * address is refused. `resolve` replaces the system resolver (tests).
 */
export function guardedLookup(setting: PrivateNetworkSetting, resolve: ResolveAll = systemResolve) {
  const allowed = compile(setting);
  return (hostname: string, options: dns.LookupOptions, callback: LookupAll | LookupOne) => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
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
  /** Replaces the system resolver (tests: a name that resolves to a chosen address). */
  resolve?: ResolveAll;
}

/**
 * An undici Agent that refuses addresses the setting does not allow: IP
 * literals before any socket is opened, names inside DNS lookup, and the
 * connected socket's remote address once more (belt and braces).
 */
export function createGuardedAgent(setting: PrivateNetworkSetting, options: GuardedAgentOptions = {}): Agent {
  const allowed = compile(setting);
  const { connectTimeoutMs, resolve, ...agentOptions } = options;
  const base = buildConnector({
    timeout: connectTimeoutMs ?? 10_000,
    lookup: guardedLookup(setting, resolve),
  } as never);
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
