// Helpers for the operator's integration tests: install the generated CRDs,
// run the operator in-process (or as a `feedcrawl operator` child process),
// create Secrets and CrawlJobs, read status.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, openSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import type { CrawlJob, CrawlJobSpec } from "../../crds/schema/crawljob.ts";
import type { KubeClient, KubeObject } from "../../kube/client.ts";
import type { KubeAuth } from "../../kube/kubeconfig.ts";
import { CRAWLJOBS, SECRETS } from "../../kube/resources.ts";
import { Manager, type ManagerOptions } from "../../operator/manager.ts";
import { getCondition } from "../../operator/runtime/conditions.ts";
import { type CatalogueServer, createCatalogue } from "../fixtures/catalogue.ts";
import { platform } from "../platform/env.ts";
import { createBucket, createNamespace, type Disposable, eventually, kubectl } from "../platform/fixtures.ts";
import { REPO_ROOT } from "./kubelet.ts";
import { type Receiver, startReceiver } from "./receiver.ts";

export const CRD_FILES = [
  join(REPO_ROOT, "crds/feedcrawl.io_crawljobs.yaml"),
  join(REPO_ROOT, "crds/feedcrawl.io_crawlfeeds.yaml"),
  join(REPO_ROOT, "crds/feedcrawl.io_crawlschedules.yaml"),
];

/** Applies the generated CRDs (idempotent: server-side apply) and waits until they are served. */
export async function installCrds(kubeconfig?: string): Promise<void> {
  const files = CRD_FILES.flatMap((f) => ["-f", f]);
  await kubectl(["apply", "--server-side", "--force-conflicts", "--field-manager=feedcrawl-tests", ...files], {
    kubeconfig,
  });
  await kubectl(["wait", "--for=condition=Established", "--timeout=60s", ...files], { kubeconfig });
}

export function tempDir(prefix: string): string {
  const parent = process.env.FEEDCRAWL_TEST_WORKDIR || "/tmp";
  return mkdtempSync(join(parent, `${prefix}-`));
}

export interface RunningOperator {
  manager: Manager;
  logPath: string;
  stop(): Promise<void>;
}

/** The operator in this process (its logs go to a file the test can read). */
export async function startOperator(
  kc: KubeAuth,
  options: Partial<ManagerOptions> & { namespaces: string[]; workDir: string },
): Promise<RunningOperator> {
  const logPath = join(options.workDir, `operator-${process.pid}-${Date.now()}.log`);
  const stream = createWriteStream(logPath);
  const logger = pino({ level: "debug", base: { component: "operator" } }, stream);
  // The tests' webhook receivers listen on loopback: the operator-level allow-list admits it.
  const manager = new Manager({
    kc,
    logger,
    runnerImage: "feedcrawl:test",
    resyncMs: 30_000,
    webhookPrivateNetworks: ["127.0.0.0/8"],
    ...options,
  });
  await manager.start();
  return {
    manager,
    logPath,
    async stop() {
      await manager.stop();
      await new Promise((resolve) => stream.end(resolve));
    },
  };
}

/** What a crawl of the fixture site through the operator needs, and its one cleanup. */
export interface CrawlBed {
  ns: Disposable;
  bucket: Disposable;
  site: CatalogueServer;
  receiver: Receiver;
  operator: RunningOperator;
  close(): Promise<void>;
}

/**
 * A namespace `prefix-…` with the Secrets `s3-creds` (the platform's S3) and
 * `ingest-webhook` (the receiver's), a bucket, the fixture catalogue of
 * `products`, a signature-checking receiver, and the operator watching that
 * namespace.
 */
export async function startCrawlBed(
  kc: KubeAuth,
  client: KubeClient,
  prefix: string,
  products: number,
  workDir: string,
): Promise<CrawlBed> {
  await installCrds();
  const ns = await createNamespace(prefix);
  const bucket = await createBucket(prefix);
  const site = await createCatalogue({ products, perPage: 10 }).listen({ traps: false, altHost: null });
  const receiver = await startReceiver();
  const { s3 } = platform();
  await createSecret(client, ns.name, "s3-creds", { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey });
  await createSecret(client, ns.name, "ingest-webhook", { secret: receiver.secret });
  const operator = await startOperator(kc, { namespaces: [ns.name], workDir });
  return {
    ns,
    bucket,
    site,
    receiver,
    operator,
    async close() {
      await operator.stop();
      await receiver.close();
      await site.close();
      await bucket.cleanup();
      await ns.cleanup();
    },
  };
}

