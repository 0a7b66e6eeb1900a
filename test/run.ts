// The test command (`npm test`): finds test/**/*.test.ts, starts the test
// platform once when an integration test (*.int.test.ts) is selected, runs
// everything with `node --test`, tears the platform down and ends the output
// with one line: `N passed, N failed`.
//
//   npm test                     every test
//   npm test -- --unit           only the tests that need no platform
//   npm test -- test/feeds a.ts  only these files / folders
//   npm test -- --keep           keep the platform's work dir (logs, data) even on success
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, globSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { binaryPath, MissingBinaryError } from "./platform/binaries.ts";
import { type RunningPlatform, startPlatform } from "./platform/platform.ts";

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

/** PATH with the built kubectl and helm first, so tests and their children can run them by name. */
function pathWithTools(): string {
  const dirs: string[] = [];
  for (const name of ["kubectl", "helm"] as const) {
    try {
      dirs.push(dirname(binaryPath(name)));
    } catch (err) {
      if (!(err instanceof MissingBinaryError)) throw err;
    }
  }
  return [...new Set(dirs), process.env.PATH ?? ""].join(delimiter);
}

async function main(): Promise<number> {
  assertNode24();
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { unit: { type: "boolean", default: false }, keep: { type: "boolean", default: false } },
  });
  let files = discover(positionals).sort();
  if (values.unit) files = files.filter((f) => !f.endsWith(".int.test.ts"));
  if (files.length === 0) fail("no test file selected");
  const needsPlatform = files.some((f) => f.endsWith(".int.test.ts"));

  let platform: RunningPlatform | undefined;
  let workDir: string | undefined;
  let child: ChildProcess | undefined;
  let interrupted: NodeJS.Signals | undefined;
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      interrupted = signal;
      console.error(`test/run.ts: ${signal}: stopping the tests and the platform`);
      // The tests get the signal too when it came from the terminal; forward it otherwise.
      if (child) child.kill(signal);
      // Still starting: exiting runs process.ts's exit hook, which kills every server started so far.
      else if (platform) void platform.stop().finally(() => process.exit(130));
      else process.exit(130);
    });
  }

  const env: NodeJS.ProcessEnv = { ...process.env, PATH: pathWithTools() };
  if (needsPlatform) {
    const given = PLATFORM_VARS.filter((name) => process.env[name]);
    if (given.length === PLATFORM_VARS.length) {
      console.log(`Using the running platform (FEEDCRAWL_TEST_APISERVER=${process.env.FEEDCRAWL_TEST_APISERVER})`);
    } else {
      workDir = mkdtempSync(join(tmpdir(), "feedcrawl-test-"));
      const started = Date.now();
      console.log(`Starting the test platform in ${workDir}`);
      try {
        platform = await startPlatform({ workDir });
      } catch (err) {
        console.error(`test/run.ts: the test platform did not start: ${(err as Error).message}`);
        if (err instanceof MissingBinaryError) rmSync(workDir, { recursive: true, force: true });
        else console.error(`Platform logs kept in ${join(workDir, "logs")}`);
        console.log("0 passed, 1 failed");
        return 1;
      }
      console.log(`Test platform ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      Object.assign(env, platform.env);
    }
  }

  const summaryFile = join(mkdtempSync(join(tmpdir(), "feedcrawl-summary-")), "summary.txt");
  const timeoutMs = Number(process.env.FEEDCRAWL_TEST_TIMEOUT_MS ?? 180_000);
  const args = [
    "--test",
    "--test-concurrency=2",
    `--test-timeout=${timeoutMs}`,
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    `--test-reporter=${join(root, "test", "platform", "summary-reporter.ts")}`,
    `--test-reporter-destination=${summaryFile}`,
    ...files.map((f) => relative(root, f)),
  ];
  const code = await new Promise<number>((resolveCode) => {
    child = spawn(process.execPath, args, { cwd: root, env, stdio: ["ignore", "inherit", "inherit"] });
    child.on("exit", (c, signal) => resolveCode(c ?? (signal ? 1 : 0)));
    child.on("error", (err) => {
      console.error(`test/run.ts: could not run node --test: ${err.message}`);
      resolveCode(1);
    });
  });

  const summary = existsSync(summaryFile) ? readFileSync(summaryFile, "utf8").trim() : "";
  rmSync(dirname(summaryFile), { recursive: true, force: true });
  const counts = /^(\d+) passed, (\d+) failed/.exec(summary);
  const ok = code === 0 && !interrupted && counts !== null && Number(counts[2]) === 0 && Number(counts[1]) > 0;

  if (platform) {
    await platform.stop();
    if (ok && !values.keep && workDir) rmSync(workDir, { recursive: true, force: true });
    else console.log(`Platform logs kept in ${join(workDir ?? "", "logs")}`);
  }
  if (counts && Number(counts[1]) === 0 && Number(counts[2]) === 0) console.error("test/run.ts: no test ran");
  // The closing line, last in the output.
  console.log(summary || "0 passed, 1 failed");
  return ok ? 0 : code || 1;
}

process.exitCode = await main();
