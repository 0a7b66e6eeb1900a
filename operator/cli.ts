// `feedcrawl operator`: runs the controller.
//
//   feedcrawl operator [--leader-elect] [--namespace NS]... [--metrics-addr :8080]
//                      [--health-addr :8081] [--runner-image IMG]
//                      [--leader-election-namespace NS] [--leader-election-id NAME]
//                      [--webhook-private-networks LIST] [--feed-buckets LIST]
//                      [--leader-elect-lease-duration 15s] [--leader-elect-renew-deadline 10s]
//                      [--leader-elect-retry-period 2s] [--shutdown-grace 5s] [--log-level info]
//
// SIGTERM/SIGINT: Manager.stop() returns within the shutdown grace + 5 s; a
// watchdog exits 1 at the grace + 10 s should anything still hang.
import { parseArgs } from "node:util";
import { type Logger, pino } from "pino";
import { type KubeConfig, loadKubeConfig } from "../kube/kubeconfig.ts";
import { parseOrUsage } from "../lib/cli-args.ts";
import { Manager } from "./manager.ts";

const usage = `usage: feedcrawl operator [options]

  --leader-elect                     campaign for a coordination.k8s.io Lease; only the leader reconciles
  --leader-election-namespace NS     the Lease's namespace (default: $POD_NAMESPACE or "default")
  --leader-election-id NAME          the Lease's name (default: feedcrawl-operator)
  --namespace NS                     watch only this namespace (repeatable; default: all namespaces)
  --metrics-addr ADDR                Prometheus /metrics listen address (default :8080; "0" disables)
  --health-addr ADDR                 /healthz and /readyz listen address (default :8081; "0" disables)
  --runner-image IMG                 runner image when a CrawlJob sets none (default: $FEEDCRAWL_IMAGE or ghcr.io/feedcrawl/feedcrawl:latest)
  --webhook-private-networks LIST    CIDRs and in-cluster Service hosts a webhook may reach, comma-separated;
                                     a CrawlJob's allowPrivateNetworks can only narrow this (default:
                                     $FEEDCRAWL_WEBHOOK_PRIVATE_NETWORKS, else none: public addresses only)
  --feed-buckets LIST                buckets a CrawlFeed URI may name, comma-separated (default: any)
  --leader-elect-lease-duration D    how long others wait for a silent leader before taking over (default 15s)
  --leader-elect-renew-deadline D    the leader stops leading when it could not renew for this long (default 10s;
                                     shorter than the lease duration)
  --leader-elect-retry-period D      time between acquire/renew attempts (default 2s)
  --shutdown-grace D                 on SIGTERM, in-flight reconciles get this long before they are aborted
                                     (webhook POSTs are aborted once they are done); the process exits
                                     within it + 5 s (default 5s)
  --log-level LEVEL                  trace|debug|info|warn|error (default: info)

Durations D: 1500ms, 10s, 1m, or a number of seconds.
The kube config comes from KubeConfig.loadFromDefault(): in-cluster, $KUBECONFIG or ~/.kube/config.
`;

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, "": 1000 };

/** "1500ms" | "10s" | "1m" | "10" (seconds) -> milliseconds. */
function parseDuration(flag: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|)$/.exec(value.trim());
  if (!match) throw new Error(`--${flag}: "${value}" is not a duration (e.g. 1500ms, 10s, 1m)`);
  return Math.round(Number(match[1]) * DURATION_UNITS_MS[match[2]!]!);
}

/** "a, b,,c" -> ["a", "b", "c"] */
const list = (value: string) =>
  value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

