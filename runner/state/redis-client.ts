// The Redis connection of a shared crawl (ioredis) and how its Lua scripts
// run: EVALSHA, falling back to EVAL when the server does not know the script
// (first use, or a restarted Redis). While Redis is unreachable, commands
// wait in the client's offline queue and the connection is retried with
// backoff, forever: the crawl pauses instead of failing. A command whose reply
// was lost with the connection is sent again after the reconnect, so every
// script is idempotent (see redis-scripts.ts).
import { createHash } from "node:crypto";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { type BackoffPolicy, backoffDelayMs } from "../../lib/backoff.ts";

const RECONNECT: BackoffPolicy = { baseMs: 100, capMs: 2000, minMs: 50, jitter: "equal" };

/** The URL without its password, for logs. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.href;
  } catch {
    return "(unparsable Redis URL)";
  }
}

/** A client that reconnects forever and queues commands meanwhile; logs each outage once, and its end. */
export function connectRedis(url: string, logger?: Logger): Redis {
  const where = redactRedisUrl(url);
  let down = false;
  const client = new Redis(url, {
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    autoResendUnfulfilledCommands: true,
    retryStrategy: (times) => backoffDelayMs(times, RECONNECT),
    lazyConnect: false,
  });
  client.on("error", (err: Error) => {
    if (down) return;
    down = true;
    logger?.warn({ redis: where, err: err.message }, `Redis frontier ${where} unreachable: waiting and retrying`);
  });
  client.on("ready", () => {
    if (!down) return;
    down = false;
    logger?.info({ redis: where }, `Redis frontier ${where} reachable again`);
  });
  return client;
}

/** One Lua script, run by its SHA1; EVAL (which also caches it in Redis) when Redis does not have it. */
export class LuaScript {
  readonly #lua: string;
  readonly #sha: string;

  constructor(lua: string) {
    this.#lua = lua;
    this.#sha = createHash("sha1").update(lua).digest("hex");
  }

  async run(client: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.#sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!String((err as Error).message).startsWith("NOSCRIPT")) throw err;
    }
    return client.eval(this.#lua, keys.length, ...keys, ...args);
  }
}
