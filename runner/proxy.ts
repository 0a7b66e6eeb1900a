// Forward proxies: `settings.proxy` (one or more HTTP(S) proxy URLs, rotated
// per request or pinned per host, a noProxy list) or, for the local CLI, the
// HTTP_PROXY / HTTPS_PROXY / NO_PROXY environment. Each proxy is an undici
// ProxyAgent (absolute-form requests for http:// targets, CONNECT tunnels for
// https://); hosts on the noProxy list go through the crawler's own guarded
// agent. The proxy itself is the operator's choice and may sit on a private
// address; the address guard still applies to the *target*: its name is
// resolved and every address checked before the request is handed to the proxy.
// settings.proxy.credentialsSecretRef: the Secret's values arrive as
// FEEDCRAWL_PROXY_* env (set by the operator from the Secret) and are sent as
// Proxy-Authorization to every proxy; they are never logged.
import net from "node:net";
import ipaddr from "ipaddr.js";
import { PROXY_CREDENTIALS_ENV, PROXY_PASSWORD_ENV, PROXY_USERNAME_ENV } from "../crds/schema/names.ts";
import type { ProxySettings } from "../crds/schema/spider.ts";
import { Dispatcher, ProxyAgent } from "../lib/undici.ts";
import {
  AddressBlockedError,
  addressChecker,
  guardedLookup,
  type PrivateNetworkSetting,
  type ResolveAll,
} from "../net/address-guard.ts";
import { shardForHost } from "./shard.ts";

/** Which proxies serve which scheme. */
export interface ProxyPlan {
  /** Proxies for http:// targets (empty: direct). */
  http: string[];
  /** Proxies for https:// targets (empty: direct). */
  https: string[];
  /** perRequest: round robin; perHost: one proxy per target host (a stable exit address for its cookies). */
  rotation: "perRequest" | "perHost";
  /** Hosts that never go through a proxy (NO_PROXY syntax). */
  noProxy: string[];
  /** Sent as Proxy-Authorization (Basic) to every proxy whose URL carries no user:password@. */
  credentials?: ProxyCredentials;
}

export interface ProxyCredentials {
  username: string;
  password: string;
}

/**
 * `settings.proxy` as a plan: every URL serves both schemes. With
 * credentialsSecretRef, the credentials are read from the env variables the
 * operator fills from that Secret (FEEDCRAWL_PROXY_USERNAME and _PASSWORD, or
 * FEEDCRAWL_PROXY_CREDENTIALS=user:password); for `feedcrawl crawl`, from the
 * same variables set by hand. Missing ones are an error naming them, never the values.
 */
export function proxyPlanFromSettings(
  p: ProxySettings,
  env: Readonly<Record<string, string | undefined>> = process.env,
): ProxyPlan {
  const plan: ProxyPlan = {
    http: [...p.urls],
    https: [...p.urls],
    rotation: p.rotation ?? "perRequest",
    noProxy: p.noProxy ?? [],
  };
  if (p.credentialsSecretRef) plan.credentials = proxyCredentialsFromEnv(p.credentialsSecretRef.name, env);
  return plan;
}

function proxyCredentialsFromEnv(secret: string, env: Readonly<Record<string, string | undefined>>): ProxyCredentials {
  const joined = env[PROXY_CREDENTIALS_ENV];
  if (joined) {
    const at = joined.indexOf(":");
    if (at < 0)
      throw new Error(
        `settings.proxy.credentialsSecretRef: ${PROXY_CREDENTIALS_ENV} (from Secret ${secret}) is not user:password`,
      );
    return { username: joined.slice(0, at), password: joined.slice(at + 1) };
  }
  const username = env[PROXY_USERNAME_ENV];
  const password = env[PROXY_PASSWORD_ENV];
  if (username === undefined || password === undefined)
    throw new Error(
      `settings.proxy.credentialsSecretRef: the proxy credentials of Secret ${secret} are not in the environment ` +
        `(${PROXY_USERNAME_ENV} and ${PROXY_PASSWORD_ENV}, or ${PROXY_CREDENTIALS_ENV}=user:password); ` +
        "the operator sets them in runner pods, feedcrawl crawl needs them exported",
    );
  return { username, password };
}