export async function main(argv: string[]): Promise<number> {
  const values = parseOrUsage(
    "feedcrawl operator",
    usage,
    () => parse(argv),
    (v) => v.help,
  );
  if (typeof values === "number") return values;
  let timings: ReturnType<typeof durations>;
  try {
    timings = durations(values);
  } catch (err) {
    process.stderr.write(`feedcrawl operator: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  const logger = pino({
    level: values["log-level"],
    base: { component: "operator" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: ["*.authorization", "*.Authorization", "*.secret", "*.token"], censor: "[redacted]" },
  });

  let kc: KubeConfig;
  try {
    kc = loadKubeConfig();
  } catch (err) {
    logger.error({ error: (err as Error).message }, "Could not load a kube config");
    return 1;
  }

  const addr = (value: string) => (value === "0" || value === "" ? undefined : value);
  const stop = stopper();
  const manager = new Manager({
    kc,
    logger,
    namespaces: values.namespace ?? [],
    runnerImage: values["runner-image"] ?? process.env.FEEDCRAWL_IMAGE ?? "ghcr.io/feedcrawl/feedcrawl:latest",
    leaderElect: values["leader-elect"],
    leaderElectionNamespace: values["leader-election-namespace"] ?? process.env.POD_NAMESPACE ?? "default",
    leaderElectionId: values["leader-election-id"],
    metricsAddr: addr(values["metrics-addr"]),
    healthAddr: addr(values["health-addr"]),
    ...(values["webhook-private-networks"] !== undefined
      ? { webhookPrivateNetworks: list(values["webhook-private-networks"]) }
      : {}),
    ...(values["feed-buckets"] !== undefined ? { feedBuckets: list(values["feed-buckets"]) } : {}),
    ...timings,
    onFatal: (reason) => {
      logger.error({ reason }, "Operator stopping");
      stop.request(1);
    },
  });

  const onSignal = (signal: string) => {
    logger.info({ signal }, "Received a signal; shutting down");
    stop.request(0);
  };
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  process.once("SIGINT", () => onSignal("SIGINT"));
  return runUntilStopped(manager, logger, stop, timings.shutdownGraceMs);
}

/** The duration flags, checked: a renew deadline at or past the lease duration would let leaders overlap. */
function durations(values: ReturnType<typeof parse>) {
  const t = {
    leaseDurationMs: parseDuration("leader-elect-lease-duration", values["leader-elect-lease-duration"]),
    renewDeadlineMs: parseDuration("leader-elect-renew-deadline", values["leader-elect-renew-deadline"]),
    retryPeriodMs: parseDuration("leader-elect-retry-period", values["leader-elect-retry-period"]),
    shutdownGraceMs: parseDuration("shutdown-grace", values["shutdown-grace"]),
  };
  if (t.renewDeadlineMs >= t.leaseDurationMs) {
    throw new Error("--leader-elect-renew-deadline must be shorter than --leader-elect-lease-duration");
  }
  if (t.leaseDurationMs < 1000)
    throw new Error("--leader-elect-lease-duration: at least 1s (the Lease counts seconds)");
  return t;
}

/** A stop asked for by a signal, or by a lost Lease (which makes the exit code 1). */
function stopper() {
  let exitCode = 0;
  let resolve: () => void = () => {};
  const requested = new Promise<void>((r) => {
    resolve = r;
  });
  return {
    requested,
    get exitCode() {
      return exitCode;
    },
    request(code: number) {
      if (code !== 0) exitCode = code;
      resolve();
    },
  };
}

async function runUntilStopped(
  manager: Manager,
  logger: Logger,
  stop: ReturnType<typeof stopper>,
  shutdownGraceMs: number,
): Promise<number> {
  try {
    // A signal during start (e.g. caches that cannot sync while the CRDs are
    // missing) must still stop the process.
    const started = manager.start().then(() => true);
    started.catch(() => {}); // a late failure after a stop is not news
    if (!(await Promise.race([started, stop.requested.then(() => false)]))) {
      await manager.stop();
      return stop.exitCode;
    }
    logger.info(
      { identity: manager.identity, metricsPort: manager.metricsPort, healthPort: manager.healthPort },
      "Operator started",
    );
  } catch (err) {
    logger.error({ error: (err as Error).message }, "Operator failed to start");
    await manager.stop().catch(() => {});
    return 1;
  }
  await stop.requested;
  // Manager.stop() is bounded (grace + 5 s); this is the last resort should a
  // step it does not bound (a close() of a library) still hang.
  const watchdogMs = shutdownGraceMs + 10_000;
  const watchdog = setTimeout(() => {
    logger.error(`Graceful shutdown took longer than ${watchdogMs} ms; exiting`);
    process.exit(1);
  }, watchdogMs);
  watchdog.unref();
  const startedAt = performance.now();
  await manager.stop();
  clearTimeout(watchdog);
  logger.info({ shutdownMs: Math.round(performance.now() - startedAt) }, "Operator stopped");
  // A reconcile that ignored its abort may still hold a socket open: exit anyway.
  const linger = setTimeout(() => {
    logger.warn("Work left behind keeps the process alive; exiting");
    process.exit(stop.exitCode);
  }, 1_000);
  linger.unref();
  return stop.exitCode;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      "leader-elect": { type: "boolean", default: false },
      "leader-election-namespace": { type: "string" },
      "leader-election-id": { type: "string" },
      namespace: { type: "string", multiple: true },
      "metrics-addr": { type: "string", default: ":8080" },
      "health-addr": { type: "string", default: ":8081" },
      "runner-image": { type: "string" },
      "webhook-private-networks": { type: "string" },
      "feed-buckets": { type: "string" },
      "leader-elect-lease-duration": { type: "string", default: "15s" },
      "leader-elect-renew-deadline": { type: "string", default: "10s" },
      "leader-elect-retry-period": { type: "string", default: "2s" },
      "shutdown-grace": { type: "string", default: "5s" },
      "log-level": { type: "string", default: "info" },
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
}
