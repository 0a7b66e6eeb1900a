// Forks a backend child (per-item-server.ts or reference-server.ts) on the
// project's Node 24 and talks to it over IPC.
import { type ChildProcess, fork } from "node:child_process";
import { createWriteStream } from "node:fs";
import { NODE } from "../lib/context.ts";
import type { BackendStats } from "./child.ts";

export interface BackendChild {
  url: string;
  pid: number;
  reset(): Promise<void>;
  stats(): Promise<BackendStats>;
  stop(): Promise<void>;
}

function next<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: { type: string } & T) => {
      if (msg.type !== type) return;
      cleanup();
      resolve(msg);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`backend child exited (code ${code}) while waiting for "${type}"`));
    };
    const cleanup = () => {
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

export async function forkBackend(script: string, env: NodeJS.ProcessEnv, logFile: string): Promise<BackendChild> {
  const child = fork(script, [], { execPath: NODE, env, stdio: ["ignore", "pipe", "pipe", "ipc"] });
  const log = createWriteStream(logFile);
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const ready = await next<{ url: string }>(child, "ready");
  return {
    url: ready.url,
    pid: child.pid!,
    async reset() {
      const done = next(child, "reset");
      child.send({ type: "reset" });
      await done;
    },
    async stats() {
      const done = next<{ stats: BackendStats }>(child, "stats");
      child.send({ type: "stats" });
      return (await done).stats;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.send({ type: "stop" });
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}