/** A Proxy-Authorization value for a proxy URL without credentials of its own (undefined: none, or the URL's own). */
function proxyToken(uri: string, credentials: ProxyCredentials | undefined): string | undefined {
  if (!credentials) return undefined;
  const u = new URL(uri);
  if (u.username || u.password) return undefined;
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}`;
}

/**
 * The proxy environment as curl and Scrapy read it: `http_proxy` for http://
 * targets, `https_proxy` for https:// ones (each also in upper case; the lower
 * case wins unless empty), `no_proxy` for exceptions. Undefined when no proxy is set.
 */
export function proxyPlanFromEnv(env: Readonly<Record<string, string | undefined>>): ProxyPlan | undefined {
  const get = (name: string) => env[name]?.trim() || env[name.toUpperCase()]?.trim() || "";
  const http = get("http_proxy");
  const https = get("https_proxy");
  if (!http && !https) return undefined;
  const noProxy = get("no_proxy")
    .split(/[\s,]+/)
    .filter(Boolean);
  return { http: http ? [http] : [], https: https ? [https] : [], rotation: "perRequest", noProxy };
}

/**
 * NO_PROXY matching: `*` (everything), a host name (itself and its subdomains;
 * `.example.com` and `*.example.com` the same), an IP address or CIDR, each
 * with an optional `:port`.
 */
export class NoProxyList {
  readonly #all: boolean;
  readonly #names: { name: string; port?: number }[] = [];
  readonly #cidrs: { cidr: [ipaddr.IPv4 | ipaddr.IPv6, number]; port?: number }[] = [];

  constructor(entries: readonly string[]) {
    this.#all = entries.some((e) => e.trim() === "*");
    for (const raw of entries) {
      const e = raw.trim().toLowerCase();
      if (!e || e === "*") continue;
      const m = /^(\[[^\]]+\]|[^:]+|[0-9a-f:]+(?:\/\d+)?)(?::(\d+))?$/.exec(e);
      const hostPart = (m?.[1] ?? e).replace(/^\[|\]$/g, "");
      const port = m?.[2] !== undefined ? Number(m[2]) : undefined;
      const extra = port !== undefined ? { port } : {};
      try {
        const cidr = hostPart.includes("/")
          ? ipaddr.parseCIDR(hostPart)
          : net.isIP(hostPart)
            ? ([ipaddr.parse(hostPart), net.isIPv4(hostPart) ? 32 : 128] as [ipaddr.IPv4 | ipaddr.IPv6, number])
            : undefined;
        if (cidr) {
          this.#cidrs.push({ cidr, ...extra });
          continue;
        }
      } catch {
        // not an address: a name
      }
      this.#names.push({ name: hostPart.replace(/^\*?\./, "").replace(/\.$/, ""), ...extra });
    }
  }

  matches(hostname: string, port: number): boolean {
    if (this.#all) return true;
    const host = hostname
      .toLowerCase()
      .replace(/^\[|\]$/g, "")
      .replace(/\.$/, "");
    const portOk = (p?: number) => p === undefined || p === port;
    if (net.isIP(host)) {
      const addr = ipaddr.parse(host);
      return this.#cidrs.some(
        ({ cidr: [n, bits], port: p }) => portOk(p) && addr.kind() === n.kind() && addr.match(n, bits),
      );
    }
    return this.#names.some(({ name, port: p }) => portOk(p) && (host === name || host.endsWith(`.${name}`)));
  }
}

export interface ProxyDispatcherOptions {
  plan: ProxyPlan;
  /** Where hosts on the noProxy list (and schemes without a proxy) go: the guarded agent. */
  direct: Dispatcher;
  /** The address guard's setting, applied to the target host before it is handed to a proxy. */
  allowPrivateNetworks: PrivateNetworkSetting;
  /** Replaces the system resolver (tests). */
  resolve?: ResolveAll;
  connectTimeoutMs?: number;
  keepAliveTimeout?: number;
}

/** How long a target host's address check is trusted (the proxy resolves the name again anyway). */
const CHECK_TTL_MS = 60_000;
const MAX_CHECKS = 10_000;

/** Routes each request to a proxy (or direct), after the address guard passed its target. */
export class ProxyDispatcher extends Dispatcher {
  readonly #o: ProxyDispatcherOptions;
  readonly #agents = new Map<string, ProxyAgent>();
  readonly #noProxy: NoProxyList;
  readonly #allowed: (ip: string) => boolean;
  readonly #lookup: ReturnType<typeof guardedLookup>;
  readonly #checks = new Map<string, { at: number; result: Promise<void> }>();
  #next = 0;

  constructor(opts: ProxyDispatcherOptions) {
    super();
    this.#o = opts;
    this.#noProxy = new NoProxyList(opts.plan.noProxy);
    this.#allowed = addressChecker(opts.allowPrivateNetworks);
    this.#lookup = guardedLookup(opts.allowPrivateNetworks, opts.resolve);
    for (const uri of new Set([...opts.plan.http, ...opts.plan.https])) {
      const token = proxyToken(uri, opts.plan.credentials);
      this.#agents.set(
        uri,
        new ProxyAgent({
          uri,
          ...(token ? { token } : {}),
          connectTimeout: opts.connectTimeoutMs ?? 10_000,
          keepAliveTimeout: opts.keepAliveTimeout ?? 10_000,
        }),
      );
    }
  }

  /** The proxy URL a request to `url` goes through, or undefined for a direct request. */
  proxyFor(url: URL): string | undefined {
    const list = url.protocol === "https:" ? this.#o.plan.https : this.#o.plan.http;
    if (list.length === 0) return undefined;
    const port = Number(url.port) || (url.protocol === "https:" ? 443 : 80);
    if (this.#noProxy.matches(url.hostname, port)) return undefined;
    const i =
      this.#o.plan.rotation === "perHost" ? shardForHost(url.hostname, list.length) : this.#next++ % list.length;
    return list[i];
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const url = new URL(String(opts.origin));
    const proxy = this.proxyFor(url);
    if (proxy === undefined) return this.#o.direct.dispatch(opts, handler);
    const agent = this.#agents.get(proxy) as ProxyAgent;
    this.#checkTarget(url.hostname).then(
      () => agent.dispatch(opts, handler),
      (err: Error) => handler.onResponseError?.(null as never, err),
    );
    return true;
  }

  /** Resolves when every address of `hostname` passes the guard; rejects with AddressBlockedError (or a DNS error). */
  #checkTarget(hostname: string): Promise<void> {
    if (this.#o.allowPrivateNetworks === true) return Promise.resolve();
    const host = hostname.replace(/^\[|\]$/g, "");
    if (net.isIP(host))
      return this.#allowed(host) ? Promise.resolve() : Promise.reject(new AddressBlockedError(host, host));
    const cached = this.#checks.get(host);
    if (cached && Date.now() - cached.at < CHECK_TTL_MS) return cached.result;
    const result = new Promise<void>((resolve, reject) =>
      this.#lookup(host, { all: true }, ((err: NodeJS.ErrnoException | null) =>
        err ? reject(err) : resolve()) as never),
    );
    // A failed lookup is not cached: DNS errors are retried.
    result.catch(() => this.#checks.delete(host));
    this.#checks.delete(host);
    this.#checks.set(host, { at: Date.now(), result });
    if (this.#checks.size > MAX_CHECKS) this.#checks.delete(this.#checks.keys().next().value as string);
    return result;
  }

  override async close(): Promise<void> {
    await Promise.all([...this.#agents.values()].map((a) => a.close()));
  }

  override async destroy(): Promise<void> {
    await Promise.all([...this.#agents.values()].map((a) => a.destroy()));
  }
}
