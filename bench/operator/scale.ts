// Part 3, operator side: the operator's memory and reconcile throughput with
// 1,000 CrawlJobs and 10,000 CrawlFeeds (10 per job) on the local control
// plane (real etcd + kube-apiserver + kube-controller-manager from the test
// platform), and the latency from a feed's close to the backend's 2xx when the
// operator delivers the webhook.
//
// There is no kubelet: runner pods never run. The jobs are reconciled as far
// as a cluster without nodes allows (validated, children created, status
// written). The CrawlFeeds are made with the runner's own crawlFeedObject
// (what CrawlFeedReporter creates), owned by their CrawlJob, with the
// shardProgress the reporter records and the delivery status a delivered
// webhook leaves (Delivered, attempt 1, 200): the operator caches them and has
// nothing to POST. A CrawlFeed's status cannot be set at create (status
// subresource), so the load is created while no operator watches the
// namespace: the measured operator starts into 1,000 unreconciled CrawlJobs
// and 10,000 delivered CrawlFeeds (what a restarted or failed-over operator
// finds), and reconcile throughput counts from its start. "Idle" is the same
// build started first on the still-empty namespace. For the latency, the
// bench plays the runner's part: it writes real feed files to S3 with the feed
// exporter and reports each with the runner's own CrawlFeedReporter; the
// operator sees the CrawlFeed and POSTs the signed webhook to the reference
// backend, which loads the file.
//
// What runs: this build as it ships, dist/bin/feedcrawl.js (FEEDCRAWL_BIN;
// bench/run.ts compiles it first), with the NODE_OPTIONS and MALLOC_ARENA_MAX
// its Helm chart sets for the chart's default memory limit (helm template). Memory: besides RSS
// from /proc, the operator's own /metrics (prom-client's default metrics)
// splits it into V8 heap used / heap total / external.
// FEEDCRAWL_BENCH_OPERATOR_BASELINE=<git ref> first measures that commit's
// operator the same way (its tree from `git archive`, this node_modules;
// compiled to its dist/ when it has a tsconfig.build.json, else its
// bin/feedcrawl.ts as it shipped; the NODE_OPTIONS of its own chart), in its
// own namespace, so the table shows it side by side with this build.
// FEEDCRAWL_BENCH_HEAPSNAPSHOT=1 writes a heap snapshot of the operator once
// every job is reconciled (into the raw results folder, for Chrome DevTools).
// FEEDCRAWL_BENCH_OPERATOR_NODE_OPTIONS sets NODE_OPTIONS for the operators
// (both builds) instead of their charts' (empty: V8's defaults).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { access, mkdir, readdir, symlink } from "node:fs/promises";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { CoreV1Api, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { parse as parseYaml } from "yaml";
import type { CrawlFeed, DeliveryStatus, FeedClosed } from "../../crds/schema/crawlfeed.ts";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { CRAWLFEEDS, CRAWLJOBS } from "../../kube/resources.ts";
import { sleep } from "../../lib/sleep.ts";
import { PRIVATE_NETWORKS_ENV } from "../../operator/delivery/dispatchers.ts";
import { feedWebhookId } from "../../operator/delivery/payload.ts";
import { createFeedExporter } from "../../runner/feeds/exporter.ts";
import { createRunnerApi } from "../../runner/report/api.ts";
import { CrawlFeedReporter, crawlFeedObject } from "../../runner/report/crawlfeeds.ts";
import { formatUriTime, parseUriTemplate, renderUri } from "../../spec/uri-template.ts";
import { createCatalogue } from "../../test/fixtures/catalogue.ts";
import { binaryPath } from "../../test/platform/binaries.ts";
import { startPlatform } from "../../test/platform/platform.ts";
import { freePort } from "../../test/platform/ports.ts";
import { forkBackend } from "../backend/spawn.ts";
import { BENCH_DIR, type BenchContext, FEEDCRAWL_BIN, NODE, REPO_ROOT } from "../lib/context.ts";
import { createDatabase } from "../lib/postgres.ts";
import { processCpuSeconds, processMemory } from "../lib/procfs.ts";
import { fmt, percentile } from "../lib/stats.ts";

const run = promisify(execFile);
const GROUP = "feedcrawl.io";
const VERSION = "v1alpha1";
const NAMESPACE = "bench";
/** CrawlFeeds per CrawlJob: 10,000 with the full 1,000 jobs. */
const FEEDS_PER_JOB = 10;
/** The feed template of every bench CrawlJob (crawlJob below); the CrawlFeeds' URIs are rendered from it. */
const FEED_TEMPLATE = "s3://crawl-data/%(name)s/%(time)s/part-%(batch_id)05d.jsonl.gz";

