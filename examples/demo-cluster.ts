// `npm run demo -- --cluster`: the whole loop on a real Kubernetes node on
// this machine, as a user runs it on a cluster. It starts the local cluster
// (etcd, kube-apiserver, kube-controller-manager, the S3 server and a node:
// kubelet, containerd, kube-proxy, kube-scheduler on a bridge it creates),
// builds the image from the Dockerfile into the node, `helm install`s the
// chart, serves three fixture sites on three bridge addresses, starts the
// reference backend, `kubectl apply`s examples/crawljob-e2e.yaml, follows the
// CrawlJob to Succeeded, prints `kubectl get crawl,cfeed,pods` and the rows
// loaded, and removes it all again. Needs root; builds the test binaries
// (`npm run testbin`) and the image first when they are missing.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { pino } from "pino";
import {
  type Any,
  crawlManifest,
  crawlSecrets,
  getJson,
  IMAGE_REPOSITORY,
  IMAGE_TAG,
  installOperator,
  JOB,
  kubectlFor,
  networkOf,
  restrictedNamespace,
  runnerPods,
  terminated,
  waitRunnerPods,
  waitSucceeded,
} from "../test/e2e/cluster.ts";
import { hostsCoveringShards, type Sites, serveSites } from "../test/fixtures/sites.ts";
import { createBucket, type Disposable, s3Client } from "../test/platform/fixtures.ts";
import { importImage } from "../test/platform/image/build.ts";
import { type RunningPlatform, startPlatform } from "../test/platform/platform.ts";
import { NODE_PARTS, prepare } from "../test/platform/prepare.ts";
import { configFromEnv } from "./ingest-backend/config.ts";
import { createIngestBackend, type IngestBackend } from "./ingest-backend/server.ts";

const RELEASE = "feedcrawl";
const RELEASE_NS = "feedcrawl-system";
const NS = "crawl";
const SHARDS = 3;

export interface ClusterDemoOptions {
  /** Products over the three sites (each gets a third). */
  products: number;
  /** Keep the work folder (logs, manifest, SQLite database). */
  keep: boolean;
}

const say = (line: string) => process.stdout.write(`${line}\n`);
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;
const indent = (text: string) =>
  text
    .trimEnd()
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");

