// The test command (`npm test`): finds test/**/*.test.ts, builds what the
// selected tests need and is missing (test binaries, the image), runs them
// in two phases and ends the output with one line for both: `N passed, N failed`.
//
//   phase A  unit tests and *.int.test.ts on the API-only platform (started
//            once, when an integration test that needs it is selected)
//   phase B  *.node.test.ts on a platform with a real node, started after
//            phase A's platform stopped (one node per machine), with the
//            image built from the Dockerfile imported into it
//
//   npm test                     every test
//   npm test -- --unit           only the tests that need no platform
//   npm test -- test/feeds a.ts  only these files / folders
//   npm test -- --keep           keep the platforms' work dirs (logs, data) even on success
//
// An integration test that starts what it needs itself says so in one of its
// first lines, `// feedcrawl-test-needs: testbin image` (either or both, or
// `nothing`): it gets no shared platform, and run.ts only builds what it names.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, globSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { binaryPath, MissingBinaryError } from "./platform/binaries.ts";
import { importImage } from "./platform/image/build.ts";
import { type RunningPlatform, startPlatform } from "./platform/platform.ts";
import { type BuildPart, NODE_PARTS, PLATFORM_PARTS, prepare } from "./platform/prepare.ts";
import { type Counts, summaryLine } from "./platform/summary-reporter.ts";

const root = resolve(import.meta.dirname, "..");
const PLATFORM_VARS = [
  "FEEDCRAWL_TEST_KUBECONFIG",
  "FEEDCRAWL_TEST_APISERVER",
  "FEEDCRAWL_TEST_CA",
  "FEEDCRAWL_TEST_S3_ENDPOINT",
  "FEEDCRAWL_TEST_S3_ACCESS_KEY",
  "FEEDCRAWL_TEST_S3_SECRET_KEY",
  "FEEDCRAWL_TEST_TOXIPROXY",
  "FEEDCRAWL_TEST_WORKDIR",
];
const NODE_VARS = [
  "FEEDCRAWL_NODE_HOST",
  "FEEDCRAWL_NODE_SITE_HOSTS",
  "FEEDCRAWL_NODE_NAME",
  "FEEDCRAWL_CONTAINERD_ADDRESS",
];

function fail(message: string): never {
  console.error(`test/run.ts: ${message}`);
  process.exit(1);
}

function assertNode24(): void {
  const major = Number(process.versions.node.split(".")[0]);
  if (major !== 24) {
    fail(
      `Node ${process.versions.node} at ${process.execPath} runs the tests, but feedcrawl's tests need Node 24.x. ` +
        "Run them with `npm test` (npm puts node_modules/.bin/node, Node 24, first on PATH) after `npm ci`.",
    );
  }
}

function discover(paths: string[]): string[] {
  const all = (dir: string) =>
    globSync("**/*.test.ts", { cwd: dir, exclude: (name) => name === "node_modules" }).map((f) => join(dir, f));
  if (paths.length === 0) return all(join(root, "test"));
  const files: string[] = [];
  for (const p of paths) {
    const abs = resolve(p);
    if (!existsSync(abs)) fail(`${p} does not exist`);
    if (statSync(abs).isDirectory()) {
      const found = all(abs);
      if (found.length === 0) fail(`${p} holds no *.test.ts file`);
      files.push(...found);
    } else {
      files.push(abs);
    }
  }
  return [...new Set(files)];
}

interface Needs {
  /** The shared platform of its phase. */
  platform: boolean;
  parts: BuildPart[];
  image: boolean;
}

const isNodeTest = (f: string) => f.endsWith(".node.test.ts");
const isIntTest = (f: string) => f.endsWith(".int.test.ts");

/** What a test file needs: by its name, or by its `// feedcrawl-test-needs:` line. */
function needsOf(file: string): Needs {
  if (isNodeTest(file)) return { platform: true, parts: NODE_PARTS, image: true };
  if (!isIntTest(file)) return { platform: false, parts: [], image: false };
  const head = readFileSync(file, "utf8").slice(0, 4000);
  const declared = /^\/\/ feedcrawl-test-needs:(.*)$/m.exec(head)?.[1]?.trim().split(/\s+/);
  if (!declared) return { platform: true, parts: PLATFORM_PARTS, image: false };
  const unknown = declared.filter((w) => !["testbin", "image", "nothing"].includes(w));
  if (unknown.length > 0) fail(`${relative(root, file)}: unknown feedcrawl-test-needs ${unknown.join(" ")}`);
  return { platform: false, parts: declared.includes("testbin") ? NODE_PARTS : [], image: declared.includes("image") };
}

