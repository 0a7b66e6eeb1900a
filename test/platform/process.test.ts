// Managed processes: readiness failures quote the log, and a Node process that
// crashes, exits or is interrupted leaves none of its servers behind.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { isAlive, ManagedProcess } from "./process.ts";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "feedcrawl-process-test-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("a server that never gets ready fails with a timeout that quotes its log", async () => {
  const proc = new ManagedProcess({
    name: "never-ready",
    command: "sh",
    args: ["-c", "echo listening-on-nothing; sleep 30"],
    logFile: join(dir, "never-ready.log"),
  });
  await assert.rejects(
    proc.startAndWait(async () => false, 1000),
    (err: Error) => {
      assert.match(err.message, /never-ready was not ready after 1 s/);
      assert.match(err.message, /listening-on-nothing/);
      return true;
    },
  );
  assert.ok(proc.exited, "the process was stopped after the failed start");
});

test("a server that exits while starting fails at once with its exit code and log", async () => {
  const proc = new ManagedProcess({
    name: "crasher",
    command: "sh",
    args: ["-c", "echo bad flag --foo; exit 3"],
    logFile: join(dir, "crasher.log"),
  });
  await assert.rejects(
    proc.startAndWait(async () => false, 30_000),
    /crasher exited \(code 3.*bad flag --foo/s,
  );
});

test("stop and start again run the same command", async () => {
  const proc = new ManagedProcess({ name: "sleeper", command: "sleep", args: ["30"], logFile: join(dir, "s.log") });
  proc.start();
  const first = proc.pid;
  await proc.stop();
  assert.equal(isAlive(first), false);
  proc.start();
  assert.notEqual(proc.pid, first);
  assert.ok(isAlive(proc.pid));
  await proc.stop();
});

async function childPid(how: string, signal?: NodeJS.Signals): Promise<{ pid: number; code: number | null }> {
  const fixture = join(import.meta.dirname, "fixtures", "owns-a-process.fixture.ts");
  const child = spawn(process.execPath, [fixture, how, dir], { stdio: ["ignore", "pipe", "ignore"] });
  const pid = await new Promise<number>((resolve, reject) => {
    child.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    child.once("exit", () => reject(new Error("the fixture exited before printing a PID")));
  });
  assert.ok(isAlive(pid), "the managed process runs");
  if (signal) child.kill(signal);
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  return { pid, code };
}

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(100);
  return !isAlive(pid);
}

for (const [how, signal] of [["throw"], ["exit"], ["wait", "SIGTERM"], ["wait", "SIGINT"]] as const) {
  test(`no orphan when the owning Node process ${signal ? `gets ${signal}` : how === "throw" ? "crashes" : "exits"}`, async () => {
    const { pid, code } = await childPid(how, signal);
    assert.ok(await gone(pid), `process ${pid} outlived its owner`);
    if (how === "throw") assert.equal(code, 1);
    if (signal === "SIGTERM") assert.equal(code, 143);
    if (signal === "SIGINT") assert.equal(code, 130);
  });
}
