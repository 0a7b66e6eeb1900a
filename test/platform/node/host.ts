// What a node leaves in the machine outside its work dir, found and removed
// by path or PID (never by process name): mounts, the kubepods cgroups,
// processes left in them, and shims of the node's containerd.
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { hostTool } from "../binaries.ts";
import { isAlive } from "../process.ts";
import { execQuiet } from "./exec.ts";

const cgroupRoot = "/sys/fs/cgroup";

/** Mount points from /proc/self/mountinfo (octal escapes such as \040 decoded). */
export function mountPoints(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) =>
      (line.split(" ")[4] ?? "").replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))),
    );
}

const under = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

/** Unmounts everything at or under `dirs`, deepest first (lazily when busy). */
export async function unmountUnder(dirs: string[]): Promise<string[]> {
  const umount = hostTool("umount");
  const targets = mountPoints()
    .filter((m) => dirs.some((d) => under(m, d)))
    .sort((a, b) => b.length - a.length);
  for (const target of targets) {
    if ((await execQuiet(umount, [target])).code !== 0) await execQuiet(umount, ["-l", target]);
  }
  return targets;
}

/** The kubelet's pod cgroups (cgroupfs driver): <controller>/kubepods of every hierarchy. */
export function kubepodsCgroups(): string[] {
  if (!existsSync(cgroupRoot)) return [];
  const roots: string[] = [];
  const direct = join(cgroupRoot, "kubepods");
  if (existsSync(direct)) roots.push(direct); // cgroup v2
  for (const entry of readdirSync(cgroupRoot)) {
    const dir = join(cgroupRoot, entry, "kubepods");
    if (existsSync(dir) && statSync(dir).isDirectory()) roots.push(dir);
  }
  return roots;
}

function walk(dir: string): string[] {
  const dirs = [dir];
  let entries: string[] = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join(dir, e.name));
  } catch {}
  return dirs.concat(entries.flatMap(walk));
}

/** PIDs of the processes in the cgroup trees. */
export function cgroupProcesses(roots: string[]): number[] {
  const pids = new Set<number>();
  for (const dir of roots.flatMap(walk)) {
    try {
      for (const pid of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean))
        pids.add(Number(pid));
    } catch {}
  }
  return [...pids];
}

/** PIDs of running processes whose executable is `binary` (e.g. the node's shim). */
export function processesOf(binary: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/exe`) === binary) pids.push(Number(entry));
    } catch {}
  }
  return pids;
}

/** SIGKILLs each PID and waits until it is gone. */
export async function killPids(pids: number[], timeoutMs = 10_000): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(100);
}

/** Removes cgroup trees deepest first; a cgroup only goes once its processes have exited. */
export async function removeCgroups(roots: string[], timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let left: string[] = [];
  do {
    left = [];
    for (const dir of roots.flatMap(walk).sort((a, b) => b.length - a.length)) {
      try {
        rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") left.push(dir);
      }
    }
    if (left.length > 0) await sleep(200);
  } while (left.length > 0 && Date.now() < deadline);
  return left;
}

/** Every path under `dir`, relative to it; undefined when `dir` does not exist. */
export function listTree(dir: string): string[] | undefined {
  if (!existsSync(dir)) return undefined;
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).sort();
}

/**
 * Puts `dir` back as `listTree` saw it: removed when it did not exist,
 * otherwise only what was added since.
 */
export function restoreTree(dir: string, before: string[] | undefined): void {
  if (before === undefined) {
    rmSync(dir, { recursive: true, force: true });
    return;
  }
  const added = (listTree(dir) ?? []).filter((entry) => !before.includes(entry));
  // Deepest first, so a new folder is empty (of new entries) when its turn comes.
  for (const entry of added.sort((a, b) => b.length - a.length))
    rmSync(join(dir, entry), { recursive: true, force: true });
}

/** The process's start time (clock ticks since boot, /proc/PID/stat field 22): with the PID, its identity. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}