/** One operator build starting into the 1,000 CrawlJobs and 10,000 CrawlFeeds. */
export interface OperatorMeasure {
  /** Which build: "this build", or the baseline's git ref. */
  build: string;
  /** What ran: dist/bin/feedcrawl.js (compiled) or bin/feedcrawl.ts (type stripping). Absent in older results. */
  entry?: string;
  /** The operator's NODE_OPTIONS ("" = none, V8's defaults), and where they came from. Absent in older results. */
  nodeOptions?: string;
  nodeOptionsFrom?: string;
  /** MALLOC_ARENA_MAX when its chart sets it (glibc's default otherwise). */
  mallocArenaMax?: string;
  jobs: number;
  /** CrawlFeeds in the namespace (Delivered) when the operator starts; absent in older results (none). */
  crawlFeeds?: number;
  /** Of those, how many still had the status the bench gave them 30 s after the reconcile (none POSTed again). */
  crawlFeedsUntouched?: number;
  /** Creating the load (jobs, feeds, statuses) with no operator watching; older results: creating the jobs. */
  createSeconds: number;
  reconcileSeconds: number;
  jobsPerSecond: number;
  reconciled: number;
  phases: Record<string, number>;
  idleRssMb: number;
  rssMb: number;
  peakRssMb: number;
  cpuSeconds: number;
  /** V8 heap in use / reserved and memory outside the heap (buffers), after reconciling (from /metrics). */
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  /** RSS and V8 heap used 30 s after the last reconcile, still holding every CrawlJob (V8 has shrunk its heap by then). */
  settledRssMb: number;
  settledHeapUsedMb: number;
}

/** How long the operator sits idle with every CrawlJob cached before the settled memory is read. */
const SETTLE_MS = 30_000;

export interface OperatorResult extends OperatorMeasure {
  /** The baseline build measured in the same run (FEEDCRAWL_BENCH_OPERATOR_BASELINE). */
  baseline?: OperatorMeasure;
  /** Latency part: feeds closed (the scale part's CrawlFeeds are `crawlFeeds`). */
  feeds: number;
  feedItems: number;
  latencyMs: number[];
  delivered: number;
  rows: number;
  error?: string;
}

interface Job {
  metadata: { name: string; uid: string; generation?: number };
  status?: { observedGeneration?: number; phase?: string };
}

function crawlJob(name: string, namespace: string, s3Endpoint: string, webhookUrl: string, allowPrivate: boolean) {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "CrawlJob",
    metadata: { name, namespace },
    spec: {
      spider: {
        name: "books",
        startUrls: ["https://books.example/"],
        allowedDomains: ["books.example"],
        follow: [{ selector: "ul.pager li.next a" }, { selector: "article.product_pod h3 a", allow: ["/catalogue/"] }],
        extract: [
          {
            name: "product",
            itemSelector: "article.product_page",
            fields: { title: { selector: "h1", text: true }, price: { selector: "p.price_color", text: true } },
          },
        ],
      },
      feeds: {
        "s3://crawl-data/%(name)s/%(time)s/part-%(batch_id)05d.jsonl.gz": {
          format: "jsonlines",
          batchItemCount: 5000,
          postprocessing: ["gzip"],
        },
      },
      storage: {
        s3: {
          endpoint: s3Endpoint,
          region: "us-east-1",
          forcePathStyle: true,
          credentialsSecretRef: { name: "s3-creds" },
        },
      },
      ingest: {
        webhook: {
          url: webhookUrl,
          signingSecretRef: { name: "ingest-webhook", key: "secret" },
          ...(allowPrivate ? { allowPrivateNetworks: true } : {}),
        },
      },
    },
  };
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

type S3Settings = { endpoint: string; accessKeyId: string; secretAccessKey: string };

async function createNamespaceWithSecrets(core: CoreV1Api, namespace: string, s3: S3Settings, webhookSecret: string) {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await core.createNamespacedSecret({
    namespace,
    body: {
      metadata: { name: "s3-creds" },
      stringData: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    },
  });
  await core.createNamespacedSecret({
    namespace,
    body: { metadata: { name: "ingest-webhook" }, stringData: { secret: webhookSecret } },
  });
}

async function stopOperator(operator: ChildProcess): Promise<void> {
  if (operator.exitCode !== null) return;
  const exited = new Promise((r) => operator.once("exit", r));
  operator.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (operator.exitCode === null) operator.kill("SIGKILL");
}

