// A throwaway redis-server (the Debian package) for tests and benchmarks: its
// own free loopback port and data dir, never the machine's 6379. No
// persistence unless asked (`persistent`: an AOF fsynced at every write, so a
// stop and start keeps every key). stop() and start() again keep the port, so
// a test can take Redis away mid-crawl and bring it back where its clients
// reconnect.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { freePort, retryOnPortClash } from "./ports.ts";
import { ManagedProcess } from "./process.ts";

export interface TestRedis {
  /** redis://127.0.0.1:PORT/0 */
  url: string;
  port: number;
  process: ManagedProcess;
  /** SIGTERM, resolves once exited (the data is lost: no persistence). */
  stop(): Promise<void>;
  /** Starts it again on the same port and waits until it answers PING. */
  start(): Promise<void>;
}

/** The redis-server binary: REDIS_SERVER, else the one on PATH; a clear error when there is none. */
export function redisServerBinary(): string {
  const fromEnv = process.env.REDIS_SERVER;
  if (fromEnv) return fromEnv;
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error(
      "redis-server is not installed: the Redis frontier tests need a real one (`apt-get install redis-server`; .ci/run installs it)",
    );
  }
}

/** Whether a RESP PING on `port` gets +PONG. */
function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    let data = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      data += chunk.toString();
      if (data.includes("\r\n")) done(data.startsWith("+PONG"));
    });
  });
}

export interface RedisOptions {
  workDir: string;
  /** Names the data dir and the log (default "redis"). */
  name?: string;
  /** Keep the data across stop()/start() (AOF, fsync always). */
  persistent?: boolean;
}

export function startRedis(options: RedisOptions): Promise<TestRedis> {
  return retryOnPortClash(() => startRedisOnce(options));
}

async function startRedisOnce(options: RedisOptions): Promise<TestRedis> {
  const bin = redisServerBinary();
  const port = await freePort();
  const name = options.name ?? "redis";
  const dir = join(options.workDir, `${name}-data`);
  mkdirSync(dir, { recursive: true });
  const proc = new ManagedProcess({
    name,
    command: bin,
    args: [
      "--bind",
      "127.0.0.1",
      "--port",
      String(port),
      "--dir",
      dir,
      // No RDB snapshots; an AOF only when asked (else a restart starts empty).
      "--save",
      "",
      "--appendonly",
      options.persistent ? "yes" : "no",
      "--appendfsync",
      "always",
      "--protected-mode",
      "yes",
      "--daemonize",
      "no",
      "--loglevel",
      "warning",
    ],
    logFile: join(options.workDir, "logs", `${name}.log`),
  });
  const start = () => proc.startAndWait(() => pong(port), 20_000, "answering PING");
  await start();
  return { url: `redis://127.0.0.1:${port}/0`, port, process: proc, stop: () => proc.stop(), start };
}
