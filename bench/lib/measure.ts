// Runs a command under GNU time so wall time, CPU seconds and peak RSS come
// from the kernel's rusage of that process (and its waited-for children),
// the same way for Node, Python and anything else we compare. The process
// tree's RSS is also sampled from /proc every 250 ms for an over-time line.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Measured {
  wallSeconds: number;
  userSeconds: number;
  systemSeconds: number;
  cpuSeconds: number;
  maxRssMb: number;
  exitCode: number;
  /** RSS of the command's process tree (MB), every RSS_SAMPLE_MS from the start. */
  rssMb: number[];
}

export const RSS_SAMPLE_MS = 250;

/** VmRSS of a process and all its descendants, in MB (0 once gone). */
async function treeRssMb(pid: number): Promise<number> {
  let kb = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    try {
      const status = await readFile(`/proc/${p}/status`, "utf8");
      kb += Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      const children = await readFile(`/proc/${p}/task/${p}/children`, "utf8");
      for (const c of children.split(" ").filter(Boolean)) stack.push(Number(c));
    } catch {
      // exited meanwhile
    }
  }
  return kb / 1024;
}

export interface MeasureOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr of the command go here (kept for post-mortems). */
  logFile: string;
  timeoutMs?: number;
}

const GNU_TIME = "/usr/bin/time";

export async function runMeasured(command: string, args: string[], opts: MeasureOptions): Promise<Measured> {
  const timeFile = join(tmpdir(), `feedcrawl-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const log = createWriteStream(opts.logFile);
  const started = process.hrtime.bigint();
  const child = spawn(GNU_TIME, ["-f", "%e %U %S %M", "-o", timeFile, command, ...args], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const timer = opts.timeoutMs
    ? setTimeout(() => {
        log.write(`\n[bench] ${command} timed out after ${opts.timeoutMs} ms: killed\n`);
        child.kill("SIGKILL");
      }, opts.timeoutMs)
    : undefined;
  const rssMb: number[] = [];
  const sampler = setInterval(() => {
    if (child.pid) void treeRssMb(child.pid).then((mb) => rssMb.push(mb));
  }, RSS_SAMPLE_MS);
  const exitCode: number = await new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  if (timer) clearTimeout(timer);
  clearInterval(sampler);
  const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  await new Promise<void>((resolve) => log.end(resolve));
  const text = await readFile(timeFile, "utf8").catch(() => "");
  await rm(timeFile, { force: true });
  // GNU time prints "Command exited with non-zero status N" before the numbers.
  const last = text.trim().split("\n").at(-1) ?? "";
  const [, user, sys, rssKb] = last.split(/\s+/).map(Number);
  if (user === undefined || sys === undefined || rssKb === undefined || Number.isNaN(rssKb)) {
    throw new Error(`GNU time gave no measurement for ${command} (see ${opts.logFile}): ${JSON.stringify(text)}`);
  }
  return {
    wallSeconds,
    userSeconds: user,
    systemSeconds: sys,
    cpuSeconds: user + sys,
    maxRssMb: rssKb / 1024,
    exitCode,
    rssMb: rssMb.filter((mb) => mb > 0).map((mb) => Math.round(mb)),
  };
}