/** The baseline commit's tree (git archive, read-only on the repository), with this checkout's node_modules. */
async function baselineTree(ctx: BenchContext, ref: string): Promise<string> {
  const dir = join(ctx.workDir, "operator-baseline");
  await mkdir(dir, { recursive: true });
  await run("sh", ["-c", 'git -C "$1" archive --format=tar "$2" | tar -x -C "$3"', "sh", REPO_ROOT, ref, dir]);
  await symlink(join(REPO_ROOT, "node_modules"), join(dir, "node_modules"));
  return dir;
}

/**
 * Applies the tree's CRDs (server-side, so a later apply of another tree's
 * replaces them) and waits until the API server serves them.
 */
async function applyCrds(kubeconfig: string, root: string): Promise<void> {
  const kubectl = binaryPath("kubectl");
  await run(kubectl, ["--kubeconfig", kubeconfig, "apply", "--server-side", "-f", join(root, "crds")]);
  await run(kubectl, [
    "--kubeconfig",
    kubeconfig,
    "wait",
    "--for=condition=Established",
    "crd",
    "--all",
    "--timeout=60s",
  ]);
  // A changed schema reaches the API server's handlers a moment after Established.
  await sleep(5_000);
}

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/**
 * The CLI file a tree ships: its compiled dist/bin/feedcrawl.js when it has a
 * tsconfig.build.json (built here, ~5 s), else its bin/feedcrawl.ts (a ref
 * from before the product shipped JavaScript ran its sources).
 */
async function shippedEntry(root: string): Promise<string> {
  if (!(await exists(join(root, "tsconfig.build.json")))) return join(root, "bin", "feedcrawl.ts");
  await run(NODE, [join(root, "node_modules", ".bin", "tsc"), "-p", "tsconfig.build.json"], { cwd: root });
  return join(root, "dist", "bin", "feedcrawl.js");
}

/** The NODE_OPTIONS ("" when it sets none) and MALLOC_ARENA_MAX the tree's own Helm chart gives the operator with its default values. */
async function chartEnv(root: string): Promise<{ nodeOptions: string; mallocArenaMax?: string }> {
  const { stdout } = await run(
    binaryPath("helm"),
    ["template", "feedcrawl", join(root, "charts", "feedcrawl"), "--show-only", "templates/deployment.yaml"],
    { maxBuffer: 16 * 2 ** 20 },
  );
  const deployment = parseYaml(stdout) as {
    spec: { template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } } };
  };
  const env = deployment.spec.template.spec.containers.flatMap((c) => c.env ?? []);
  const value = (name: string) => env.find((e) => e.name === name)?.value;
  const arenas = value("MALLOC_ARENA_MAX");
  return { nodeOptions: value("NODE_OPTIONS") ?? "", ...(arenas ? { mallocArenaMax: arenas } : {}) };
}

/** How one build runs: its shipped CLI, NODE_OPTIONS (FEEDCRAWL_BENCH_OPERATOR_NODE_OPTIONS, else its chart's) and its chart's MALLOC_ARENA_MAX. */
async function howToRun(
  root: string,
  entry: string,
): Promise<Pick<MeasureOptions, "entry" | "nodeOptions" | "nodeOptionsFrom" | "mallocArenaMax">> {
  const { nodeOptions, mallocArenaMax } = await chartEnv(root);
  const arenas = mallocArenaMax ? { mallocArenaMax } : {};
  const override = process.env.FEEDCRAWL_BENCH_OPERATOR_NODE_OPTIONS;
  if (override !== undefined) {
    return { entry, nodeOptions: override, nodeOptionsFrom: "FEEDCRAWL_BENCH_OPERATOR_NODE_OPTIONS", ...arenas };
  }
  return { entry, nodeOptions, nodeOptionsFrom: "its chart, default 512Mi limit", ...arenas };
}

/** Heap used / total and external memory from the operator's own /metrics (prom-client default metrics). */
async function heapFromMetrics(
  port: number,
): Promise<Pick<OperatorMeasure, "heapUsedMb" | "heapTotalMb" | "externalMb">> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (name: string) => {
    const line = text.split("\n").find((l) => l.startsWith(`feedcrawl_operator_${name} `));
    return line ? Number(line.split(" ").at(-1)) / 2 ** 20 : Number.NaN;
  };
  return {
    heapUsedMb: value("nodejs_heap_size_used_bytes"),
    heapTotalMb: value("nodejs_heap_size_total_bytes"),
    externalMb: value("nodejs_external_memory_bytes"),
  };
}

