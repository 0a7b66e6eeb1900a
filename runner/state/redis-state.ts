// The crawl state on Redis (spec.frontier.redis, `feedcrawl crawl
// --frontier redis://…`): one queue, one seen-set and one page accounting for
// every worker of a crawl, so a one-host site is crawled by several processes
// or pods at once. Each step of types.ts's CrawlState is one Lua script
// (redis-scripts.ts). A worker's pages are leased: it heartbeats every
// leaseMs/4, and when it stops (killed, partitioned) for leaseMs, the next
// dequeue of any worker takes its pages back (those in its pending batches
// wait for it: see redis-scripts.ts). Batch ids and pending batches belong to
// the worker id, so a worker restarted under the same id settles its own.
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlRequest } from "../request.ts";
import { connectRedis, LuaScript } from "./redis-client.ts";
import { SharedPoliteness } from "./redis-politeness.ts";
import * as lua from "./redis-scripts.ts";
import type {
  EnqueueEntry,
  HostGate,
  LeasedRequest,
  PageKey,
  PendingBatch,
  RecoveredBatch,
  SharedCrawlProgress,
  SharedCrawlState,
  StateOpening,
} from "./types.ts";

export interface RedisStateOptions {
  /** redis://[user:password@]host:port/db (rediss:// for TLS). */
  url: string;
  /** Names the crawl's keys: a CrawlJob's namespace/name/uid, or a local job's name. */
  job: string;
  /**
   * This worker's id, unique among the crawl's workers and the same after a
   * restart (the shard index, --worker). Absent: the lowest free "wN" is
   * claimed at open() (a dead worker's id, with its pending batches, first).
   */
  worker?: string;
  /** How long a worker's pages outlive its last heartbeat (default 60 s). */
  leaseMs?: number;
  /** How long the job's keys stay after the crawl finished (default 7 days). */
  finishedTtlSeconds?: number;
  logger?: Logger;
}

/** Redis no longer has the job's epoch: its data was lost (restarted without persistence, flushed, evicted). */
export class FrontierLostError extends Error {
  override name = "FrontierLostError";
}
/** This worker was presumed dead (lease expired) or another process opened its id: its pages went back to the queue. */
export class LeasesLostError extends Error {
  override name = "LeasesLostError";
}

const SCRIPTS = {
  open: new LuaScript(lua.OPEN),
  enqueue: new LuaScript(lua.ENQUEUE),
  dequeue: new LuaScript(lua.DEQUEUE),
  heartbeat: new LuaScript(lua.HEARTBEAT),
  processed: new LuaScript(lua.PROCESSED),
  beginBatch: new LuaScript(lua.BEGIN_BATCH),
  batchStored: new LuaScript(lua.BATCH_STORED),
  endBatch: new LuaScript(lua.END_BATCH),
  progress: new LuaScript(lua.PROGRESS),
  finish: new LuaScript(lua.FINISH),
};

/** `fc:{JOB}:` — the braces are a Redis Cluster hash tag: all of a job's keys share one slot. */
export function jobKeyPrefix(job: string): string {
  return `fc:{${job.replace(/[{}]/g, "_")}}:`;
}

function translate(err: unknown): unknown {
  const message = String((err as Error)?.message ?? err);
  if (message.includes("FRONTIER_LOST"))
    return new FrontierLostError(
      `Redis lost the crawl state (${message.replace(/^.*FRONTIER_LOST /, "")}): it was restarted without persistence, flushed or evicted keys; stopping rather than crawling again from the start`,
    );
  if (message.includes("LEASES_LOST")) return new LeasesLostError(message.replace(/^.*LEASES_LOST /, ""));
  return err;
}

const batchField = (feed: string, batchId: number) => `${feed}\n${batchId}`;