/** Prints the CrawlJob's columns whenever they change, like `kubectl get crawl -w`, until stopped. */
function followCrawlJob(k: ReturnType<typeof kubectlFor>): () => Promise<void> {
  let running = true;
  let last = "";
  const show = async () => {
    const row = await k(["-n", NS, "get", "crawl", JOB, "--no-headers"]).catch(() => "");
    const shown = row.trim().replace(/\s+\S+$/, ""); // without AGE
    if (shown && shown !== last) {
      say(`    ${new Date().toISOString().slice(11, 19)}  ${shown.replace(/\s+/g, "  ")}`);
      last = shown;
    }
  };
  const loop = (async () => {
    while (running) {
      await show();
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  })();
  return async () => {
    running = false;
    await loop;
    await show(); // the last state (Succeeded)
  };
}

export async function clusterDemo(options: ClusterDemoOptions): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      "demo --cluster starts a Kubernetes node (mounts, a bridge, iptables, cgroups): run it as root\n",
    );
    return 2;
  }
  const started = performance.now();
  const work = mkdtempSync(join(tmpdir(), "feedcrawl-demo-cluster-"));
  const perSite = Math.ceil(options.products / SHARDS);
  const logger = pino({ level: "warn" }, pino.destination({ dest: join(work, "backend.log"), sync: true }));
  let platform: RunningPlatform | undefined;
  let sites: Sites | undefined;
  let bucket: Disposable | undefined;
  let backend: IngestBackend | undefined;
  let s3Api: S3Client | undefined;
  let cleaned: Promise<void> | undefined;
  const cleanup = () => {
    cleaned ??= (async () => {
      say(`\ncleaning up: backend, sites, bucket, then the cluster (node, pods, bridge, iptables rules)`);
      const t = performance.now();
      await backend?.close().catch(() => {});
      await sites?.close().catch(() => {});
      await bucket?.cleanup().catch(() => {});
      s3Api?.destroy();
      await platform?.stop();
      if (!options.keep) rmSync(work, { recursive: true, force: true });
      say(`    removed in ${seconds(t)}${options.keep ? `; kept ${work}` : ""}`);
    })();
    return cleaned;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping the demo\n`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const timings: string[] = [];
  try {
    say(
      `feedcrawl demo on a real node: ${SHARDS} fixture sites → ${SHARDS} runner pods → S3 → operator pod → signed webhooks → ` +
        `${process.env.DATABASE_URL ? "PostgreSQL" : "SQLite"}`,
    );
    let t = performance.now();
    say("[1/6] the test binaries (built once when missing) and the image localhost/feedcrawl:dev from the Dockerfile");
    const prepared = await prepare({ parts: NODE_PARTS, node: true, image: true, log: (l) => say(`    ${l}`) });
    timings.push(`binaries and image ${seconds(t)}`);

    t = performance.now();
    say("[2/6] local cluster: etcd, kube-apiserver, kube-controller-manager, S3 (versitygw) and a node (~20 s)");
    platform = await startPlatform({ workDir: work, node: true, log: (line) => say(`    ${line}`) });
    // What `eval "$(npm run -s local-cluster -- env)"` would export: the helpers below read it.
    Object.assign(process.env, platform.env);
    const kubeconfig = platform.env.FEEDCRAWL_TEST_KUBECONFIG!;
    const nodeHost = platform.env.FEEDCRAWL_NODE_HOST!;
    const siteHosts = (platform.env.FEEDCRAWL_NODE_SITE_HOSTS ?? "").split(",").filter((h) => h !== "");
    const k = kubectlFor(kubeconfig);
    s3Api = s3Client();
    bucket = await createBucket("demo-feeds");
    const imported = await importImage(platform.env.FEEDCRAWL_CONTAINERD_ADDRESS!, prepared.image?.archive);
    say(`    image imported into the node's containerd (no registry) in ${imported.toFixed(1)} s`);
    timings.push(`cluster ${seconds(t)}`);
    say(`    ready in ${seconds(t)}; KUBECONFIG=${kubeconfig}`);

    t = performance.now();
    say(
      `[3/6] helm install ${RELEASE} charts/feedcrawl -n ${RELEASE_NS} --set image.repository=${IMAGE_REPOSITORY} ` +
        `--set image.tag=${IMAGE_TAG} --set image.pullPolicy=Never --set leaderElection.enabled=true ` +
        `--set-json webhook.privateNetworks='["${nodeHost}/32"]' --set-json feeds.allowedBuckets='["${bucket.name}"]' --wait`,
    );
    say(`    (namespace ${RELEASE_NS} labelled pod-security.kubernetes.io/enforce=restricted)`);
    const operator = await installOperator({
      kubeconfig,
      release: RELEASE,
      namespace: RELEASE_NS,
      webhookPrivateNetworks: [`${nodeHost}/32`],
      feedBuckets: [bucket.name],
    });
    say(
      `    operator pod ${operator.pod.metadata.name} Ready and holding the Lease ${RELEASE_NS}/${operator.name} (${seconds(t)})`,
    );
    timings.push(`helm install ${seconds(t)}`);

    t = performance.now();
    const hosts = hostsCoveringShards([...siteHosts, nodeHost], SHARDS);
    const secret = `whsec_${randomBytes(32).toString("base64")}`;
    sites = await serveSites({ hosts, products: perSite });
    backend = await createIngestBackend(
      configFromEnv({
        ...process.env,
        WEBHOOK_SECRET: secret,
        HOST: nodeHost,
        PORT: "0",
        SQLITE_PATH: join(work, "ingest.sqlite"),
        S3_ENDPOINT: platform.env.FEEDCRAWL_TEST_S3_ENDPOINT,
      }),
      { s3: s3Api, logger },
    );
    say(
      `[4/6] fixture sites ${sites.sites.map((s) => `${s.url}/`).join(" ")} (${perSite} products each), ` +
        `bucket s3://${bucket.name}, backend ${backend.url} (${backend.store.kind})`,
    );

    say(`[5/6] kubectl create namespace ${NS} (restricted), Secrets s3-creds and ingest-webhook, then`);
    await restrictedNamespace(k, NS);
    await crawlSecrets(
      k,
      NS,
      {
        accessKeyId: platform.env.FEEDCRAWL_TEST_S3_ACCESS_KEY!,
        secretAccessKey: platform.env.FEEDCRAWL_TEST_S3_SECRET_KEY!,
      },
      secret,
    );
    const manifest = join(work, "crawljob-e2e.yaml");
    writeFileSync(
      manifest,
      crawlManifest({
        sites: sites.sites.map((s) => s.url),
        siteNetwork: networkOf(nodeHost),
        s3Endpoint: platform.env.FEEDCRAWL_TEST_S3_ENDPOINT!,
        bucket: bucket.name,
        webhookUrl: backend.url,
      }),
    );
    say(`    kubectl -n ${NS} apply -f examples/crawljob-e2e.yaml   (placeholders filled: ${manifest})`);
    await k(["-n", NS, "apply", "-f", manifest]);
    say("    kubectl get crawl -w:  NAME  PHASE  PAGES  ITEMS  FEEDS");
    const stopFollowing = followCrawlJob(k);
    let pods: Any[];
    try {
      pods = await waitRunnerPods(k, NS, SHARDS, 300_000);
      await waitSucceeded(k, NS, 300);
    } finally {
      await stopFollowing();
    }
    timings.push(`kubectl apply → Succeeded ${seconds(t)}`);

    say(`[6/6] kubectl -n ${NS} get crawl,cfeed,pods`);
    say(indent(await k(["-n", NS, "get", "crawl,cfeed,pods"])));

    const job = await getJson(k, ["-n", NS, "get", "crawl", JOB]);
    pods = await runnerPods(k, NS);
    const feeds = (await getJson(k, ["-n", NS, "get", "cfeed", "-l", `feedcrawl.io/crawljob=${JOB}`])).items as Any[];
    const rows = await backend.store.countItems(`${job.metadata.uid}:`);
    const expected = sites.expectedItems().length;
    const exits = pods.map((p) => terminated(p)?.exitCode);
    const shardPages = Object.entries(job.status.shardStats ?? {})
      .sort()
      .map(([shard, s]) => `${shard}: ${(s as Any).pages}`)
      .join(", ");
    const ok = rows === expected && job.status.stats.items === expected && exits.every((c) => c === 0);
    say("");
    say(`runner pods        ${pods.length} (exit codes ${exits.join(", ")}; pages per shard ${shardPages})`);
    say(`pages crawled      ${job.status.stats.pages}`);
    say(`items scraped      ${job.status.stats.items}`);
    say(`feed files         ${feeds.length} CrawlFeeds (gzip jsonlines in s3://${bucket.name}, 100 items each)`);
    say(`webhook calls      ${backend.stats.loaded} loaded by the backend, from the operator pod`);
    say(`rows in the table  ${rows} (${backend.store.kind}, table items)`);
    say(`expected items     ${expected}${ok ? "  ✓ no loss, no duplicates" : "  ✗ MISMATCH"}`);
    say(`time taken         ${seconds(started)} (${timings.join(", ")})`);
    return ok ? 0 : 1;
  } finally {
    await cleanup();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
