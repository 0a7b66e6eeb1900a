// Runs the built image with runc the way a runner pod runs it — uid/gid
// 65532, read-only root filesystem, a fresh writable /tmp (the pod's emptyDir),
// no capabilities, no new privileges, no network — so the image is proven
// without a cluster. Also reports every file a command writes outside /tmp,
// from a second run with a writable root (what readOnlyRootFilesystem would
// refuse).
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { IMAGE } from "./build.ts";
import { buildah, imagesDir, requireRoot, requireTool, run } from "./tools.ts";

const POD_UID = 65532;

interface ImageConfig {
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
}

export interface SmokeRun {
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
}

/** An OCI runtime spec like the kubelet's for a restricted pod (RuntimeDefault seccomp aside). */
function runtimeSpec(rootfs: string, config: ImageConfig, args: string[], readonlyRoot: boolean): object {
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: POD_UID, gid: POD_UID },
      // No argv: the image's default, ENTRYPOINT + CMD, as `docker run IMAGE` does.
      args: args.length > 0 ? args : [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])],
      // containerd sets HOME from the image's /etc/passwd for the pod's uid.
      env: [...(config.Env ?? []), "HOSTNAME=feedcrawl-smoke", "HOME=/home/nonroot"],
      cwd: config.WorkingDir || "/",
      capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: rootfs, readonly: readonlyRoot },
    hostname: "feedcrawl-smoke",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      {
        destination: "/dev",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
      },
      {
        destination: "/dev/pts",
        type: "devpts",
        source: "devpts",
        options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
      },
      {
        destination: "/dev/shm",
        type: "tmpfs",
        source: "shm",
        options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
      },
      { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      // The pod's emptyDir at /tmp.
      { destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777", "size=65536k"] },
    ],
    linux: {
      namespaces: [{ type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      maskedPaths: [
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/sys/firmware",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
}

/** Every file under dir, relative to it. */
function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

/**
 * Runs each argv in a fresh container of the image (like a pod's `command:`,
 * not appended to the ENTRYPOINT). With readonlyRoot false, `written` lists
 * the files each run left in the container's own layer (outside /tmp, which
 * is a tmpfs).
 */
export async function runImage(
  commands: string[][],
  options: { readonlyRoot: boolean; image?: string },
): Promise<(SmokeRun & { written: string[] })[]> {
  requireRoot("Running the image with runc");
  const runc = requireTool("runc");
  const image = options.image ?? IMAGE;
  const { stdout } = await buildah(["inspect", "--type", "image", image]);
  const config = (JSON.parse(stdout) as { OCIv1: { config?: ImageConfig } }).OCIv1.config ?? {};
  const work = mkdtempSync(join(imagesDir(), "smoke-"));
  const state = join(work, "runc");
  mkdirSync(state);
  const results: (SmokeRun & { written: string[] })[] = [];
  try {
    for (const [i, args] of commands.entries()) {
      const name = `feedcrawl-smoke-${process.pid}-${i}`;
      await buildah(["from", "--pull=never", "--name", name, image]);
      try {
        const rootfs = (await buildah(["mount", name])).stdout.trim();
        const bundle = join(work, name);
        mkdirSync(bundle);
        writeFileSync(
          join(bundle, "config.json"),
          JSON.stringify(runtimeSpec(rootfs, config, args, options.readonlyRoot)),
        );
        const result = await run(runc, ["--root", state, "run", "--bundle", bundle, name], {
          okCodes: [...Array(256).keys()],
        });
        // overlay: the container's own writes are in the layer's diff/, next to merged/.
        const written = listFiles(join(rootfs, "..", "diff"));
        results.push({ args, ...result, written });
      } finally {
        await buildah(["rm", name], { okCodes: [0, 1, 125] });
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return results;
}

/** What the runner pods and the operator pod start with, and what each must print. */
export const SMOKE_COMMANDS: { argv: string[]; code: number; output: RegExp }[] = [
  // The image's default command: ENTRYPOINT ["feedcrawl"] + CMD ["--help"].
  { argv: [], code: 0, output: /usage: feedcrawl <command>/ },
  { argv: ["feedcrawl", "--help"], code: 0, output: /usage: feedcrawl <command>/ },
  { argv: ["feedcrawl", "run", "--help"], code: 0, output: /feedcrawl run/ },
  { argv: ["feedcrawl", "operator", "--help"], code: 0, output: /feedcrawl operator/ },
  // No spec mounted, no pod env: a configuration error (exit 2) after loading the runner's modules.
  { argv: ["feedcrawl", "run"], code: 2, output: /Runner configuration is invalid/ },
  // The image runs the compiled JavaScript: no TypeScript source outside node_modules.
  {
    argv: ["sh", "-c", "readlink /usr/local/bin/feedcrawl; find /app -name '*.ts' -not -path '*/node_modules/*'"],
    code: 0,
    output: /^\/app\/bin\/feedcrawl\.js\n$/,
  },
];

/** The pod's constraints themselves: uid, /tmp writable, the root filesystem not. */
const CONSTRAINTS = {
  argv: ["sh", "-c", "id -u; touch /tmp/probe && echo tmp-writable; touch /app/probe || echo root-read-only"],
  output: /^65532\ntmp-writable\n.*root-read-only/s,
};

export interface SmokeReport {
  runs: SmokeRun[];
  /** Files a command wrote outside /tmp (would fail under readOnlyRootFilesystem). */
  writesOutsideTmp: { argv: string[]; files: string[] }[];
  problems: string[];
}

const shown = (argv: string[]) => (argv.length > 0 ? argv.join(" ") : "(image default command)");

/** The image as a restricted pod runs it; `problems` is empty when it works. */
export async function smokeTest(image = IMAGE): Promise<SmokeReport> {
  const problems: string[] = [];
  const commands = SMOKE_COMMANDS.map((c) => c.argv);
  const runs = await runImage([...commands, CONSTRAINTS.argv], { readonlyRoot: true, image });
  for (const [i, expected] of [...SMOKE_COMMANDS, { ...CONSTRAINTS, code: 0 }].entries()) {
    const got = runs[i]!;
    const output = got.stdout + got.stderr;
    if (got.code !== expected.code || !expected.output.test(output)) {
      problems.push(`${shown(got.args)}: exit ${got.code} (want ${expected.code}), output:\n${output.trim()}`);
    }
  }
  const writable = await runImage(commands, { readonlyRoot: false, image });
  const writesOutsideTmp = writable
    .filter((r) => r.written.length > 0)
    .map((r) => ({ argv: r.args, files: r.written }));
  for (const w of writesOutsideTmp) problems.push(`${shown(w.argv)} writes outside /tmp: ${w.files.join(", ")}`);
  return { runs, writesOutsideTmp, problems };
}
