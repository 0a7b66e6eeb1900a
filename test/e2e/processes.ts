// The two kinds of local processes the end-to-end test runs in place of pods,
// both as tracked process groups (test/platform/process.ts) so a failing or
// interrupted test leaves none behind:
// - the operator, started from the container spec of the chart's Deployment
//   as the API server holds it, authenticated with a TokenRequest token of the
//   chart's ServiceAccount (so the chart's RBAC is what it runs with);
// - runner pods for the kubelet stand-in (test/operator/kubelet.ts): an
//   executor for `playJob` that runs each prepared pod like `spawnRunner`
//   does, but keeps hold of it so cleanup can kill it.
import { join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { mintToken, type PodExecutor, REPO_ROOT, writeTokenKubeconfig } from "../operator/kubelet.ts";
import { kubectl } from "../platform/fixtures.ts";
import { freePorts } from "../platform/ports.ts";
import { ManagedProcess } from "../platform/process.ts";

// biome-ignore lint/suspicious/noExplicitAny: manifests read back from the API are untyped JSON
type Any = Record<string, any>;

/** `feedcrawl …` (the image's entry on PATH) → this repo's CLI on this Node. */
function localCommand(command: string[], args: string[]): { command: string; args: string[] } {
  const [first, ...rest] = command;
  if (first === "feedcrawl")
    return { command: process.execPath, args: [join(REPO_ROOT, "bin/feedcrawl.ts"), ...rest, ...args] };
  if (!first) throw new Error("The container has no command");
  return { command: first, args: [...rest, ...args] };
}

/** Resolves once the process has exited: its exit code (128 for a signal, 1 when it could not start). */
function exitCode(process: ManagedProcess): Promise<number> {
  const child = process.child;
  if (!child) throw new Error(`${process.spec.name} was not started`);
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    child.once("error", () => resolve(1));
  });
}

export interface OperatorProcess {
  process: ManagedProcess;
  logPath: string;
  /** The ServiceAccount it authenticates as, e.g. system:serviceaccount:feedcrawl-system:fc-feedcrawl. */
  user: string;
  healthUrl: string;
  stop(): Promise<void>;
}

/**
 * Starts `feedcrawl operator` the way the chart's Deployment runs it: its
 * container args and env read from the API (ports moved to free loopback
 * ports, fieldRefs resolved), KUBECONFIG holding only a token of the
 * Deployment's ServiceAccount. Resolves once /readyz answers 200 (caches synced).
 */
export async function startChartOperator(options: {
  admin: KubeConfig;
  kubeconfig: string;
  namespace: string;
  deployment: string;
  workDir: string;
}): Promise<OperatorProcess> {
  const deployment: Any = JSON.parse(
    await kubectl(["-n", options.namespace, "get", "deployment", options.deployment, "-o", "json"], {
      kubeconfig: options.kubeconfig,
    }),
  );
  const podSpec: Any = deployment.spec.template.spec;
  const container: Any = podSpec.containers[0];
  const serviceAccount: string = podSpec.serviceAccountName;
  const token = await mintToken(options.admin, options.namespace, serviceAccount);
  const kubeconfigPath = writeTokenKubeconfig(options.admin, token, join(options.workDir, "operator", "kubeconfig"));

  const [metricsPort, healthPort] = await freePorts(2);
  const args = (container.args as string[]).map((arg) =>
    arg
      .replace(/^--metrics-addr=.*$/, `--metrics-addr=127.0.0.1:${metricsPort}`)
      .replace(/^--health-addr=.*$/, `--health-addr=127.0.0.1:${healthPort}`),
  );
  const podName = `${options.deployment}-e2e`;
  const env: Record<string, string> = {};
  for (const e of (container.env ?? []) as Any[]) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.fieldRef?.fieldPath === "metadata.name") env[e.name] = podName;
    else if (e.valueFrom?.fieldRef?.fieldPath === "metadata.namespace") env[e.name] = options.namespace;
    else throw new Error(`The operator stand-in cannot resolve env ${e.name}`);
  }
  const { command, args: argv } = localCommand(container.command ?? [], args);
  const logPath = join(options.workDir, "operator", "operator.log");
  const process_ = new ManagedProcess({
    name: "feedcrawl operator",
    command,
    args: argv,
    logFile: logPath,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: join(options.workDir, "operator"),
      ...env,
      KUBECONFIG: kubeconfigPath,
    },
  });
  const healthUrl = `http://127.0.0.1:${healthPort}`;
  await process_.startAndWait(
    async () => (await fetch(`${healthUrl}/readyz`, { signal: AbortSignal.timeout(2000) })).ok,
    60_000,
    "ready (/readyz)",
  );
  return {
    process: process_,
    logPath,
    user: `system:serviceaccount:${options.namespace}:${serviceAccount}`,
    healthUrl,
    stop: () => process_.stop(10_000),
  };
}

export interface RunnerPods {
  /** Pass to playJob({ execute }). */
  execute: PodExecutor;
  /** Log files of every pod started so far. */
  logs(): string[];
  /** Kills the pods still running (a test that failed half way). */
  stopAll(): Promise<void>;
}

/** Runs prepared runner pods as tracked local processes, with the pod's env only. */
export function runnerPods(): RunnerPods {
  const started: ManagedProcess[] = [];
  let stopped = false;
  return {
    execute: async (pod) => {
      // After cleanup began, a playJob still running in the background (a timed-out test) would retry the
      // killed pods: start nothing more, the pod "fails" at once.
      if (stopped) return 1;
      const { command, args } = localCommand(pod.command, pod.args);
      const runner = new ManagedProcess({
        name: `runner pod ${pod.index}`,
        command,
        args,
        logFile: pod.logPath,
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: pod.mounts["/tmp"] ?? REPO_ROOT,
          // The pod's /tmp is an emptyDir: the process's temp folder is its local copy.
          ...(pod.mounts["/tmp"] ? { TMPDIR: pod.mounts["/tmp"] } : {}),
          ...pod.env,
        },
      });
      started.push(runner);
      runner.start();
      return exitCode(runner);
    },
    logs: () => started.map((p) => p.spec.logFile),
    stopAll: async () => {
      stopped = true;
      await Promise.all(started.map((p) => p.stop()));
    },
  };
}
