// Running the image tools (buildah, debootstrap, runc, ctr) on this machine:
// where their state lives, a clear error naming the package when one is
// missing, and each call logged to one file so a failure shows its last lines.
import { spawn } from "node:child_process";
import { accessSync, appendFileSync, constants, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { tailLog } from "../process.ts";

/** Images, archives and buildah's storage; FEEDCRAWL_IMAGES overrides it. */
export function imagesDir(): string {
  return process.env.FEEDCRAWL_IMAGES || join(homedir(), ".cache", "feedcrawl", "images");
}

export const logFile = (): string => join(imagesDir(), "build.log");

/** Debian package that provides each tool, for the error message. */
const packageOf: Record<string, string> = {
  buildah: "buildah",
  debootstrap: "debootstrap",
  runc: "runc",
};

/** Absolute path of a tool on PATH, or an error saying what to install. */
export function requireTool(name: string): string {
  for (const dir of [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin"]) {
    if (!dir) continue;
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {}
  }
  const pkg = packageOf[name] ?? name;
  throw new Error(
    `${name} is not installed: install it with \`apt-get install -y ${pkg}\` (Debian/Ubuntu), then retry.`,
  );
}

export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new Error(`${what} needs root (debootstrap, buildah's storage and runc run as root here); run it as root.`);
  }
}

/**
 * buildah with storage of its own (not the machine's /var/lib/containers).
 * Its defaults are what works here: cgroupfs, and RUN rlimits of nofile 1024,
 * nproc 32768. Never pass --ulimit: an nproc above 32768 (pid_max here), even this
 * process's own hard limit, fails every RUN with "error setting rlimit type 6:
 * operation not permitted" (no CAP_SYS_RESOURCE on these machines).
 */
export function buildahArgs(args: string[]): [string, string[]] {
  const root = join(imagesDir(), "storage");
  return [
    requireTool("buildah"),
    ["--root", root, "--runroot", "/run/feedcrawl-buildah", "--storage-driver", "overlay", ...args],
  ];
}

export interface RunOptions {
  /** Also copy the output to stderr as it comes. */
  verbose?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Exit codes that are not failures (default: only 0). */
  okCodes?: number[];
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; output goes to the log file, stdout is also returned. */
export async function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const log = logFile();
  mkdirSync(imagesDir(), { recursive: true });
  appendFileSync(log, `\n$ ${command} ${args.join(" ")}\n`);
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk;
    appendFileSync(log, chunk);
    if (options.verbose) process.stderr.write(chunk);
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk;
    appendFileSync(log, chunk);
    if (options.verbose) process.stderr.write(chunk);
  });
  const code = await new Promise<number>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (c, signal) => resolve(c ?? (signal ? 128 : 1)));
  });
  if (!(options.okCodes ?? [0]).includes(code)) {
    throw new Error(
      `${command} ${args.slice(0, 12).join(" ")} … exited ${code}. Last lines of ${log}:\n${tailLog(log)}`,
    );
  }
  return { code, stdout, stderr };
}

/** buildah … (see buildahArgs), with Debian's runc as the runtime of every RUN. */
export async function buildah(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const [command, full] = buildahArgs(args);
  return run(command, full, { ...options, env: { BUILDAH_RUNTIME: requireTool("runc"), ...options.env } });
}

/** True when the local storage holds an image by this name. */
export async function imageExists(ref: string): Promise<boolean> {
  const { code } = await buildah(["inspect", "--type", "image", "--format", "{{.FromImageID}}", ref], {
    okCodes: [0, 125, 1],
  });
  return code === 0;
}

/** A label of a local image, or undefined when the image or the label is missing. */
export async function imageLabel(ref: string, label: string): Promise<string | undefined> {
  const { code, stdout } = await buildah(
    ["inspect", "--type", "image", "--format", `{{index .OCIv1.Config.Labels "${label}"}}`, ref],
    { okCodes: [0, 125, 1] },
  );
  const value = stdout.trim();
  return code === 0 && value && value !== "<no value>" ? value : undefined;
}
