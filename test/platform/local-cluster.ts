// The test platform by hand: `npm run -s local-cluster -- up|down|status|env`.
// `up` starts the same servers as `npm test` and leaves them running, with
// state (data, logs, PIDs) in .local-cluster/ at the repo root, and prints the
// `export` lines for a shell: eval "$(npm run -s local-cluster -- up)".
// `down` stops them by their saved PIDs and removes the folder.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { binaryPath } from "./binaries.ts";
import { startPlatform } from "./platform.ts";
import { httpOk } from "./probe.ts";
import { isAlive, stopPid } from "./process.ts";

const root = resolve(import.meta.dirname, "..", "..");
const stateDir = join(root, ".local-cluster");
const stateFile = join(stateDir, "state.json");

interface State {
  startedAt: string;
  processes: { name: string; pid: number; log: string }[];
  env: Record<string, string>;
}

function readState(): State | undefined {
  if (!existsSync(stateFile)) return undefined;
  return JSON.parse(readFileSync(stateFile, "utf8")) as State;
}

const quote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

function exportLines(state: State): string {
  const tools = [dirname(binaryPath("kubectl")), dirname(binaryPath("helm"))];
  const vars: Record<string, string> = {
    KUBECONFIG: state.env.FEEDCRAWL_TEST_KUBECONFIG ?? "",
    ...state.env,
    AWS_ACCESS_KEY_ID: state.env.FEEDCRAWL_TEST_S3_ACCESS_KEY ?? "",
    AWS_SECRET_ACCESS_KEY: state.env.FEEDCRAWL_TEST_S3_SECRET_KEY ?? "",
    AWS_ENDPOINT_URL_S3: state.env.FEEDCRAWL_TEST_S3_ENDPOINT ?? "",
    AWS_REGION: state.env.FEEDCRAWL_TEST_S3_REGION ?? "us-east-1",
  };
  const lines = Object.entries(vars).map(([k, v]) => `export ${k}=${quote(v)}`);
  lines.push(`export PATH=${quote(tools.join(":"))}:"$PATH"`);
  return `${lines.join("\n")}\n`;
}

function running(state: State): boolean {
  return state.processes.every((p) => isAlive(p.pid));
}

async function up(): Promise<number> {
  const existing = readState();
  if (existing && running(existing)) {
    console.error(`local-cluster: already running (started ${existing.startedAt}); the exports again:`);
    process.stdout.write(exportLines(existing));
    return 0;
  }
  if (existing) {
    console.error("local-cluster: a previous cluster died; stopping what is left of it");
    await down();
  }
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  const started = Date.now();
  console.error(
    `local-cluster: starting etcd, kube-apiserver, kube-controller-manager, versitygw, toxiproxy in ${stateDir}`,
  );
  const platform = await startPlatform({ workDir: stateDir });
  // From here the servers outlive this command.
  for (const p of platform.processes) p.release();
  const state: State = {
    startedAt: new Date().toISOString(),
    processes: platform.processes.map((p) => ({ name: p.spec.name, pid: p.pid, log: p.spec.logFile })),
    env: platform.env,
  };
  writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`);
  console.error(
    `local-cluster: ready in ${((Date.now() - started) / 1000).toFixed(1)} s; logs in ${join(stateDir, "logs")}. ` +
      "Stop it with `npm run local-cluster -- down`.",
  );
  process.stdout.write(exportLines(state));
  return 0;
}

async function down(): Promise<number> {
  const state = readState();
  if (!state) {
    console.error("local-cluster: not running (no .local-cluster/state.json)");
    rmSync(stateDir, { recursive: true, force: true });
    return 0;
  }
  // Reverse start order: controller manager and apiserver before etcd.
  for (const p of [...state.processes].reverse()) {
    const started = Date.now();
    await stopPid(p.pid);
    console.error(`local-cluster: stopped ${p.name} (pid ${p.pid}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  rmSync(stateDir, { recursive: true, force: true });
  return 0;
}

async function status(): Promise<number> {
  const state = readState();
  if (!state) {
    console.log("local-cluster: not running");
    return 1;
  }
  let healthy = true;
  for (const p of state.processes) {
    const alive = isAlive(p.pid);
    healthy &&= alive;
    console.log(`${p.name.padEnd(24)} pid ${String(p.pid).padEnd(8)} ${alive ? "running" : "DEAD"}  log ${p.log}`);
  }
  const apiserver = state.env.FEEDCRAWL_TEST_APISERVER ?? "";
  const ready = await httpOk(`${apiserver}/readyz`, { caFile: state.env.FEEDCRAWL_TEST_CA ?? "" }).catch(() => false);
  healthy &&= ready;
  console.log(`${apiserver}/readyz: ${ready ? "ok" : "NOT READY"}`);
  return healthy ? 0 : 1;
}

function env(): number {
  const state = readState();
  if (!state) {
    console.error("local-cluster: not running; start it with `npm run local-cluster -- up`");
    return 1;
  }
  process.stdout.write(exportLines(state));
  return 0;
}

const commands: Record<string, () => number | Promise<number>> = { up, down, status, env };
const command = commands[process.argv[2] ?? ""];
if (!command) {
  console.error("usage: npm run -s local-cluster -- up|down|status|env");
  process.exitCode = 2;
} else {
  try {
    process.exitCode = await command();
  } catch (err) {
    console.error(`local-cluster: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
// The probe agent would keep the event loop alive for its keep-alive timeout.
process.exit();
