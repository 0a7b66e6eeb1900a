// Child processes of the test platform: each one runs in its own process
// group with its output in a log file, is awaited with a readiness probe that
// fails with the log's last lines, and is killed (the whole group) when the
// owning Node process exits or is interrupted, so a failed run leaves no
// orphaned servers behind.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface ProcessSpec {
  /** Short name for messages, e.g. "etcd". */
  name: string;
  command: string;
  args: string[];
  /** Where stdout and stderr go (appended, so a restart keeps the history). */
  logFile: string;
  env?: NodeJS.ProcessEnv;
}

/** Every process group this Node process still has to kill at exit. */
const live = new Set<ManagedProcess>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // "exit" handlers must be synchronous: SIGKILL every group still alive.
  process.on("exit", () => {
    for (const p of live) p.killNow();
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    // A program that handles the signal itself (test/run.ts) tears down in
    // its own handler; the "exit" hook above still catches what it leaves.
    if (process.listenerCount(signal) > 0) continue;
    process.once(signal, () => {
      for (const p of live) p.killNow();
      // Re-raise the default behaviour: exit with 128 + signal number.
      process.exit(signal === "SIGINT" ? 130 : signal === "SIGTERM" ? 143 : 129);
    });
  }
}

/** The last `n` lines of a log file, for error messages. */
export function tailLog(file: string, n = 25): string {
  try {
    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    return lines.slice(-n).join("\n");
  } catch {
    return "(no log)";
  }
}

export class ManagedProcess {
  readonly spec: ProcessSpec;
  child: ChildProcess | undefined;
  /** Set once the current child has exited: its code or signal. */
  exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Why the last spawn failed (e.g. ENOENT), if it did. */
  spawnError: Error | undefined;
  #exitPromise: Promise<void> = Promise.resolve();

  constructor(spec: ProcessSpec) {
    this.spec = spec;
  }

  get pid(): number {
    if (!this.child?.pid) throw new Error(`${this.spec.name} is not running`);
    return this.child.pid;
  }

  /** Spawns the process (again, after a stop) with the same arguments. */
  start(): void {
    if (this.child && !this.exited) throw new Error(`${this.spec.name} is already running (pid ${this.child.pid})`);
    mkdirSync(dirname(this.spec.logFile), { recursive: true });
    const fd = openSync(this.spec.logFile, "a");
    try {
      // detached: true makes the child a process-group leader, so kill(-pid)
      // reaches anything it forks too.
      const child = spawn(this.spec.command, this.spec.args, {
        detached: true,
        stdio: ["ignore", fd, fd],
        env: this.spec.env ?? process.env,
      });
      this.child = child;
      this.exited = undefined;
      this.#exitPromise = new Promise((resolve) => {
        child.once("exit", (code, signal) => {
          this.exited = { code, signal };
          live.delete(this);
          resolve();
        });
        child.once("error", (err) => {
          this.exited = { code: null, signal: null };
          live.delete(this);
          this.spawnError = err;
          resolve();
        });
      });
      installExitHooks();
      live.add(this);
    } finally {
      closeSync(fd);
    }
  }

  /** Polls `probe` until it returns true; fails early if the process exits. */
  async waitReady(probe: () => Promise<boolean>, timeoutMs: number, what = "ready"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError = "";
    while (Date.now() < deadline) {
      if (this.exited) {
        const how = this.spawnError
          ? `could not be started: ${this.spawnError.message}`
          : `exited (code ${this.exited.code}, signal ${this.exited.signal})`;
        throw new Error(
          `${this.spec.name} ${how} before it was ${what}. Log ${this.spec.logFile}, last lines:\n${tailLog(this.spec.logFile)}`,
        );
      }
      try {
        if (await probe()) return;
      } catch (err) {
        lastError = err instanceof Error ? err.message : String(err);
      }
      await sleep(200);
    }
    throw new Error(
      `${this.spec.name} was not ${what} after ${timeoutMs / 1000} s${lastError ? ` (last probe error: ${lastError})` : ""}. ` +
        `Log ${this.spec.logFile}, last lines:\n${tailLog(this.spec.logFile)}`,
    );
  }

  /** Starts the process and waits for `probe`; stops it again if it never gets ready. */
  async startAndWait(probe: () => Promise<boolean>, timeoutMs: number, what = "ready"): Promise<void> {
    this.start();
    try {
      await this.waitReady(probe, timeoutMs, what);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves once it exited. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.child || this.exited) return;
    signalGroup(this.pid, "SIGTERM");
    const timer = setTimeout(() => {
      if (this.child?.pid) signalGroup(this.child.pid, "SIGKILL");
    }, graceMs);
    await this.#exitPromise;
    clearTimeout(timer);
  }

  /** Synchronous last resort for exit handlers. */
  killNow(): void {
    if (this.child?.pid && !this.exited) signalGroup(this.child.pid, "SIGKILL");
  }

  /**
   * Stop tracking the process so it outlives this Node process (local-cluster
   * up); `stopPid` stops it later by its saved PID.
   */
  release(): void {
    live.delete(this);
    this.child?.unref();
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    // ESRCH: the group is already gone.
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // An exited child of a parent that does not reap it yet is a zombie: dead.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}

/** Stops a process group known only by its PID (local-cluster down). */
export async function stopPid(pid: number, graceMs = 5000): Promise<void> {
  if (!isAlive(pid)) return;
  signalGroup(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return;
    await sleep(100);
  }
  signalGroup(pid, "SIGKILL");
  while (isAlive(pid)) await sleep(50);
}
