// `feedcrawl operator`: runs the controller.
//
//   feedcrawl operator [--leader-elect] [--namespace NS]... [--metrics-addr :8080]
//                      [--health-addr :8081] [--runner-image IMG]
//                      [--leader-election-namespace NS] [--leader-election-id NAME]
//                      [--log-level info]
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { Manager } from "./manager.ts";

const usage = `usage: feedcrawl operator [options]

  --leader-elect                     campaign for a coordination.k8s.io Lease; only the leader reconciles
  --leader-election-namespace NS     the Lease's namespace (default: $POD_NAMESPACE or "default")
  --leader-election-id NAME          the Lease's name (default: feedcrawl-operator)
  --namespace NS                     watch only this namespace (repeatable; default: all namespaces)
  --metrics-addr ADDR                Prometheus /metrics listen address (default :8080; "0" disables)
  --health-addr ADDR                 /healthz and /readyz listen address (default :8081; "0" disables)
  --runner-image IMG                 runner image when a CrawlJob sets none (default: $FEEDCRAWL_IMAGE or ghcr.io/feedcrawl/feedcrawl:latest)
  --log-level LEVEL                  trace|debug|info|warn|error (default: info)

The kube config comes from KubeConfig.loadFromDefault(): in-cluster, $KUBECONFIG or ~/.kube/config.
`;

export async function main(argv: string[]): Promise<number> {
  let values: ReturnType<typeof parse>;
  try {
    values = parse(argv);
  } catch (err) {
    process.stderr.write(`feedcrawl operator: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
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
  let exitCode = 0;
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
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
    onFatal: (reason) => {
      logger.error({ reason }, "Operator stopping");
      exitCode = 1;
      resolveDone();
    },
  });

  const onSignal = (signal: string) => {
    logger.info({ signal }, "Received a signal; shutting down");
    resolveDone();
  };
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  process.once("SIGINT", () => onSignal("SIGINT"));

  try {
    // A signal during start (e.g. caches that cannot sync while the CRDs are
    // missing) must still stop the process.
    const started = manager.start().then(() => true);
    started.catch(() => {}); // a late failure after a stop is not news
    if (!(await Promise.race([started, done.then(() => false)]))) {
      await manager.stop();
      return exitCode;
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
  await done;
  // controller-runtime's graceful shutdown period: 30 s, then give up.
  const deadline = setTimeout(() => {
    logger.error("Graceful shutdown took longer than 30 s; exiting");
    process.exit(1);
  }, 30_000);
  deadline.unref();
  await manager.stop();
  clearTimeout(deadline);
  logger.info("Operator stopped");
  return exitCode;
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
      "log-level": { type: "string", default: "info" },
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
}