export class RedisState implements SharedCrawlState {
  readonly shared = true as const;
  readonly client: Redis;
  readonly prefix: string;
  #worker: string;
  readonly #leaseMs: number;
  readonly #ttl: number;
  readonly #log: Logger | undefined;
  /** A new one per process: a newer process with the same worker id fences this one off. */
  readonly #gen = randomBytes(8).toString("hex");
  #epoch = "";
  #calls = 0;
  /** Dequeue calls run one at a time, so a resent one is recognised as the last. */
  #dequeuing: Promise<unknown> = Promise.resolve();
  #heartbeat: NodeJS.Timeout | undefined;
  /** Set once a heartbeat found this worker fenced off; fenced steps fail with it. */
  #lost: LeasesLostError | undefined;
  #politeness: SharedPoliteness | undefined;

  constructor(opts: RedisStateOptions) {
    this.client = connectRedis(opts.url, opts.logger);
    this.prefix = jobKeyPrefix(opts.job);
    this.#worker = opts.worker ?? "";
    this.#leaseMs = opts.leaseMs ?? 60_000;
    this.#ttl = opts.finishedTtlSeconds ?? 7 * 86_400;
    this.#log = opts.logger;
  }

  /** This worker's id (claimed by open() when none was given). */
  get worker(): string {
    return this.#worker;
  }

  /** The job's epoch (set by open()). */
  get epoch(): string {
    return this.#epoch;
  }