/** Writes a heap snapshot of the operator (started with --heapsnapshot-signal) into `dir`; resolves with its file. */
async function heapSnapshot(operator: ChildProcess, dir: string): Promise<string | undefined> {
  const before = new Set(await readdir(dir));
  operator.kill("SIGUSR2");
  for (let i = 0; i < 240; i++) {
    await sleep(500);
    const made = (await readdir(dir)).find((f) => f.endsWith(".heapsnapshot") && !before.has(f));
    // The file grows while it is written; the next listing after it appears is enough for a bench.
    if (made) return join(dir, made);
  }
  return undefined;
}

function notMeasured(build: string, jobs: number): OperatorMeasure {
  return {
    build,
    jobs,
    createSeconds: Number.NaN,
    reconcileSeconds: Number.NaN,
    jobsPerSecond: Number.NaN,
    reconciled: 0,
    phases: {},
    idleRssMb: Number.NaN,
    rssMb: Number.NaN,
    peakRssMb: Number.NaN,
    cpuSeconds: Number.NaN,
    heapUsedMb: Number.NaN,
    heapTotalMb: Number.NaN,
    externalMb: Number.NaN,
    settledRssMb: Number.NaN,
    settledHeapUsedMb: Number.NaN,
  };
}

interface MeasureOptions {
  /** The tree the operator runs in (its working directory). */
  root: string;
  /** The CLI file to run (shippedEntry / FEEDCRAWL_BIN). */
  entry: string;
  nodeOptions: string;
  nodeOptionsFrom: string;
  mallocArenaMax?: string;
  build: string;
  namespace: string;
  kubeconfig: string;
  jobs: number;
  s3: S3Settings;
  custom: CustomObjectsApi;
  /** Creates what a runner creates (field manager feedcrawl-runner). */
  runnerClient: KubeClient;
  /** Writes what the operator writes (field manager feedcrawl-operator): the delivered status. */
  operatorClient: KubeClient;
}

