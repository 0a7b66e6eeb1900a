// A small JSON client for the Kubernetes REST API. kubeconfig.ts supplies the
// kube config and authentication (tokens, client certs, exec plugins,
// in-cluster); requests go through one long-lived undici Agent (a
// ProxyAgent when the cluster has a proxy-url), rebuilt when the TLS
// credentials change (an exec plugin or a file rotating the client
// certificate). A failed call throws errors.ts's KubeApiError.
//
// Why not client-node's typed APIs: their ObjectSerializer turns timestamps
// into Date objects on reads but not in watch events (one informer cache would
// hold both shapes), drops fields it has no model for, and 2.0 builds a new
// connection pool per request. Plain JSON keeps objects exactly as the API
// server sends them, with resourceVersion preconditions and content types
// under our control.

import { STATUS_CODES } from "node:http";
import type { RequestOptions } from "node:https";
import { createInterface } from "node:readline";
import type { Dispatcher } from "undici";
import { Agent, ProxyAgent, request } from "../lib/undici.ts";
import { isNotFound, KubeApiError } from "./errors.ts";
import type { KubeAuth } from "./kubeconfig.ts";
import type { ResourceType } from "./resources.ts";

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: OwnerReference[];
    creationTimestamp?: string;
    deletionTimestamp?: string;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

interface ObjectList<T> {
  items: T[];
  metadata: { resourceVersion?: string; continue?: string };
}

interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  signal?: AbortSignal;
}

interface WatchOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion: string;
  timeoutSeconds?: number;
  signal?: AbortSignal;
  /** Aborts the stream when nothing (not even a bookmark) arrives for this long. */
  idleTimeoutMs?: number;
}

type PatchType = "merge" | "json" | "apply";
const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  apply: "application/apply-patch+yaml",
};

interface RequestInit {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /** Ends the request early; the 30 s request timeout applies either way. */
  signal?: AbortSignal;
}

/** The TLS options of a connection to the apiserver, as the kube config gives them for this request. */
const TLS_KEYS = ["ca", "cert", "key", "pfx", "passphrase", "rejectUnauthorized", "servername"] as const;
type TlsOptions = Pick<RequestOptions, (typeof TLS_KEYS)[number]>;

const sameValue = (a: unknown, b: unknown) => a === b || (Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b));
const sameTls = (a: TlsOptions, b: TlsOptions) => TLS_KEYS.every((k) => sameValue(a[k], b[k]));

/**
 * The cluster's proxy-url as an http(s) URL for undici's ProxyAgent; throws,
 * naming the kubeconfig field, for anything else (a socks proxy).
 */
export function kubeconfigProxyUrl(proxyUrl: string, cluster: string): URL {
  const field = `proxy-url of cluster "${cluster}" in the kubeconfig`;
  let url: URL;
  try {
    url = new URL(proxyUrl);
  } catch {
    throw new Error(`The ${field} is not a valid URL (e.g. http://proxy.internal:3128)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(
      `The ${field} is a ${url.protocol.replace(/:$/, "")} proxy: only http:// and https:// proxies are supported`,
    );
  }
  return url;
}

export class KubeClient {
  readonly kc: KubeAuth;
  readonly fieldManager: string;
  #dispatcher: Dispatcher | undefined;
  /** The TLS options #dispatcher was built with: other credentials make a new one. */
  #tls: TlsOptions | undefined;
  /** Dispatchers replaced after a credential change, closing once their requests (watches too) end. */
  readonly #retired = new Set<Dispatcher>();

  constructor(kc: KubeAuth, options: { fieldManager?: string } = {}) {
    this.kc = kc;
    this.fieldManager = options.fieldManager ?? "feedcrawl-operator";
  }

  get server(): string {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error("The kube config has no current cluster");
    return cluster.server.replace(/\/+$/, "");
  }

  /** `/apis/group/version/namespaces/ns/plural/name/sub` for a resource type. */
  path(rt: ResourceType, namespace?: string, name?: string, subresource?: string): string {
    const base = rt.group === "" ? `/api/${rt.version}` : `/apis/${rt.group}/${rt.version}`;
    const ns = rt.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
    const obj = name ? `/${encodeURIComponent(name)}` : "";
    const sub = name && subresource ? `/${subresource}` : "";
    return `${base}${ns}/${rt.plural}${obj}${sub}`;
  }

