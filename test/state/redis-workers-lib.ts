// What the shared-crawl tests do with worker processes: spawn one (its stderr
// shown when it fails), and SIGKILL one worker at seeded random moments,
// starting it again each time, until it finishes on its own.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";

export { seeded } from "../runner/crawl-state-helpers.ts";

export interface WorkerProcess {
  child: ChildProcess;
  exit: Promise<number | null>;
}

/** Runs `program` (a worker module) with its config as JSON in argv[2]. */
export function spawnWorker(program: string, config: { worker: string }): WorkerProcess {
  return spawnNode([program, JSON.stringify(config)], config.worker);
}

/** Runs node with `args`; its stderr is shown, named after `worker`, when it exits with an error. */
export function spawnNode(args: string[], worker: string, cwd?: string): WorkerProcess {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], ...(cwd ? { cwd } : {}) });
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  const exit = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      if (code !== 0 && code !== null) process.stderr.write(`worker ${worker} exited ${code}:\n${stderr}\n`);
      resolve(code);
    }),
  );
  return { child, exit };
}

/**
 * Starts a worker with `start`, SIGKILLs it after minMs + random·spanMs, and
 * starts it again (after `pauseMs()`), until one run of it exits 0. Returns
 * how many times it was killed. A run that fails on its own fails the test.
 */
export async function killRepeatedly(o: {
  start: () => WorkerProcess;
  random: () => number;
  minMs: number;
  spanMs: number;
  pauseMs?: () => number;
}): Promise<number> {
  let kills = 0;
  for (;;) {
    const victim = o.start();
    const outcome = await Promise.race([
      victim.exit,
      sleep(o.minMs + o.random() * o.spanMs).then(() => "kill" as const),
    ]);
    if (outcome === 0) return kills;
    if (outcome !== "kill") assert.fail(`the worker failed on its own: exit code ${outcome}`);
    victim.child.kill("SIGKILL");
    await victim.exit;
    kills++;
    const pause = o.pauseMs?.() ?? 0;
    if (pause > 0) await sleep(pause);
  }
}
