// Politeness across every worker of a shared crawl, kept in Redis: per host,
// at most `perHost` requests in flight (slots that free themselves if their
// worker dies), a next-allowed time that spaces request starts by the
// download delay, the robots.txt Crawl-delay or AutoThrottle's delay
// (whichever is largest), and robots.txt fetched once per host for the job.
// Each worker still runs its own scheduler; before a request leaves its slot
// the worker takes the host's shared slot here, and frees it when the
// response is handled.
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { sleep } from "../../lib/sleep.ts";
import { nextThrottleDelay } from "../throttle.ts";
import { LuaScript } from "./redis-client.ts";
import { ACQUIRE, RELEASE_SLOT } from "./redis-scripts.ts";
import type { HostGate, HostLimits } from "./types.ts";

const SCRIPTS = { acquire: new LuaScript(ACQUIRE), release: new LuaScript(RELEASE_SLOT) };

/** A full host is polled this often: a slot may free long before its expiry. */
const FULL_POLL_MS = 20;
/** How long one worker may hold a host's robots.txt fetch before another tries. */
const ROBOTS_LOCK_MS = 30_000;
const THROTTLE_TTL_MS = 600_000;

export class SharedPoliteness implements HostGate {
  readonly #client: Redis;
  readonly #prefix: string;
  /** The script arguments every step starts with: prefix, epoch, worker id, generation. */
  readonly #head: string[];
  readonly #worker: string;

  /** The arguments are RedisState's: the gate lives and expires with the job's keys. */
  constructor(client: Redis, prefix: string, epoch: string, worker: string, gen: string) {
    this.#client = client;
    this.#prefix = prefix;
    this.#worker = worker;
    this.#head = [prefix, epoch, worker, gen];
  }

  /**
   * Waits until `host` has a free slot and its next-allowed time has passed,
   * across all workers, and takes the slot. Returns its token for release(),
   * or undefined when `signal` aborted first.
   */
  async acquire(host: string, limits: HostLimits, signal?: AbortSignal): Promise<string | undefined> {
    // The worker id in the token: a restarted worker frees the slots its previous process held.
    const token = `${this.#worker}|${randomBytes(6).toString("hex")}`;
    while (!signal?.aborted) {
      const [ok, waitMs] = (await SCRIPTS.acquire.run(
        this.#client,
        [],
        [
          ...this.#head,
          host,
          token,
          Math.max(1, limits.perHost),
          Math.max(0, Math.round(limits.delayMs)),
          limits.slotTtlMs,
        ],
      )) as [-1 | 0 | 1, number];
      if (ok === 1) return token;
      // Full (-1): poll, a slot may free long before its expiry; else wait out the delay.
      await sleep(Math.max(1, ok === -1 ? Math.min(waitMs, FULL_POLL_MS) : waitMs), signal);
    }
    return undefined;
  }

  /** Frees the slot taken by acquire(). */
  async release(host: string, token: string): Promise<void> {
    await SCRIPTS.release.run(this.#client, [], [...this.#head, host, token]);
  }

  /** AutoThrottle across workers: folds one response's latency into the host's shared delay. */
  async observe(
    host: string,
    latencyMs: number,
    status: number,
    o: { startDelayMs: number; targetConcurrency: number; minDelayMs: number; maxDelayMs: number },
  ): Promise<number> {
    const key = `${this.#prefix}h:${host}:throttle`;
    const current = Number((await this.#client.get(key)) ?? o.startDelayMs);
    const next = nextThrottleDelay(current, latencyMs, status, o);
    await this.#client.set(key, String(Math.round(next)), "PX", THROTTLE_TTL_MS);
    return next;
  }

  /**
   * robots.txt of `origin` as one worker of the job fetched it: the first
   * worker to ask runs `fetch` (its result must be a string, e.g. the status
   * and body serialized), the others wait for it and get the same string.
   */
  async robotsOnce(origin: string, fetch: () => Promise<string>, signal?: AbortSignal): Promise<string> {
    const hash = `${this.#prefix}robots`;
    const lock = `${this.#prefix}robots-lock:${origin}`;
    for (;;) {
      const cached = await this.#client.hget(hash, origin);
      if (cached !== null) return cached;
      if ((await this.#client.set(lock, "1", "PX", ROBOTS_LOCK_MS, "NX")) === "OK") {
        try {
          const value = await fetch();
          await this.#client.hset(hash, origin, value);
          return value;
        } finally {
          await this.#client.del(lock);
        }
      }
      if (signal?.aborted) return fetch();
      await sleep(50, signal);
    }
  }
}