  async #prepare(): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher }> {
    const opts: RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) headers[k] = String(v);
    if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString("base64")}`;
    const tls: TlsOptions = {};
    for (const key of TLS_KEYS) if (opts[key] !== undefined) (tls as Record<string, unknown>)[key] = opts[key];
    // The kube config re-reads cert files and re-runs an exec plugin whose credential expired, so a
    // rotated client certificate shows up here: connect with it from now on.
    const dispatcher = this.#tls && sameTls(this.#tls, tls) ? this.#dispatcher : undefined;
    return { headers, dispatcher: dispatcher ?? this.#replaceDispatcher(tls) };
  }

  /** A dispatcher for `tls`; the one it replaces closes once its requests (watches included) have ended. */
  #replaceDispatcher(tls: TlsOptions): Dispatcher {
    const cluster = this.kc.getCurrentCluster();
    const connect = { ...tls, keepAlive: true };
    const next = cluster?.proxyUrl
      ? new ProxyAgent({ uri: kubeconfigProxyUrl(cluster.proxyUrl, cluster.name).href, requestTls: connect })
      : new Agent({ connect });
    const old = this.#dispatcher;
    this.#dispatcher = next;
    this.#tls = tls;
    if (old) {
      this.#retired.add(old);
      // close() lets in-flight requests finish; it never fails the caller.
      old.close().then(
        () => this.#retired.delete(old),
        () => this.#retired.delete(old),
      );
    }
    return next;
  }

  #url(path: string, query?: RequestInit["query"]): URL {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url;
  }

  async request<T>(method: string, path: string, init: RequestInit = {}): Promise<T> {
    const { headers, dispatcher } = await this.#prepare();
    headers.Accept = "application/json";
    let body: string | undefined;
    if (init.body !== undefined) {
      headers["Content-Type"] = init.contentType ?? "application/json";
      body = JSON.stringify(init.body);
    }
    // A caller's signal (a reconcile's) adds to the timeout: a hung apiserver still fails the request.
    const timeout = AbortSignal.timeout(30_000);
    const response = await request(this.#url(path, init.query), {
      method: method as Dispatcher.HttpMethod,
      headers,
      body,
      dispatcher,
      signal: init.signal ? AbortSignal.any([init.signal, timeout]) : timeout,
    });
    const text = await response.body.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (response.statusCode >= 300) {
      const status = (parsed ?? {}) as { reason?: string; message?: string; details?: unknown };
      throw new KubeApiError(
        response.statusCode,
        status.reason ?? STATUS_CODES[response.statusCode] ?? "",
        `${method} ${path}: ${response.statusCode} ${status.message ?? text.slice(0, 500)}`,
        status.details,
      );
    }
    return parsed as T;
  }

  get<T extends KubeObject>(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<T> {
    return this.request<T>("GET", this.path(rt, namespace, name), { signal: options.signal });
  }

  async getOrUndefined<T extends KubeObject>(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<T | undefined> {
    try {
      return await this.get<T>(rt, namespace, name, options);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  list<T extends KubeObject>(rt: ResourceType, options: ListOptions = {}): Promise<ObjectList<T>> {
    const { namespace, signal, ...query } = options;
    return this.request<ObjectList<T>>("GET", this.path(rt, namespace), { query: { ...query }, signal });
  }

  /** Every page (limit/continue) in turn: a caller that handles each page holds one page at a time. */
  async *listPages<T extends KubeObject>(rt: ResourceType, options: ListOptions = {}): AsyncGenerator<ObjectList<T>> {
    let cont: string | undefined;
    do {
      const page = await this.list<T>(rt, { ...options, limit: options.limit ?? 500, continue: cont });
      yield page;
      cont = page.metadata.continue || undefined;
    } while (cont);
  }

  /** Lists every page (limit/continue) into one array. */
  async listAll<T extends KubeObject>(rt: ResourceType, options: ListOptions = {}): Promise<ObjectList<T>> {
    const items: T[] = [];
    let resourceVersion: string | undefined;
    for await (const page of this.listPages<T>(rt, options)) {
      items.push(...page.items);
      resourceVersion = page.metadata.resourceVersion;
    }
    return { items, metadata: { resourceVersion } };
  }

  create<T extends KubeObject>(
    rt: ResourceType,
    obj: T,
    options: { fieldValidation?: string; signal?: AbortSignal } = {},
  ): Promise<T> {
    return this.request<T>("POST", this.path(rt, obj.metadata.namespace), {
      signal: options.signal,
      body: obj,
      query: { fieldManager: this.fieldManager, fieldValidation: options.fieldValidation },
    });
  }

  /** PUT: the object's metadata.resourceVersion is the precondition (409 Conflict when stale). */
  update<T extends KubeObject>(
    rt: ResourceType,
    obj: T,
    subresource?: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<T> {
    return this.request<T>("PUT", this.path(rt, obj.metadata.namespace, obj.metadata.name, subresource), {
      signal: options.signal,
      body: obj,
      query: { fieldManager: this.fieldManager },
    });
  }

  updateStatus<T extends KubeObject>(rt: ResourceType, obj: T, options: { signal?: AbortSignal } = {}): Promise<T> {
    return this.update(rt, obj, "status", options);
  }

  patch<T extends KubeObject>(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    options: { type?: PatchType; subresource?: string; force?: boolean; signal?: AbortSignal } = {},
  ): Promise<T> {
    const type = options.type ?? "merge";
    return this.request<T>("PATCH", this.path(rt, namespace, name, options.subresource), {
      signal: options.signal,
      body: patch,
      contentType: PATCH_CONTENT_TYPE[type],
      query: { fieldManager: this.fieldManager, force: type === "apply" ? (options.force ?? true) : undefined },
    });
  }

  async delete(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    options: {
      uid?: string;
      resourceVersion?: string;
      propagationPolicy?: "Foreground" | "Background" | "Orphan";
      signal?: AbortSignal;
    } = {},
  ): Promise<void> {
    const preconditions =
      options.uid || options.resourceVersion
        ? { uid: options.uid, resourceVersion: options.resourceVersion }
        : undefined;
    await this.request("DELETE", this.path(rt, namespace, name), {
      signal: options.signal,
      body: { apiVersion: "v1", kind: "DeleteOptions", preconditions, propagationPolicy: options.propagationPolicy },
    });
  }

  /**
   * A watch stream from `resourceVersion`. Ends when the server closes it, the
   * signal aborts, or nothing arrives for `idleTimeoutMs` (a stalled stream).
   * Throws KubeApiError(410) when the resourceVersion is too old.
   */
  async *watch<T>(rt: ResourceType, options: WatchOptions): AsyncGenerator<WatchEvent<T>> {
    const { headers, dispatcher } = await this.#prepare();
    const idle = new AbortController();
    const signals = [idle.signal, ...(options.signal ? [options.signal] : [])];
    const url = this.#url(this.path(rt, options.namespace), {
      watch: true,
      allowWatchBookmarks: true,
      resourceVersion: options.resourceVersion,
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
      timeoutSeconds: options.timeoutSeconds,
    });
    const idleMs = options.idleTimeoutMs ?? 0;
    let timer: NodeJS.Timeout | undefined;
    const kick = () => {
      if (!idleMs) return;
      clearTimeout(timer);
      timer = setTimeout(() => idle.abort(new Error(`No watch event for ${idleMs} ms`)), idleMs);
      timer.unref();
    };
    kick();
    try {
      const response = await request(url, { headers, dispatcher, signal: AbortSignal.any(signals) });
      if (response.statusCode >= 300) {
        const text = await response.body.text();
        let status: { reason?: string; message?: string } = {};
        try {
          status = JSON.parse(text);
        } catch {}
        throw new KubeApiError(
          response.statusCode,
          status.reason ?? STATUS_CODES[response.statusCode] ?? "",
          status.message ?? text,
        );
      }
      const lines = createInterface({ input: response.body, crlfDelay: Infinity });
      for await (const line of lines) {
        kick();
        if (!line.trim()) continue;
        const event = JSON.parse(line) as WatchEvent<T>;
        if (event.type === "ERROR") {
          const status = event.object as { code?: number; reason?: string; message?: string };
          throw new KubeApiError(status.code ?? 500, status.reason ?? "WatchError", status.message ?? "watch error");
        }
        yield event;
      }
    } catch (err) {
      // An idle abort or the caller's abort ends the stream quietly; the
      // informer decides what an early end means.
      if (idle.signal.aborted || options.signal?.aborted) return;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    // A retired dispatcher may still hold a watch nobody stops: it carries old credentials, end it now.
    await Promise.all([...this.#retired].map((d) => d.destroy().catch(() => undefined)));
    await this.#dispatcher?.close();
  }
}
