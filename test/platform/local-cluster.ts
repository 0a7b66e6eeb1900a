// The test platform by hand: `npm run -s local-cluster -- up|down|status|env`.
// `up` starts the same servers as `npm test` plus a Ready node (kubelet,
// containerd, kube-proxy, kube-scheduler; `up --no-node` for the API-only
// platform) and leaves them running, with state (data, logs, PIDs) in
// .local-cluster/ at the repo root (FEEDCRAWL_LOCAL_CLUSTER_DIR elsewhere),
// and prints the `export` lines for a shell:
// eval "$(npm run -s local-cluster -- up)". Test binaries that are missing
// are built first (prepare.ts; FEEDCRAWL_NO_BUILD=1 fails instead).
// `down` removes the node from the machine (pods, mounts, bridge, iptables
// chains), stops the servers by their saved PIDs and removes the folder.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { binaryPath } from "./binaries.ts";
import { execQuiet } from "./node/exec.ts";
import { isRunning, type NodeState, readNodeState, stopNode } from "./node/node.ts";
import { startPlatform } from "./platform.ts";
import { NODE_PARTS, PLATFORM_PARTS, prepare } from "./prepare.ts";
import { httpOk } from "./probe.ts";
import { isAlive, stopPid } from "./process.ts";

const root = resolve(import.meta.dirname, "..", "..");
const stateDir = resolve(process.env.FEEDCRAWL_LOCAL_CLUSTER_DIR || join(root, ".local-cluster"));
const stateFile = join(stateDir, "state.json");

interface State {
  startedAt: string;
  processes: { name: string; pid: number; log: string }[];
  env: Record<string, string>;
  node?: NodeState;
}

function readState(): State | undefined {
  if (!existsSync(stateFile)) return undefined;
  return JSON.parse(readFileSync(stateFile, "utf8")) as State;
}

const quote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

function exportLines(state: State): string {
  const tools = [dirname(binaryPath("kubectl")), dirname(binaryPath("helm"))];
  // ctr and crictl, to import images and look at the node's containers.
  if (state.node) tools.push(dirname(binaryPath("ctr")), dirname(binaryPath("crictl")));
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

async function up(args: string[]): Promise<number> {
  const unknown = args.filter((a) => a !== "--no-node");
  if (unknown.length > 0) throw new Error(`up: unknown argument ${unknown.join(" ")} (only --no-node)`);
  const withNode = !args.includes("--no-node");
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
  // Builds the missing test binaries first (FEEDCRAWL_NO_BUILD=1: fails naming them).
  await prepare({
    parts: withNode ? NODE_PARTS : PLATFORM_PARTS,
    node: withNode,
    log: (line) => console.error(`local-cluster: ${line}`),
  });
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  const started = Date.now();
  console.error(
    `local-cluster: starting etcd, kube-apiserver, kube-controller-manager, versitygw, toxiproxy${withNode ? " and a node" : ""} in ${stateDir}`,
  );
  const platform = await startPlatform({
    workDir: stateDir,
    node: withNode,
    log: (line) => console.error(`local-cluster: ${line}`),
  });
  // From here the servers outlive this command.
  for (const p of platform.processes) p.release();
  const state: State = {
    startedAt: new Date().toISOString(),
    processes: platform.processes.map((p) => ({ name: p.spec.name, pid: p.pid, log: p.spec.logFile })),
    env: platform.env,
    ...(platform.node ? { node: platform.node } : {}),
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
    console.error(`local-cluster: not running (no ${stateFile})`);
    rmSync(stateDir, { recursive: true, force: true });
    // A node whose test run was killed: its processes are dead, its bridge, rules and mounts are not.
    const orphan = readNodeState();
    if (orphan && !orphan.processes.some(isRunning)) {
      await stopNode(orphan);
      console.error(`local-cluster: removed a test node left by a killed run (work dir ${orphan.workDir})`);
    }
    return 0;
  }
  if (state.node) {
    const started = Date.now();
    // The node's processes and pods, then the servers (they use the bridge address), then the bridge.
    await stopNode(state.node, async (p) => {
      const t = Date.now();
      await stopPid(p.pid);
      console.error(`local-cluster: stopped ${p.name} (pid ${p.pid}) in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    });
    console.error(
      `local-cluster: removed the node ${state.node.name} and stopped the servers (processes, pods, mounts, ` +
        `cgroups, iptables chains, bridge ${state.node.net.bridge}) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }
  // Reverse start order: controller manager and apiserver before etcd.
  for (const p of [...state.processes].reverse()) {
    if (!isAlive(p.pid)) continue;
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
  if (state.node) {
    const result = await execQuiet(binaryPath("kubectl"), [
      `--kubeconfig=${state.env.FEEDCRAWL_TEST_KUBECONFIG ?? ""}`,
      "get",
      "node",
      state.node.name,
      "-o",
      'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
    ]);
    const nodeReady = result.code === 0 && result.stdout.trim() === "True";
    healthy &&= nodeReady;
    console.log(
      `node ${state.node.name} (${state.node.net.bridge} ${state.node.net.address}): ${nodeReady ? "Ready" : `NOT READY ${result.stderr.trim()}`}`,
    );
  }
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

const commands: Record<string, (args: string[]) => number | Promise<number>> = { up, down, status, env };
const command = commands[process.argv[2] ?? ""];
if (!command) {
  console.error("usage: npm run -s local-cluster -- up [--no-node]|down|status|env");
  process.exitCode = 2;
} else {
  try {
    process.exitCode = await command(process.argv.slice(3));
  } catch (err) {
    console.error(`local-cluster: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
// The probe agent would keep the event loop alive for its keep-alive timeout.
process.exit();
