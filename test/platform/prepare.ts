// Builds what a test run (or the cluster demo) needs and is missing: the test
// binaries of build-testbin.sh, one part at a time with a line naming it and
// its expected cold time, and the project image (ensureImage). `npm test`
// calls it before starting anything, so a fresh clone needs no `npm run
// testbin` first. FEEDCRAWL_NO_BUILD=1 turns the building off: what is missing
// then fails with the command that builds it. A build that fails fails the
// run; nothing is ever skipped.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter } from "node:path";
import {
  type BinaryName,
  binaryPath,
  cniBinDir,
  imageArchive,
  MissingBinaryError,
  requireHostTools,
  testbinDir,
} from "./binaries.ts";
import { BASE_IMAGE, baseInputs, baseIsCurrent } from "./image/base.ts";
import { ensureImage, type ImageReport } from "./image/image.ts";
import { requireRoot, requireTool } from "./image/tools.ts";

/** build-testbin.sh's parts, in its order. */
export type BuildPart =
  | "etcd"
  | "versitygw"
  | "helm"
  | "toxiproxy"
  | "promtool"
  | "k8s"
  | "containerd"
  | "crictl"
  | "cni"
  | "images";

/** What the API-only platform starts (and helm and promtool, which tests run by name). */
export const PLATFORM_PARTS: BuildPart[] = ["etcd", "versitygw", "helm", "toxiproxy", "promtool", "k8s"];
/** Everything: the platform and a node (its binaries, CNI plugins, the pause and podcheck images). */
export const NODE_PARTS: BuildPart[] = [...PLATFORM_PARTS, "containerd", "crictl", "cni", "images"];

/** Cold build time on a 2-core machine (docs/testing.md), in seconds. */
export const EXPECTED_SECONDS: Record<BuildPart, number> = {
  etcd: 120,
  versitygw: 95,
  helm: 150,
  toxiproxy: 15,
  promtool: 240,
  k8s: 1040,
  containerd: 200,
  crictl: 65,
  cni: 20,
  images: 10,
};

const K8S: BinaryName[] = [
  "kube-apiserver",
  "kube-controller-manager",
  "kubectl",
  "kubelet",
  "kube-scheduler",
  "kube-proxy",
];

/** Throws a MissingBinaryError when part of the part is not built. */
const checks: Record<BuildPart, () => void> = {
  etcd: () => binaryPath("etcd"),
  versitygw: () => binaryPath("versitygw"),
  helm: () => binaryPath("helm"),
  toxiproxy: () => binaryPath("toxiproxy-server"),
  promtool: () => binaryPath("promtool"),
  k8s: () => {
    for (const name of K8S) binaryPath(name);
  },
  containerd: () => {
    for (const name of ["containerd", "ctr", "containerd-shim-runc-v2"] as const) binaryPath(name);
  },
  crictl: () => binaryPath("crictl"),
  cni: () => cniBinDir(),
  images: () => {
    imageArchive("pause");
    imageArchive("podcheck");
  },
};

export function missingParts(parts: BuildPart[]): BuildPart[] {
  return [...new Set(parts)].filter((part) => {
    try {
      checks[part]();
      return false;
    } catch (err) {
      if (err instanceof MissingBinaryError) return true;
      throw err;
    }
  });
}

/** Throws the first missing part's MissingBinaryError, naming every missing part. */
export function requireParts(parts: BuildPart[]): void {
  const missing = missingParts(parts);
  const first = missing[0];
  if (!first) return;
  try {
    checks[first]();
  } catch (err) {
    throw new MissingBinaryError(`Missing test binaries (${missing.join(", ")}): ${(err as Error).message}`);
  }
}

export const minutes = (seconds: number): string =>
  seconds < 90 ? `~${Math.round(seconds)} s` : `~${Math.round(seconds / 60)} min`;

export function buildingDisabled(): boolean {
  return !!process.env.FEEDCRAWL_NO_BUILD && process.env.FEEDCRAWL_NO_BUILD !== "0";
}

export interface BuildOptions {
  log?: (line: string) => void;
  /** The build script (tests point it elsewhere); default build-testbin.sh. */
  script?: string;
}

