// Part 3, operator side: the operator's memory and reconcile throughput with
// 1,000 CrawlJobs on the local control plane (real etcd + kube-apiserver +
// kube-controller-manager from the test platform), and the latency from a
// feed's close to the backend's 2xx when the operator delivers the webhook.
//
// There is no kubelet: runner pods never run. The 1,000 jobs are reconciled
// as far as a cluster without nodes allows (validated, children created,
// status written). For the latency, the bench plays the runner's part: it
// writes real feed files to S3 with the feed exporter and reports each with
// the runner's own CrawlFeedReporter; the operator sees the CrawlFeed and
// POSTs the signed webhook to the reference backend, which loads the file.
//
// Memory: besides RSS from /proc, the operator's own /metrics (prom-client's
// default metrics) splits it into V8 heap used / heap total / external.
// FEEDCRAWL_BENCH_OPERATOR_BASELINE=<git ref> first measures that commit's
// operator the same way (its tree from `git archive`, this node_modules), in
// its own namespace, so the table shows it side by side with this build.
// FEEDCRAWL_BENCH_HEAPSNAPSHOT=1 writes a heap snapshot of the operator once
// every job is reconciled (into the raw results folder, for Chrome DevTools).
// FEEDCRAWL_BENCH_OPERATOR_NODE_OPTIONS sets NODE_OPTIONS for the operators
// only (e.g. the chart's --max-semi-space-size), not for the bench.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { CoreV1Api, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { PRIVATE_NETWORKS_ENV } from "../../operator/delivery/dispatchers.ts";
import { feedWebhookId } from "../../operator/delivery/payload.ts";
import { createFeedExporter } from "../../runner/feeds/exporter.ts";
import { createRunnerApi } from "../../runner/report/api.ts";
import { CrawlFeedReporter } from "../../runner/report/crawlfeeds.ts";
import { createCatalogue } from "../../test/fixtures/catalogue.ts";
import { binaryPath } from "../../test/platform/binaries.ts";
import { startPlatform } from "../../test/platform/platform.ts";
import { freePort } from "../../test/platform/ports.ts";
import { forkBackend } from "../backend/spawn.ts";
import { BENCH_DIR, type BenchContext, NODE, REPO_ROOT } from "../lib/context.ts";
import { createDatabase } from "../lib/postgres.ts";
import { processCpuSeconds, processMemory } from "../lib/procfs.ts";
import { fmt, percentile } from "../lib/stats.ts";

const run = promisify(execFile);
const GROUP = "feedcrawl.io";
const VERSION = "v1alpha1";
const NAMESPACE = "bench";

/** One operator build reconciling the 1,000 CrawlJobs. */
export interface OperatorMeasure {
  /** Which build: "this build", or the baseline's git ref. */
  build: string;
  jobs: number;
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
    await new Promise((r) => setTimeout(r, 500));
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
  /** The tree whose bin/feedcrawl.ts runs. */
  root: string;
  build: string;
  namespace: string;
  kubeconfig: string;
  jobs: number;
  s3: S3Settings;
  custom: CustomObjectsApi;
}

