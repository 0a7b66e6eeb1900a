// A list-then-watch informer with the recovery client-node's lacks:
// - 410 Gone (resourceVersion too old) → relist, diffing against the cache so
//   handlers see the adds/updates/deletes they missed;
// - any other error → reconnect with jittered exponential backoff (0.5 s → 10 s)
//   from the last resourceVersion;
// - server-side watch timeouts (5–10 min, randomised like client-go) → re-watch;
// - stall detection: bookmarks are requested, so a stream silent for
//   `stallMs` is dead → relist;
// - periodic resync: every `resyncMs` each cached object is re-delivered to the
//   update handlers (level-triggered controllers re-check everything);
// - a lean cache: every object loses what no controller reads
//   (metadata.managedFields, kubectl's last-applied annotation) and shares the
//   metadata strings other objects repeat (intern.ts) before it is cached,
//   then the informer's own `transform` applies (issue 13: most of a
//   CrawlJob's bytes were managedFields).
import type { Logger } from "pino";
import type { KubeClient, KubeObject } from "../../kube/client.ts";
import { describeError, isGone } from "../../kube/errors.ts";
import type { ResourceType } from "../../kube/resources.ts";
import { backoffDelayMs } from "../../lib/backoff.ts";
import { sleep } from "../../lib/sleep.ts";
import { informerRelists } from "../metrics.ts";
import { internMetadata } from "./intern.ts";

type InformerEvent = "add" | "update" | "delete";
type Handler<T> = (obj: T, old?: T) => void;

interface InformerOptions<T extends KubeObject> {
  client: KubeClient;
  resource: ResourceType;
  /** One namespace, or every namespace when unset. */
  namespace?: string;
  labelSelector?: string;
  /** Applied to every object (after stripUnread and internMetadata) before it is cached and handed to handlers. */
  transform?: (obj: T) => T;
  logger: Logger;
  resyncMs?: number;
  stallMs?: number;
  maxBackoffMs?: number;
}

const objectKey = (obj: KubeObject) => `${obj.metadata.namespace ?? ""}/${obj.metadata.name}`;

/** kubectl apply's full copy of the object: as large as the spec, and never read by a controller. */
export const LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration";

/**
 * Drops what no controller reads from a freshly received object (it was just
 * parsed and nothing else holds it): metadata.managedFields and the
 * last-applied annotation. Writes never send a cached object's managedFields
 * back (status writes are merge patches or PUTs of the status subresource,
 * which ignore them). The metadata is rebuilt rather than `delete`d from:
 * V8 turns an object it deletes from into a hash table (~500 B instead of
 * ~100 B per metadata; 8.5 MB of a 59 MB heap at 17,000 cached objects).
 */
export function stripUnread<T extends KubeObject>(obj: T): T {
  const { managedFields: _, annotations, ...metadata } = obj.metadata;
  if (annotations?.[LAST_APPLIED_ANNOTATION] === undefined) {
    if (annotations) metadata.annotations = annotations;
  } else {
    const { [LAST_APPLIED_ANNOTATION]: _applied, ...kept } = annotations;
    if (Object.keys(kept).length > 0) metadata.annotations = kept;
  }
  obj.metadata = metadata;
  return obj;
}

export class Informer<T extends KubeObject> {
  readonly resource: ResourceType;
  #options: InformerOptions<T>;
  #log: Logger;
  #cache = new Map<string, T>();
  #handlers: Record<InformerEvent, Handler<T>[]> = { add: [], update: [], delete: [] };
  #resourceVersion = "";
  #abort = new AbortController();
  #synced = false;
  #syncWaiters: (() => void)[] = [];
  #loop: Promise<void> | undefined;
  #resyncTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  /** Time of the last successful list or watch event (for /readyz and tests). */
  lastContact = 0;

