// Runs the host programs the node needs (ip, iptables, mount, ctr, crictl, …)
// and turns a failure into an error that quotes the command and its stderr.
import { execFile } from "node:child_process";

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `command`; resolves even when it fails (code ≠ 0). */
export function execQuiet(
  command: string,
  args: string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 60_000, env: options.env ?? process.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr: stderr || (err && !stderr ? err.message : "") });
      },
    );
  });
}

/** Runs `command` and resolves to its stdout; rejects naming the command and quoting stderr. */
export async function exec(
  command: string,
  args: string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  const result = await execQuiet(command, args, options);
  if (result.code !== 0) {
    throw new Error(`\`${command} ${args.join(" ")}\` failed (exit ${result.code}): ${result.stderr.trim()}`);
  }
  return result.stdout;
}