  /** Per-host slots, delays and robots.txt shared by all workers (after open()). */
  get politeness(): HostGate {
    if (!this.#politeness) throw new Error("RedisState.politeness before open()");
    return this.#politeness;
  }

  async #run(script: LuaScript, args: (string | number)[]): Promise<unknown> {
    try {
      return await script.run(this.client, [], [this.prefix, this.#epoch, this.worker, this.#gen, ...args]);
    } catch (err) {
      throw translate(err);
    }
  }

  #fenced(): void {
    if (this.#lost) throw this.#lost;
  }

  async open(): Promise<StateOpening> {
    // OPEN takes the epoch argument as a proposal: it creates the job's epoch, or returns the one it has.
    this.#epoch = randomBytes(8).toString("hex");
    const out = (await this.#run(SCRIPTS.open, [this.#leaseMs])) as (string | number)[];
    const [epoch, worker, status, reason, requeued, done, ...rest] = out;
    this.#epoch = String(epoch);
    this.#worker = String(worker);
    const pending: RecoveredBatch[] = [];
    for (let i = 0; i < rest.length; i += 2) {
      const batch = JSON.parse(String(rest[i])) as PendingBatch;
      const stored = String(rest[i + 1] ?? "");
      pending.push(stored ? { ...batch, stored: JSON.parse(stored) as FeedClosed } : batch);
    }
    pending.sort((a, b) => (a.feed < b.feed ? -1 : a.feed > b.feed ? 1 : a.batchId - b.batchId));
    this.#politeness = new SharedPoliteness(this.client, this.prefix, this.#epoch, this.worker, this.#gen);
    this.#heartbeat = setInterval(() => void this.#beat(), Math.max(50, this.#leaseMs / 4));
    this.#heartbeat.unref();
    return {
      status: status as StateOpening["status"],
      ...(status === "finished" ? { finishReason: String(reason) } : {}),
      pending,
      requeued: Number(requeued),
      done: Number(done),
    };
  }

  async #beat(): Promise<void> {
    try {
      if ((await this.#run(SCRIPTS.heartbeat, [this.#leaseMs])) !== -1) return;
      this.#lost ??= new LeasesLostError(
        `Worker ${this.worker} was presumed dead (no heartbeat for ${this.#leaseMs} ms) or its id was opened again: its pages went back to the queue`,
      );
      this.#log?.error({ worker: this.worker }, this.#lost.message);
    } catch (err) {
      if (err instanceof FrontierLostError) this.#log?.error({ worker: this.worker }, err.message);
      // Redis unreachable: the client retries; leases last leaseMs, several heartbeats.
    }
  }

  async enqueue(entries: readonly EnqueueEntry[]): Promise<boolean[]> {
    if (entries.length === 0) return [];
    const args = entries.map((e) => `${e.key}\t${JSON.stringify(e.request)}\t${e.priority ? "prio" : "queue"}`);
    const added = (await this.#run(SCRIPTS.enqueue, args)) as number[];
    return added.map((n) => n === 1);
  }

  dequeue(max: number): Promise<LeasedRequest[]> {
    const next = this.#dequeuing.then(() => this.#dequeueOnce(max));
    this.#dequeuing = next.catch(() => {});
    return next;
  }

  async #dequeueOnce(max: number): Promise<LeasedRequest[]> {
    this.#fenced();
    const call = `${this.#gen}#${++this.#calls}`;
    const flat = (await this.#run(SCRIPTS.dequeue, [call, max, this.#leaseMs])) as string[];
    const out: LeasedRequest[] = [];
    for (let i = 0; i < flat.length; i += 3) {
      const committed = flat[i + 2] as string;
      out.push({
        key: flat[i] as string,
        request: JSON.parse(flat[i + 1] as string) as CrawlRequest,
        committed: committed ? (JSON.parse(committed) as Record<string, number>) : {},
      });
    }
    return out;
  }

  async pageProcessed(key: PageKey, produced: Record<string, number>): Promise<void> {
    await this.#run(SCRIPTS.processed, [key, JSON.stringify(produced)]);
  }

  async beginBatch(batch: PendingBatch): Promise<void> {
    this.#fenced();
    const { feed, batchId, uri, pages } = batch;
    await this.#run(SCRIPTS.beginBatch, [JSON.stringify({ feed, batchId, uri, pages }), batchField(feed, batchId)]);
  }

  async batchStored(feed: string, batchId: number, closed: FeedClosed): Promise<void> {
    await this.#run(SCRIPTS.batchStored, [batchField(feed, batchId), JSON.stringify(closed)]);
  }

  async commitBatch(feed: string, batchId: number): Promise<void> {
    await this.#run(SCRIPTS.endBatch, [batchField(feed, batchId), feed, batchId, "commit"]);
  }

  async discardBatch(feed: string, batchId: number): Promise<void> {
    await this.#run(SCRIPTS.endBatch, [batchField(feed, batchId), feed, batchId, "discard"]);
  }

  async lastBatchIds(): Promise<Record<string, number>> {
    const all = await this.client.hgetall(`${this.prefix}lastbatch:${this.worker}`);
    return Object.fromEntries(Object.entries(all).map(([feed, id]) => [feed, Number(id)]));
  }

  async progress(): Promise<SharedCrawlProgress> {
    const [queued, inFlight, unfinished, done, finished] = (await this.#run(SCRIPTS.progress, [])) as [
      number,
      number,
      number,
      number,
      string,
    ];
    return { queued, inFlight, unfinished, done, ...(finished ? { finishReason: finished } : {}) };
  }

  async queuedCount(): Promise<number> {
    return (await this.progress()).queued;
  }

  /** Nothing queued and no page handed out and unprocessed at any worker: this worker may close its batches. */
  async crawlIdle(): Promise<boolean> {
    const p = await this.progress();
    return p.queued === 0 && p.inFlight === 0;
  }

  /**
   * Marks the crawl finished if no worker has anything left (queued, held or
   * in a pending batch); the job's keys then expire. A worker that ends while
   * others still work leaves it to the last one (progress() shows finishReason).
   */
  async markFinished(reason: string): Promise<void> {
    await this.#run(SCRIPTS.finish, [reason, this.#ttl]);
  }

  /** Stops heartbeating (held pages go back to the queue leaseMs later, or when this id opens again) and disconnects. */
  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    await this.#dequeuing;
    await this.client.quit().catch(() => this.client.disconnect());
  }
}