/** Starts one operator build watching `namespace`; its output goes to operator-<log>.log. */
async function startOperator(
  ctx: BenchContext,
  o: MeasureOptions,
  log: string,
): Promise<{ operator: ChildProcess; metricsPort: number }> {
  const metricsPort = await freePort();
  const snapshot = process.env.FEEDCRAWL_BENCH_HEAPSNAPSHOT === "1";
  const operator = spawn(
    NODE,
    [
      ...(snapshot ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${ctx.rawDir}`] : []),
      o.entry,
      "operator",
      "--namespace",
      o.namespace,
      "--metrics-addr",
      `127.0.0.1:${metricsPort}`,
      "--health-addr",
      "0",
      "--log-level",
      "warn",
    ],
    {
      cwd: o.root,
      env: {
        ...process.env,
        KUBECONFIG: o.kubeconfig,
        // The reference backend listens on loopback: the operator's webhook private networks must allow it.
        [PRIVATE_NETWORKS_ENV]: "127.0.0.0/8",
        NODE_OPTIONS: o.nodeOptions,
        ...(o.mallocArenaMax ? { MALLOC_ARENA_MAX: o.mallocArenaMax } : {}),
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const file = createWriteStream(join(ctx.rawDir, `operator-${log}.log`));
  operator.stdout?.pipe(file);
  operator.stderr?.pipe(file);
  return { operator, metricsPort };
}

/** Ten feed files of one crawl per job, as the runner's exporter would report them. */
function feedsOf(job: string, index: number): FeedClosed[] {
  const template = parseUriTemplate(FEED_TEMPLATE);
  // Each job's crawl started at its own second (the URIs would collide otherwise).
  const started = Date.parse("2026-12-01T08:00:00Z") + index * 1000;
  return Array.from({ length: FEEDS_PER_JOB }, (_, i) => {
    const batch = i + 1;
    const closed = new Date(started + batch * 60_000);
    return {
      uri: renderUri(template, {
        name: "books",
        job,
        time: formatUriTime(new Date(started)),
        batch_id: batch,
        batch_time: formatUriTime(closed, true),
        shard: 0,
      }),
      batchId: batch,
      shard: 0,
      feed: FEED_TEMPLATE,
      format: "jsonlines",
      compression: "gzip",
      items: 5000,
      bytes: 1_100_000 + batch,
      sha256: createHash("sha256").update(`${job}/${batch}`).digest("hex"),
      closedAt: closed.toISOString(),
    };
  });
}

/**
 * The load, with no operator watching `namespace`: the CrawlJobs (16 creates
 * at a time), then per job its CrawlFeeds exactly as CrawlFeedReporter creates
 * them (crawlFeedObject, owned by the job), each given the status a delivered
 * webhook leaves, and the job's status.shardProgress as the reporter records it.
 */
async function createLoad(o: MeasureOptions): Promise<number> {
  const { namespace } = o;
  const names = Array.from({ length: o.jobs }, (_, i) => `scale-${String(i).padStart(4, "0")}`);
  const uids = new Map<string, string>();
  await pool(names, 16, async (name) => {
    const job = (await o.custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: "crawljobs",
      body: crawlJob(name, namespace, o.s3.endpoint, "https://backend.example/bulk-ingest", false),
    })) as Job;
    uids.set(name, job.metadata.uid);
  });
  let feeds = 0;
  await pool([...names.entries()], 16, async ([index, name]) => {
    const identity = { name, namespace, uid: uids.get(name)! };
    for (const ev of feedsOf(name, index)) {
      const feed = crawlFeedObject(identity, 0, ev) as CrawlFeed & KubeObject;
      await o.runnerClient.create(CRAWLFEEDS, feed);
      const delivered = new Date(Date.parse(ev.closedAt) + 150);
      const delivery: DeliveryStatus = {
        state: "Delivered",
        attempts: 1,
        lastResponseCode: 200,
        deliveredAt: delivered.toISOString(),
      };
      await o.operatorClient.patch(
        CRAWLFEEDS,
        namespace,
        feed.metadata.name!,
        { status: { delivery } },
        {
          subresource: "status",
        },
      );
      feeds++;
    }
    const progress = { shardProgress: { "0": { lastBatchIds: { [FEED_TEMPLATE]: FEEDS_PER_JOB } } } };
    await o.runnerClient.patch(CRAWLJOBS, namespace, name, { status: progress }, { subresource: "status" });
  });
  return feeds;
}

/** CrawlFeeds of `namespace` whose delivery is still exactly what createLoad wrote (Delivered in 1 attempt, 200). */
async function untouchedFeeds(client: KubeClient, namespace: string): Promise<number> {
  const list = await client.listAll<CrawlFeed & KubeObject>(CRAWLFEEDS, { namespace });
  return list.items.filter((f) => {
    const d = f.status?.delivery;
    return d?.state === "Delivered" && d.attempts === 1 && d.lastResponseCode === 200;
  }).length;
}

/**
 * Measures one operator build: idle on the still-empty `namespace`, then
 * (after the load is created with no operator watching) from a fresh start
 * until every CrawlJob is reconciled, and 30 s later.
 */
async function measureOperator(
  ctx: BenchContext,
  o: MeasureOptions,
): Promise<{ measure: OperatorMeasure; operator: ChildProcess }> {
  const { custom, namespace, jobs } = o;
  const measure: OperatorMeasure = {
    ...notMeasured(o.build, jobs),
    entry: relative(o.root, o.entry),
    nodeOptions: o.nodeOptions,
    nodeOptionsFrom: o.nodeOptionsFrom,
    ...(o.mallocArenaMax ? { mallocArenaMax: o.mallocArenaMax } : {}),
  };
  const exitedAtStart = (operator: ChildProcess, log: string) =>
    new Error(`the operator (${o.build}) exited at start (code ${operator.exitCode}); see operator-${log}.log`);

  // Idle: the build on the empty namespace, its informers synced.
  const idle = await startOperator(ctx, o, `${namespace}-idle`);
  await sleep(5_000);
  if (idle.operator.exitCode !== null) throw exitedAtStart(idle.operator, `${namespace}-idle`);
  measure.idleRssMb = (await processMemory(idle.operator.pid!)).rssMb;
  await stopOperator(idle.operator);

  const creating = performance.now();
  measure.crawlFeeds = await createLoad(o);
  measure.createSeconds = (performance.now() - creating) / 1000;

  // The operator starts into the load; reconciled = it wrote a status for the current generation.
  const started = performance.now();
  const { operator, metricsPort } = await startOperator(ctx, o, namespace);
  const pid = operator.pid!;
  // Bounded: a slow control plane gives a partial count, not a bench that never ends.
  const deadline = Date.now() + 6 * 60_000;
  for (;;) {
    await sleep(500);
    if (operator.exitCode !== null) throw exitedAtStart(operator, namespace);
    const list = (await custom.listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: "crawljobs",
    })) as { items: Job[] };
    const done = list.items.filter(
      (j) => j.status?.observedGeneration !== undefined && j.status.observedGeneration === j.metadata.generation,
    );
    measure.reconciled = done.length;
    if (done.length >= jobs || Date.now() > deadline) {
      for (const j of list.items)
        measure.phases[j.status?.phase ?? "none"] = (measure.phases[j.status?.phase ?? "none"] ?? 0) + 1;
      break;
    }
  }
  measure.reconcileSeconds = (performance.now() - started) / 1000;
  measure.jobsPerSecond = measure.reconciled / measure.reconcileSeconds;
  // CPU from the process start: loading the code, listing every cache, the reconciles.
  measure.cpuSeconds = await processCpuSeconds(pid);
  const mem = await processMemory(pid);
  measure.rssMb = mem.rssMb;
  measure.peakRssMb = mem.peakRssMb;
  Object.assign(measure, await heapFromMetrics(metricsPort).catch(() => ({})));
  await sleep(SETTLE_MS);
  measure.settledRssMb = (await processMemory(pid)).rssMb;
  measure.settledHeapUsedMb = (await heapFromMetrics(metricsPort).catch(() => undefined))?.heapUsedMb ?? Number.NaN;
  measure.crawlFeedsUntouched = await untouchedFeeds(o.operatorClient, namespace);
  ctx.logger.info(measure, `Operator (${o.build}) reconciled the CrawlJobs`);
  if (process.env.FEEDCRAWL_BENCH_HEAPSNAPSHOT === "1")
    ctx.logger.info({ file: await heapSnapshot(operator, ctx.rawDir) }, "Operator heap snapshot");
  return { measure, operator };
}

export async function runOperatorScale(ctx: BenchContext): Promise<OperatorResult> {
  const jobs = ctx.quick ? 200 : 1_000;
  const platformDir = join(ctx.workDir, "platform");
  ctx.logger.info({ platformDir }, "Starting the local control plane for the operator bench");
  const platform = await startPlatform({ workDir: platformDir });
  let operator: ChildProcess | undefined;
  const result: OperatorResult = {
    ...notMeasured("this build", jobs),
    feeds: 0,
    feedItems: 0,
    latencyMs: [],
    delivered: 0,
    rows: 0,
  };
  const db = await createDatabase("feedcrawl_bench_operator");
  let backend: Awaited<ReturnType<typeof forkBackend>> | undefined;
  let closeClients: (() => Promise<unknown>) | undefined;
  try {
    const kubeconfig = platform.env.FEEDCRAWL_TEST_KUBECONFIG!;
    await applyCrds(kubeconfig, REPO_ROOT);
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const s3 = {
      endpoint: platform.env.FEEDCRAWL_TEST_S3_ENDPOINT!,
      accessKeyId: platform.env.FEEDCRAWL_TEST_S3_ACCESS_KEY!,
      secretAccessKey: platform.env.FEEDCRAWL_TEST_S3_SECRET_KEY!,
    };
    const webhookSecret = `whsec_${randomBytes(24).toString("base64")}`;
    await createNamespaceWithSecrets(core, NAMESPACE, s3, webhookSecret);

    // The reference backend the operator delivers to (for the latency part).
    backend = await forkBackend(
      join(BENCH_DIR, "backend", "reference-server.ts"),
      {
        ...process.env,
        WEBHOOK_SECRET: webhookSecret,
        DATABASE_URL: db.url,
        S3_ENDPOINT: s3.endpoint,
        S3_FORCE_PATH_STYLE: "true",
        AWS_REGION: "us-east-1",
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
        LOG_LEVEL: "warn",
      },
      join(ctx.rawDir, "backend-operator.log"),
    );

    const clients = {
      runnerClient: new KubeClient(kc, { fieldManager: "feedcrawl-runner" }),
      operatorClient: new KubeClient(kc, { fieldManager: "feedcrawl-operator" }),
    };
    closeClients = () => Promise.all([clients.runnerClient.close(), clients.operatorClient.close()]);
    const common = { kubeconfig, jobs, s3, custom, ...clients };
    // This build as it ships: bench/run.ts compiled dist/ from this checkout.
    if (!(await exists(FEEDCRAWL_BIN))) throw new Error(`${FEEDCRAWL_BIN} is missing: run \`npm run build\` first`);
    const thisBuild = await howToRun(REPO_ROOT, FEEDCRAWL_BIN);

    const baselineRef = process.env.FEEDCRAWL_BENCH_OPERATOR_BASELINE;
    if (baselineRef) {
      // The baseline first, in its own namespace, stopped before this build starts: they never share the CPU.
      const root = await baselineTree(ctx, baselineRef);
      // Its own CRDs: an older validator refuses fields a newer CRD defaults (spec.stop), and would fail every job.
      await applyCrds(kubeconfig, root);
      await createNamespaceWithSecrets(core, `${NAMESPACE}-base`, s3, webhookSecret);
      const base = await measureOperator(ctx, {
        ...common,
        root,
        ...(await howToRun(root, await shippedEntry(root))),
        build: baselineRef,
        namespace: `${NAMESPACE}-base`,
      });
      await stopOperator(base.operator);
      result.baseline = base.measure;
      await applyCrds(kubeconfig, REPO_ROOT);
    }
    const current = await measureOperator(ctx, {
      ...common,
      root: REPO_ROOT,
      ...thisBuild,
      build: "this build",
      namespace: NAMESPACE,
    });
    operator = current.operator;
    Object.assign(result, current.measure);

    // Feed close → webhook 2xx: one job whose webhook is the reference backend.
    const job = (await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NAMESPACE,
      plural: "crawljobs",
      body: crawlJob("latency", NAMESPACE, s3.endpoint, backend.url, true),
    })) as Job;
    const s3Client = new S3Client({
      endpoint: s3.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await s3Client.send(new CreateBucketCommand({ Bucket: "crawl-data" })).catch(() => {});
    s3Client.destroy();
    await backend.reset();
    const reporter = new CrawlFeedReporter({
      api: createRunnerApi(kc),
      job: { name: "latency", namespace: NAMESPACE, uid: job.metadata.uid },
      shard: 0,
      logger: ctx.logger.child({ part: "operator-latency" }, { level: "warn" }),
    });
    const feeds = ctx.quick ? 10 : 40;
    const batch = 2_000;
    const catalogue = createCatalogue({ products: feeds * batch, seed: 6 });
    const closed: { uri: string; closedAt: number }[] = [];
    const exporter = await createFeedExporter({
      feeds: {
        "s3://crawl-data/%(name)s/%(time)s/part-%(batch_id)05d.jsonl.gz": {
          format: "jsonlines",
          batchItemCount: batch,
          postprocessing: ["gzip"],
        },
      },
      storage: { s3: { endpoint: s3.endpoint, region: "us-east-1", forcePathStyle: true } },
      params: { name: "books", job: "latency", shard: 0 },
      logger: ctx.logger.child({ part: "operator-latency" }, { level: "warn" }),
      s3: { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
      spool: { dir: join(ctx.workDir, "spool", "operator") },
      // As in the runner pod: the CrawlFeed is created once the file is stored.
      onFeedClosed: async (ev) => {
        closed.push({ uri: ev.uri, closedAt: Date.parse(ev.closedAt) });
        await reporter.report(ev);
      },
    });
    // Items arrive at a crawl-like pace (one batch every ~0.5 s), so feeds close one by one.
    for (let i = 1; i <= feeds * batch; i++) {
      await exporter.write(catalogue.expectedItem(i, "https://books.example"));
      if (i % batch === 0) await new Promise((r) => setTimeout(r, 500));
    }
    await exporter.close("finished");
    result.feeds = closed.length;
    result.feedItems = feeds * batch;
    const wanted = new Map(closed.map((c) => [feedWebhookId(job.metadata.uid, c.uri), c.closedAt]));
    const waitUntil = Date.now() + 120_000;
    let answered: { id: string; status: number; at: number }[] = [];
    while (Date.now() < waitUntil) {
      answered = (await backend.stats()).webhooks.filter((w) => w.status >= 200 && w.status < 300 && wanted.has(w.id));
      if (answered.length >= wanted.size) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const firstAnswer = new Map<string, number>();
    for (const w of answered) if (!firstAnswer.has(w.id)) firstAnswer.set(w.id, w.at);
    result.delivered = firstAnswer.size;
    result.latencyMs = [...firstAnswer].map(([id, at]) => at - wanted.get(id)!);
    result.rows = await db.count("items");
    ctx.logger.info({ delivered: result.delivered, rows: result.rows }, "Operator delivered the feeds");
  } catch (err) {
    result.error = (err as Error).message;
    ctx.logger.error({ err }, "Operator bench failed");
  } finally {
    if (operator) await stopOperator(operator);
    await closeClients?.();
    await backend?.stop();
    await platform.stop();
    await db.drop();
  }
  return result;
}

export function operatorMarkdown(r: OperatorResult): string {
  const lines: string[] = [];
  if (r.error)
    lines.push(`**The operator bench did not finish: ${r.error}** (rows below are what was measured before).`, "");
  const withFeeds = r.crawlFeeds !== undefined;
  lines.push(
    "The operator (`feedcrawl operator --namespace bench`) against the local control plane (etcd + kube-apiserver + " +
      "kube-controller-manager from the test platform, all on this machine). No kubelet: runner pods never start, so a " +
      "reconcile here is validation, the per-job children (ConfigMap, ServiceAccount, Role, RoleBinding, Job) and the status " +
      "write; reconciled = `status.observedGeneration` equals the generation. " +
      (withFeeds
        ? `The load is created while no operator watches: ${fmt(r.jobs, 0)} CrawlJobs (16 creates at a time), then ` +
          `${FEEDS_PER_JOB} CrawlFeeds per job as the runner's CrawlFeedReporter creates them (owned by their job), each with ` +
          "the status a delivered webhook leaves (Delivered, 1 attempt, 200), and the job's `status.shardProgress`. The " +
          "operator then starts into it (what a restarted or failed-over operator finds): reconcile time, jobs/s and CPU " +
          "count from its start; idle = the same build on the still-empty namespace; peak = VmHWM. Each build runs as it " +
          "shipped, with the NODE_OPTIONS (and MALLOC_ARENA_MAX) named in its row."
        : "Jobs are created 16 at a time while the operator runs."),
  );
  lines.push("");
  lines.push(
    "| build | runs as | CrawlJobs reconciled | CrawlFeeds (untouched) | load created in s | all reconciled after s | jobs/s | " +
      "RSS idle MB | RSS after MB | peak RSS MB | V8 heap used / total MB | external MB | 30 s later: RSS / heap used MB | " +
      "operator CPU s | phases |",
  );
  lines.push("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
  const runsAs = (m: OperatorMeasure) =>
    m.entry === undefined
      ? "—"
      : `\`${m.entry}\`, NODE_OPTIONS ${m.nodeOptions ? `\`${m.nodeOptions}\`` : "none"}` +
        `${m.mallocArenaMax ? `, MALLOC_ARENA_MAX=${m.mallocArenaMax}` : ""} (${m.nodeOptionsFrom})`;
  const feeds = (m: OperatorMeasure) =>
    m.crawlFeeds === undefined ? "0" : `${fmt(m.crawlFeeds, 0)} (${fmt(m.crawlFeedsUntouched ?? Number.NaN, 0)})`;
  const row = (m: OperatorMeasure) =>
    `| ${m.build ?? "this build"} | ${runsAs(m)} | ${fmt(m.reconciled, 0)} of ${fmt(m.jobs, 0)} | ${feeds(m)} | ` +
    `${fmt(m.createSeconds)} | ${fmt(m.reconcileSeconds)} | ${fmt(m.jobsPerSecond)} | ` +
    `${fmt(m.idleRssMb, 0)} | ${fmt(m.rssMb, 0)} | ${fmt(m.peakRssMb, 0)} | ` +
    `${fmt(m.heapUsedMb, 0)} / ${fmt(m.heapTotalMb, 0)} | ${fmt(m.externalMb, 0)} | ` +
    `${fmt(m.settledRssMb, 0)} / ${fmt(m.settledHeapUsedMb, 0)} | ${fmt(m.cpuSeconds)} | ` +
    `${Object.entries(m.phases)
      .map(([p, n]) => `${p} ${n}`)
      .join(", ")} |`;
  if (r.baseline) lines.push(row(r.baseline));
  lines.push(row(r));
  lines.push("");
  lines.push(
    "Feed close → webhook 2xx through the operator: the bench plays the runner (the feed exporter writes gzip jsonlines " +
      "files of 2,000 items to S3, one every ~0.5 s, and the runner's CrawlFeedReporter creates each CrawlFeed); the " +
      "operator signs and POSTs feed.closed to the reference backend, which answers after its COPY committed. Latency = " +
      "the backend's 2xx minus the feed's `closedAt`.",
  );
  lines.push("");
  lines.push("| feeds closed | webhooks answered 2xx | rows in PostgreSQL | p50 ms | p95 ms | max ms |");
  lines.push("|---:|---:|---:|---:|---:|---:|");
  lines.push(
    `| ${r.feeds} | ${r.delivered} | ${r.rows === r.feedItems ? fmt(r.rows, 0) : `**${fmt(r.rows, 0)} of ${fmt(r.feedItems, 0)}**`} | ` +
      `${fmt(percentile(r.latencyMs, 50), 0)} | ${fmt(percentile(r.latencyMs, 95), 0)} | ${fmt(Math.max(...r.latencyMs), 0)} |`,
  );
  return lines.join("\n");
}
