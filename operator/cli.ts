// `feedcrawl operator`: runs the controller.
//
//   feedcrawl operator [--leader-elect] [--namespace NS]... [--metrics-addr :8080]
//                      [--health-addr :8081] [--runner-image IMG]
//                      [--leader-election-namespace NS] [--leader-election-id NAME]
//                      [--webhook-private-networks LIST] [--feed-buckets LIST]
//                      [--log-level info]
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { type Logger, pino } from "pino";
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
  --log-level LEVEL                  trace|debug|info|warn|error (default: info)

The kube config comes from KubeConfig.loadFromDefault(): in-cluster, $KUBECONFIG or ~/.kube/config.
`;

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
  const logger = pino({
    level: values["log-level"],
    base: { component: "operator" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: ["*.authorization", "*.Authorization", "*.secret", "*.token"], censor: "[redacted]" },
  });

  const kc = new KubeConfig();
  try {
    kc.loadFromDefault();
    if (!kc.getCurrentCluster()) throw new Error("no current cluster in the kube config");
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
  return runUntilStopped(manager, logger, stop);
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

async function runUntilStopped(manager: Manager, logger: Logger, stop: ReturnType<typeof stopper>): Promise<number> {
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
  // controller-runtime's graceful shutdown period: 30 s, then give up.
  const deadline = setTimeout(() => {
    logger.error("Graceful shutdown took longer than 30 s; exiting");
    process.exit(1);
  }, 30_000);
  deadline.unref();
  await manager.stop();
  clearTimeout(deadline);
  logger.info("Operator stopped");
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
      "log-level": { type: "string", default: "info" },
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
}