/** Runs build-testbin.sh for each part in turn; throws when one fails. */
export async function buildParts(parts: BuildPart[], options: BuildOptions = {}): Promise<void> {
  const log = options.log ?? ((line: string) => console.log(line));
  const script = options.script ?? new URL("build-testbin.sh", import.meta.url).pathname;
  // .ci/run's Go; build-testbin.sh says what to install when there is none.
  const path = [process.env.PATH ?? "", existsSync("/usr/local/go/bin") ? "/usr/local/go/bin" : ""]
    .filter(Boolean)
    .join(delimiter);
  for (const [i, part] of parts.entries()) {
    log(`[build ${i + 1}/${parts.length}] ${part} (${minutes(EXPECTED_SECONDS[part])} cold on 2 cores)`);
    const started = Date.now();
    const code = await new Promise<number>((resolve) => {
      // Its output to stderr: `local-cluster up` keeps stdout for the export lines.
      const child = spawn("bash", [script, part], { env: { ...process.env, PATH: path }, stdio: ["ignore", 2, 2] });
      child.on("error", () => resolve(127));
      child.on("exit", (c, signal) => resolve(c ?? (signal ? 128 : 1)));
    });
    if (code !== 0) {
      throw new Error(
        `building ${part} failed (bash ${script} ${part} exited ${code}; its output is above). ` +
          "The tests that need it cannot run: fix the build (Go ≥ 1.26 and the Go module proxy, gcc for the images) " +
          "or run `npm run testbin` by hand.",
      );
    }
    log(`  ${part} built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
}

export interface PrepareOptions {
  /** Test binaries the run needs. */
  parts: BuildPart[];
  /** The run starts a node: also checks root and the host packages up front. */
  node?: boolean;
  /** The run needs localhost/feedcrawl:dev (built, not imported: the caller imports it into its node). */
  image?: boolean;
  log?: (line: string) => void;
  /** Default: true unless FEEDCRAWL_NO_BUILD is set. */
  build?: boolean;
  script?: string;
}

/**
 * Makes sure everything the run needs is built, building what is missing
 * (or failing with the build hint when building is off). Host packages and
 * root are checked first, so a run that cannot start a node fails before a
 * 30-minute build rather than after it.
 */
export async function prepare(options: PrepareOptions): Promise<{ image?: ImageReport }> {
  const log = options.log ?? ((line: string) => console.log(line));
  const build = options.build ?? !buildingDisabled();
  if (options.node) {
    if (process.getuid?.() !== 0) throw new Error("The test node needs root (mounts, bridge, iptables, cgroups).");
    requireHostTools();
  }
  if (options.image) {
    requireRoot("Building the image");
    requireTool("buildah");
    requireTool("runc");
  }
  const missing = missingParts(options.parts);
  if (missing.length > 0) {
    if (!build) {
      throw new MissingBinaryError(
        `Missing test binaries (${missing.join(", ")}) in ${testbinDir()}, and FEEDCRAWL_NO_BUILD is set: ` +
          `build them with \`npm run testbin\` (bash test/platform/build-testbin.sh ${missing.join(" ")}).`,
      );
    }
    const total = missing.reduce((sum, part) => sum + EXPECTED_SECONDS[part], 0);
    log(
      `Building the missing test binaries into ${testbinDir()}: ${missing.join(", ")} — ${minutes(total)} in all ` +
        "on 2 cores, once (later runs reuse them; FEEDCRAWL_NO_BUILD=1 turns this off)",
    );
    await buildParts(missing, { log, ...(options.script ? { script: options.script } : {}) });
    // The build said it succeeded: what it should have made must be there now.
    requireParts(missing);
  }
  if (!options.image) return {};
  if (!build && !(await baseIsCurrent(await baseInputs()))) {
    throw new MissingBinaryError(
      `${BASE_IMAGE} is missing or outdated and FEEDCRAWL_NO_BUILD is set: make it with \`npm run image\` ` +
        "(debootstrap from the Debian mirror, ~1-2 min).",
    );
  }
  // Always brought up to date: it is the code under test (offline; seconds when only the source changed).
  return { image: await ensureImage({ containerdAddress: "", log }) };
}