  constructor(options: InformerOptions<T>) {
    this.#options = options;
    this.resource = options.resource;
    this.#log = options.logger.child({
      informer: options.resource.plural,
      namespace: options.namespace ?? "*",
    });
  }

  on(event: InformerEvent, handler: Handler<T>): this {
    this.#handlers[event].push(handler);
    return this;
  }

  get hasSynced(): boolean {
    return this.#synced;
  }

  get(namespace: string, name: string): T | undefined {
    return this.#cache.get(`${namespace}/${name}`);
  }

  list(filter?: (obj: T) => boolean): T[] {
    if (!filter) return [...this.#cache.values()];
    // No copy of the whole cache per call: a reconcile filters 10,000 CrawlFeeds for its few.
    const out: T[] = [];
    for (const obj of this.#cache.values()) if (filter(obj)) out.push(obj);
    return out;
  }

  /** Starts the loop; resolves after the first successful list. */
  async start(): Promise<void> {
    if (!this.#loop) {
      this.#loop = this.#run();
      const resyncMs = this.#options.resyncMs ?? 10 * 60_000;
      if (resyncMs > 0) {
        this.#resyncTimer = setInterval(() => this.resync(), resyncMs);
        this.#resyncTimer.unref();
      }
    }
    if (this.#synced) return;
    await new Promise<void>((resolve) => this.#syncWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    clearInterval(this.#resyncTimer);
    for (const waiter of this.#syncWaiters.splice(0)) waiter();
    await this.#loop;
  }

  /** Re-delivers every cached object to the update handlers. */
  resync(): void {
    for (const obj of this.#cache.values()) this.#emit("update", obj, obj);
  }

  #emit(event: InformerEvent, obj: T, old?: T) {
    for (const handler of this.#handlers[event]) {
      try {
        handler(obj, old);
      } catch (err) {
        this.#log.error({ err }, `Informer handler failed for ${this.resource.kind} ${objectKey(obj)}`);
      }
    }
  }

  #backoffMs(): number {
    this.#failures += 1;
    return backoffDelayMs(this.#failures, {
      baseMs: 500,
      capMs: this.#options.maxBackoffMs ?? 10_000,
      jitter: "equal",
    });
  }

  async #relist(cause: string): Promise<void> {
    informerRelists.inc({ resource: this.resource.plural, cause });
    const seen = new Set<string>();
    let resourceVersion: string | undefined;
    // Page by page: only one page of objects is ever held as received (managedFields and all).
    const pages = this.#options.client.listPages<T>(this.resource, {
      namespace: this.#options.namespace,
      labelSelector: this.#options.labelSelector,
    });
    for await (const page of pages) {
      this.lastContact = Date.now();
      resourceVersion = page.metadata.resourceVersion;
      for (const listed of page.items) {
        // Lists omit apiVersion/kind on items; watch events carry them.
        listed.apiVersion ??= this.resource.group ? `${this.resource.group}/${this.resource.version}` : "v1";
        listed.kind ??= this.resource.kind;
        const item = this.#transform(listed);
        const key = objectKey(item);
        seen.add(key);
        const old = this.#cache.get(key);
        this.#cache.set(key, item);
        if (!old) this.#emit("add", item);
        else if (old.metadata.resourceVersion !== item.metadata.resourceVersion) this.#emit("update", item, old);
      }
    }
    for (const [key, old] of this.#cache) {
      if (!seen.has(key)) {
        this.#cache.delete(key);
        this.#emit("delete", old);
      }
    }
    this.#resourceVersion = resourceVersion ?? "";
    this.#log.debug({ cause, count: seen.size }, `Listed ${this.resource.plural}`);
    if (!this.#synced) {
      this.#synced = true;
      for (const waiter of this.#syncWaiters.splice(0)) waiter();
    }
  }

  async #run(): Promise<void> {
    let needList: string | undefined = "start";
    while (!this.#abort.signal.aborted) {
      try {
        if (needList) {
          await this.#relist(needList);
          needList = undefined;
        }
        const stallMs = this.#options.stallMs ?? 5 * 60_000;
        for await (const event of this.#options.client.watch<T>(this.resource, {
          namespace: this.#options.namespace,
          labelSelector: this.#options.labelSelector,
          resourceVersion: this.#resourceVersion,
          timeoutSeconds: 300 + Math.floor(Math.random() * 300),
          idleTimeoutMs: stallMs,
          signal: this.#abort.signal,
        })) {
          this.lastContact = Date.now();
          this.#failures = 0;
          this.#apply(event.type, event.object);
        }
        if (this.#abort.signal.aborted) break;
        // The stream ended: a server timeout (fine, re-watch from the last RV)
        // or a stall (nothing at all, not even a bookmark, for stallMs).
        if (Date.now() - this.lastContact >= stallMs) {
          this.#log.warn(`Watch of ${this.resource.plural} stalled; relisting`);
          needList = "stall";
        }
      } catch (err) {
        if (this.#abort.signal.aborted) break;
        if (isGone(err)) {
          this.#log.info(`Watch of ${this.resource.plural} expired (410); relisting`);
          needList = "expired";
          continue;
        }
        const delay = this.#backoffMs();
        this.#log.warn(
          { error: describeError(err), retryInMs: Math.round(delay) },
          `List/watch of ${this.resource.plural} failed; reconnecting`,
        );
        await sleep(delay, this.#abort.signal);
        // After repeated failures, relist rather than trust a possibly old RV.
        if (this.#failures >= 3) needList ??= "error";
      }
    }
  }

  #transform(obj: T): T {
    const lean = internMetadata(stripUnread(obj));
    return this.#options.transform ? this.#options.transform(lean) : lean;
  }

  #apply(type: string, received: T) {
    if (type === "BOOKMARK") {
      if (received.metadata.resourceVersion) this.#resourceVersion = received.metadata.resourceVersion;
      return;
    }
    const obj = this.#transform(received);
    const key = objectKey(obj);
    const old = this.#cache.get(key);
    if (obj.metadata.resourceVersion) this.#resourceVersion = obj.metadata.resourceVersion;
    if (type === "DELETED") {
      this.#cache.delete(key);
      this.#emit("delete", obj);
      return;
    }
    this.#cache.set(key, obj);
    if (old) this.#emit("update", obj, old);
    else this.#emit("add", obj);
  }
}

/** One informer per watched namespace (or one for all), read as one cache. */
export class InformerGroup<T extends KubeObject> {
  readonly informers: Informer<T>[];

  constructor(namespaces: readonly string[], make: (namespace: string | undefined) => Informer<T>) {
    this.informers = namespaces.length === 0 ? [make(undefined)] : namespaces.map((ns) => make(ns));
  }

  on(event: InformerEvent, handler: Handler<T>): this {
    for (const informer of this.informers) informer.on(event, handler);
    return this;
  }

  get(namespace: string, name: string): T | undefined {
    for (const informer of this.informers) {
      const found = informer.get(namespace, name);
      if (found) return found;
    }
    return undefined;
  }

  list(filter?: (obj: T) => boolean): T[] {
    return this.informers.flatMap((i) => i.list(filter));
  }

  get hasSynced(): boolean {
    return this.informers.every((i) => i.hasSynced);
  }

  async start(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
  }
}