/** PATH with the built kubectl and helm (and ctr, crictl) first, so tests and their children can run them by name. */
function pathWithTools(): string {
  const dirs: string[] = [];
  for (const name of ["kubectl", "helm", "ctr", "crictl"] as const) {
    try {
      dirs.push(dirname(binaryPath(name)));
    } catch (err) {
      if (!(err instanceof MissingBinaryError)) throw err;
    }
  }
  return [...new Set(dirs), process.env.PATH ?? ""].join(delimiter);
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

interface Phase {
  name: string;
  files: string[];
  /** Start a node with the platform. */
  node: boolean;
  needsPlatform: boolean;
  /** The exported platform this phase may use instead of starting one. */
  reusable: boolean;
}

/** The run's state, for the signal handler. */
const current: { child?: ChildProcess; platform?: RunningPlatform; interrupted?: NodeJS.Signals } = {};

async function runPhase(
  phase: Phase,
  baseEnv: NodeJS.ProcessEnv,
  options: { keep: boolean; imageArchive?: string },
): Promise<Counts> {
  const counts: Counts = { passed: 0, failed: 0, skipped: 0 };
  const env: NodeJS.ProcessEnv = { ...baseEnv };
  let workDir: string | undefined;
  let platform: RunningPlatform | undefined;
  let platformFailed = false;
  if (!phase.node) for (const name of NODE_VARS) delete env[name];
  if (phase.needsPlatform && phase.reusable) {
    console.log(
      `Using the running platform${phase.node ? " and node" : ""} (FEEDCRAWL_TEST_APISERVER=${baseEnv.FEEDCRAWL_TEST_APISERVER})`,
    );
  } else if (phase.needsPlatform) {
    for (const name of [...PLATFORM_VARS, ...NODE_VARS]) delete env[name];
    workDir = mkdtempSync(join(tmpdir(), phase.node ? "feedcrawl-node-test-" : "feedcrawl-test-"));
    const started = Date.now();
    console.log(`Starting the test platform${phase.node ? " with a node" : ""} in ${workDir}`);
    try {
      platform = await startPlatform({ workDir, node: phase.node, ...(phase.node ? { log: console.log } : {}) });
      current.platform = platform;
      console.log(`Test platform${phase.node ? " and node" : ""} ready in ${seconds(started)}`);
      Object.assign(env, platform.env);
    } catch (err) {
      console.error(`test/run.ts: the test platform did not start: ${(err as Error).message}`);
      platformFailed = true;
    }
  }
  if (!platformFailed && phase.node && options.imageArchive && !current.interrupted) {
    const address = env.FEEDCRAWL_CONTAINERD_ADDRESS ?? "";
    console.log(`[image] importing localhost/feedcrawl:dev into the node's containerd at ${address} (~10 s)`);
    try {
      console.log(`  imported in ${(await importImage(address, options.imageArchive)).toFixed(1)} s`);
    } catch (err) {
      console.error(`test/run.ts: importing the image failed: ${(err as Error).message}`);
      platformFailed = true;
    }
  }

  let ok = false;
  if (platformFailed) {
    counts.failed = 1;
  } else if (!current.interrupted) {
    // Node test files share one cluster (cluster-wide CRDs, one chart release): one file at a time.
    Object.assign(counts, await runTests(phase.files, env, phase.node ? 1 : 2));
    ok = counts.failed === 0;
  }

  if (platform) {
    const stopping = Date.now();
    try {
      await platform.stop();
      if (phase.node) console.log(`Test platform and node stopped in ${seconds(stopping)}`);
    } catch (err) {
      console.error(`test/run.ts: stopping the test platform failed: ${(err as Error).message}`);
      counts.failed++;
      ok = false;
    }
    current.platform = undefined;
  }
  if (workDir) {
    if (ok && !options.keep && !platformFailed) rmSync(workDir, { recursive: true, force: true });
    else console.log(`Platform logs kept in ${join(workDir, "logs")}`);
  }
  return counts;
}

/** `node --test` over the files; resolves to its closing counts (a crash counts as one failure). */
async function runTests(files: string[], env: NodeJS.ProcessEnv, concurrency: number): Promise<Counts> {
  const summaryFile = join(mkdtempSync(join(tmpdir(), "feedcrawl-summary-")), "summary.txt");
  const timeoutMs = Number(process.env.FEEDCRAWL_TEST_TIMEOUT_MS ?? 180_000);
  const args = [
    "--test",
    `--test-concurrency=${concurrency}`,
    `--test-timeout=${timeoutMs}`,
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    `--test-reporter=${join(root, "test", "platform", "summary-reporter.ts")}`,
    `--test-reporter-destination=${summaryFile}`,
    ...files.map((f) => relative(root, f)),
  ];
  const code = await new Promise<number>((resolveCode) => {
    const child = spawn(process.execPath, args, { cwd: root, env, stdio: ["ignore", "inherit", "inherit"] });
    current.child = child;
    child.on("exit", (c, signal) => resolveCode(c ?? (signal ? 1 : 0)));
    child.on("error", (err) => {
      console.error(`test/run.ts: could not run node --test: ${err.message}`);
      resolveCode(1);
    });
  });
  current.child = undefined;
  const summary = existsSync(summaryFile) ? readFileSync(summaryFile, "utf8").trim() : "";
  rmSync(dirname(summaryFile), { recursive: true, force: true });
  const match = /^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?/.exec(summary);
  const counts: Counts = match
    ? { passed: Number(match[1]), failed: Number(match[2]), skipped: Number(match[3] ?? 0) }
    : { passed: 0, failed: 1, skipped: 0 };
  // node --test failed although no test did (e.g. a file that could not load): count it.
  if ((code !== 0 || current.interrupted) && counts.failed === 0) counts.failed = 1;
  return counts;
}

async function main(): Promise<number> {
  assertNode24();
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { unit: { type: "boolean", default: false }, keep: { type: "boolean", default: false } },
  });
  let files = discover(positionals).sort();
  if (values.unit) files = files.filter((f) => !isIntTest(f) && !isNodeTest(f));
  if (files.length === 0) fail("no test file selected");
  const needs = new Map(files.map((f) => [f, needsOf(f)]));
  const nodeFiles = files.filter(isNodeTest);
  const phaseA = files.filter((f) => !isNodeTest(f));

  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      current.interrupted = signal;
      console.error(`test/run.ts: ${signal}: stopping the tests and the platform`);
      // The tests get the signal too when it came from the terminal; forward it otherwise.
      if (current.child) current.child.kill(signal);
      // Still starting: exiting runs process.ts's exit hook, which kills every server started so far.
      else if (current.platform) void current.platform.stop().finally(() => process.exit(130));
      else process.exit(130);
    });
  }

  // Build what is missing before starting anything (FEEDCRAWL_NO_BUILD=1: fail instead).
  const all = [...needs.values()];
  const preparing = Date.now();
  let imageArchive: string | undefined;
  try {
    const prepared = await prepare({
      parts: [...new Set(all.flatMap((n) => n.parts))],
      node: nodeFiles.length > 0,
      image: all.some((n) => n.image),
    });
    imageArchive = prepared.image?.archive;
  } catch (err) {
    console.error(`test/run.ts: ${(err as Error).message}`);
    console.log(summaryLine({ passed: 0, failed: 1, skipped: 0 }));
    return 1;
  }
  if (Date.now() - preparing > 2000) console.log(`Test binaries and images ready in ${seconds(preparing)}`);

  const baseEnv: NodeJS.ProcessEnv = { ...process.env, PATH: pathWithTools() };
  const exported = PLATFORM_VARS.every((name) => process.env[name]);
  const exportedNode = exported && NODE_VARS.every((name) => process.env[name]);
  const phases: Phase[] = [
    {
      name: "A",
      files: phaseA,
      node: false,
      needsPlatform: phaseA.some((f) => needs.get(f)?.platform),
      // A node platform runs the real Job controller, which would fight the tests that play it.
      reusable: exported && !process.env.FEEDCRAWL_NODE_HOST,
    },
    { name: "B", files: nodeFiles, node: true, needsPlatform: true, reusable: exportedNode },
  ];
  const total: Counts = { passed: 0, failed: 0, skipped: 0 };
  for (const phase of phases) {
    if (phase.files.length === 0 || current.interrupted) continue;
    if (phase.node) console.log(`\nPhase B: ${phase.files.length} node test file(s) on a platform with a real node`);
    const counts = await runPhase(phase, baseEnv, { keep: values.keep, ...(imageArchive ? { imageArchive } : {}) });
    total.passed += counts.passed;
    total.failed += counts.failed;
    total.skipped += counts.skipped;
  }
  if (current.interrupted && total.failed === 0) total.failed = 1;
  if (total.passed + total.failed === 0) {
    console.error("test/run.ts: no test ran");
    total.failed = 1;
  }
  // The closing line, last in the output.
  console.log(summaryLine(total));
  return total.failed === 0 ? 0 : 1;
}

process.exitCode = await main();