/** Starts one operator build on `namespace`, creates the CrawlJobs there and measures until all are reconciled. */
async function measureOperator(
  ctx: BenchContext,
  o: MeasureOptions,
): Promise<{ measure: OperatorMeasure; operator: ChildProcess }> {
  const { custom, namespace, jobs } = o;
  const measure = notMeasured(o.build, jobs);
  const log = createWriteStream(join(ctx.rawDir, `operator-${namespace}.log`));
  const metricsPort = await freePort();
  const snapshot = process.env.FEEDCRAWL_BENCH_HEAPSNAPSHOT === "1";
  const operator = spawn(
    NODE,
    [
      ...(snapshot ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${ctx.rawDir}`] : []),
      "bin/feedcrawl.ts",
      "operator",
      "--namespace",
      namespace,
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
        NODE_OPTIONS: process.env.FEEDCRAWL_BENCH_OPERATOR_NODE_OPTIONS ?? process.env.NODE_OPTIONS,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  operator.stdout?.pipe(log);
  operator.stderr?.pipe(log);
  const pid = operator.pid!;
  // Let it sync its informers on an empty namespace.
  await new Promise((r) => setTimeout(r, 5_000));
  if (operator.exitCode !== null)
    throw new Error(
      `the operator (${o.build}) exited at start (code ${operator.exitCode}); see operator-${namespace}.log`,
    );
  measure.idleRssMb = (await processMemory(pid)).rssMb;
  const cpuBefore = await processCpuSeconds(pid);

  // 1,000 CrawlJobs, created 16 at a time.
  const names = Array.from({ length: jobs }, (_, i) => `scale-${String(i).padStart(4, "0")}`);
  const started = performance.now();
  await pool(names, 16, async (name) => {
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: "crawljobs",
      body: crawlJob(name, namespace, o.s3.endpoint, "https://backend.example/bulk-ingest", false),
    });
  });
  measure.createSeconds = (performance.now() - started) / 1000;
  // Reconciled = the operator wrote a status for the current generation.
  // Bounded: a slow control plane gives a partial count, not a bench that never ends.
  const deadline = Date.now() + 6 * 60_000;
  for (;;) {
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
    await new Promise((r) => setTimeout(r, 500));
  }
  measure.reconcileSeconds = (performance.now() - started) / 1000;
  measure.jobsPerSecond = measure.reconciled / measure.reconcileSeconds;
  measure.cpuSeconds = (await processCpuSeconds(pid)) - cpuBefore;
  const mem = await processMemory(pid);
  measure.rssMb = mem.rssMb;
  measure.peakRssMb = mem.peakRssMb;
  Object.assign(measure, await heapFromMetrics(metricsPort).catch(() => ({})));
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  measure.settledRssMb = (await processMemory(pid)).rssMb;
  measure.settledHeapUsedMb = (await heapFromMetrics(metricsPort).catch(() => undefined))?.heapUsedMb ?? Number.NaN;
  ctx.logger.info(measure, `Operator (${o.build}) reconciled the CrawlJobs`);
  if (snapshot) ctx.logger.info({ file: await heapSnapshot(operator, ctx.rawDir) }, "Operator heap snapshot");
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
  try {
    const kubeconfig = platform.env.FEEDCRAWL_TEST_KUBECONFIG!;
    const kubectl = binaryPath("kubectl");
    await run(kubectl, ["--kubeconfig", kubeconfig, "apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
    await run(kubectl, [
      "--kubeconfig",
      kubeconfig,
      "wait",
      "--for=condition=Established",
      "crd",
      "--all",
      "--timeout=60s",
    ]);
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

    const baselineRef = process.env.FEEDCRAWL_BENCH_OPERATOR_BASELINE;
    if (baselineRef) {
      // The baseline first, in its own namespace, stopped before this build starts: they never share the CPU.
      const root = await baselineTree(ctx, baselineRef);
      await createNamespaceWithSecrets(core, `${NAMESPACE}-base`, s3, webhookSecret);
      const base = await measureOperator(ctx, {
        root,
        build: baselineRef,
        namespace: `${NAMESPACE}-base`,
        kubeconfig,
        jobs,
        s3,
        custom,
      });
      await stopOperator(base.operator);
      result.baseline = base.measure;
    }
    const current = await measureOperator(ctx, {
      root: REPO_ROOT,
      build: "this build",
      namespace: NAMESPACE,
      kubeconfig,
      jobs,
      s3,
      custom,
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
  lines.push(
    "The operator (`feedcrawl operator --namespace bench`) against the local control plane (etcd + kube-apiserver + " +
      "kube-controller-manager from the test platform, all on this machine). No kubelet: runner pods never start, so a " +
      "reconcile here is validation, the per-job children (ConfigMap, ServiceAccount, Role, RoleBinding, Job) and the status " +
      "write. Jobs are created 16 at a time; reconciled = `status.observedGeneration` equals the generation.",
  );
  lines.push("");
  lines.push(
    "| build | CrawlJobs | created in s | all reconciled after s | reconciles/s | operator RSS idle MB | RSS after MB | peak RSS MB | V8 heap used / total MB | external MB | 30 s later: RSS / heap used MB | operator CPU s | phases |",
  );
  lines.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
  const row = (m: OperatorMeasure) =>
    `| ${m.build ?? "this build"} | ${fmt(m.reconciled, 0)} of ${fmt(m.jobs, 0)} | ${fmt(m.createSeconds)} | ${fmt(m.reconcileSeconds)} | ` +
    `${fmt(m.jobsPerSecond)} | ${fmt(m.idleRssMb, 0)} | ${fmt(m.rssMb, 0)} | ${fmt(m.peakRssMb, 0)} | ` +
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
