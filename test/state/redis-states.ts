// RedisState instances on a throwaway redis-server of the test file's own:
// started before its tests, stopped after them with every state made here closed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { RedisState, type RedisStateOptions } from "../../runner/state/redis-state.ts";
import { startRedis, type TestRedis } from "../platform/redis.ts";

/** Registers the redis-server's start and stop; returns a maker of states on it (not opened). */
export function redisStates(name: string): (opts: Omit<RedisStateOptions, "url">) => RedisState {
  const workDir = mkdtempSync(join(tmpdir(), `${name}-`));
  let redis: TestRedis | undefined;
  const made: RedisState[] = [];
  before(async () => {
    redis = await startRedis({ workDir });
  });
  after(async () => {
    for (const s of made) await s.close().catch(() => {});
    await redis?.stop();
    rmSync(workDir, { recursive: true, force: true });
  });
  return (opts) => {
    const s = new RedisState({ url: (redis as TestRedis).url, ...opts });
    made.push(s);
    return s;
  };
}