/** The books spider for the fixture catalogue: listing pages followed, one `product` item per detail page. */
export function catalogueSpider(siteUrl: string, settings: Record<string, unknown> = {}): CrawlJobSpec["spider"] {
  return {
    name: "books",
    startUrls: [`${siteUrl}/`],
    follow: [{ selector: "ul.pager li.next a" }, { selector: "article.product_pod h3 a", allow: ["/catalogue/"] }],
    extract: [
      {
        name: "product",
        itemSelector: "article.product_page",
        urlPattern: "/catalogue/[^/]+_[0-9]+/index\\.html$",
        fields: { title: { selector: "h1", text: true, required: true } },
      },
    ],
    settings: { robotsTxtObey: false, allowPrivateNetworks: ["127.0.0.0/8"], ...settings },
  } as CrawlJobSpec["spider"];
}

/** A CrawlJob spec for a bed: its catalogue crawled into its bucket in batches of 10, its receiver webhooked. */
export function crawlBedSpec(
  bed: Pick<CrawlBed, "bucket" | "site" | "receiver">,
  settings: Record<string, unknown> = {},
): CrawlJobSpec {
  const { s3 } = platform();
  return {
    spider: catalogueSpider(bed.site.url, settings),
    feeds: {
      [`s3://${bed.bucket.name}/%(job)s/%(shard)d/part-%(batch_id)05d.jsonl`]: {
        format: "jsonlines",
        batchItemCount: 10,
      },
    },
    storage: {
      s3: {
        endpoint: s3.endpoint,
        region: s3.region,
        forcePathStyle: true,
        credentialsSecretRef: { name: "s3-creds" },
      },
    },
    ingest: {
      webhook: { url: bed.receiver.url, signingSecretRef: { name: "ingest-webhook" }, allowPrivateNetworks: true },
    },
  } as CrawlJobSpec;
}

/** `feedcrawl operator …` as a child process, logs to a file. */
export function spawnOperator(kubeconfig: string, args: string[], logPath: string): ChildProcess {
  const log = openSync(logPath, "a");
  return spawn(
    process.execPath,
    [join(REPO_ROOT, "bin/feedcrawl.ts"), "operator", "--webhook-private-networks=127.0.0.0/8", ...args],
    {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        KUBECONFIG: kubeconfig,
        FEEDCRAWL_IMAGE: "feedcrawl:test",
      },
      stdio: ["ignore", log, log],
    },
  );
}

export async function createSecret(
  client: KubeClient,
  namespace: string,
  name: string,
  data: Record<string, string>,
): Promise<void> {
  await client.create(SECRETS, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace },
    stringData: data,
  } as KubeObject);
}

export function crawlJobObject(namespace: string, name: string, spec: unknown): KubeObject {
  return { apiVersion: "feedcrawl.io/v1alpha1", kind: "CrawlJob", metadata: { name, namespace }, spec } as KubeObject;
}

/** Creates a CrawlJob as `kubectl apply` would (unknown fields are errors). */
export function createCrawlJob(
  client: KubeClient,
  namespace: string,
  name: string,
  spec: unknown,
): Promise<CrawlJob & KubeObject> {
  return client.create(CRAWLJOBS, crawlJobObject(namespace, name, spec), { fieldValidation: "Strict" }) as Promise<
    CrawlJob & KubeObject
  >;
}

export async function readCrawlJob(
  client: KubeClient,
  namespace: string,
  name: string,
): Promise<CrawlJob & KubeObject> {
  return client.get<CrawlJob & KubeObject>(CRAWLJOBS, namespace, name);
}

export function condition(job: CrawlJob, type: string) {
  return getCondition(job.status?.conditions, type);
}

/** Waits until the CrawlJob's condition `type` has `status`; returns the CrawlJob as read then. */
export function untilCondition(
  client: KubeClient,
  namespace: string,
  name: string,
  type: string,
  status: "True" | "False" | "Unknown",
  timeoutMs?: number,
): Promise<CrawlJob & KubeObject> {
  return eventually(
    `CrawlJob ${name}: ${type}=${status}`,
    async () => {
      const job = await readCrawlJob(client, namespace, name);
      return condition(job, type)?.status === status ? job : undefined;
    },
    timeoutMs,
  );
}
