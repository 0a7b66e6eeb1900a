// What the real-node e2e files run around the cluster: the fixture sites on
// the node's bridge addresses, a bucket, the reference backend (on the bridge
// address, loading a database of its own) with a SQL client on that
// database; and the clean-up steps for it and for the chart's release.
import pg from "pg";
import type { IngestBackend } from "../../examples/ingest-backend/server.ts";
import { helm } from "../chart/helm.ts";
import { type Sites, serveSites } from "../fixtures/sites.ts";
import { node, platform } from "../platform/env.ts";
import { createBucket, type Disposable, pgDatabase, s3Client, type TestDatabase } from "../platform/fixtures.ts";
import { CRD_NAMES, type Kubectl, runCleanup, startNodeBackend } from "./cluster.ts";

export interface E2eBed {
  s3: ReturnType<typeof s3Client>;
  sites: Sites;
  bucket: Disposable;
  db: TestDatabase;
  backend: IngestBackend;
  sql: pg.Client;
}

type CleanupStep = [what: string, run: (() => Promise<unknown>) | undefined];

/** Clean-up steps for a bed, or for the part of one that started. */
export function bedCleanup(bed: Partial<E2eBed> | undefined): CleanupStep[] {
  return [
    ["SQL client", bed?.sql ? () => bed.sql!.end() : undefined],
    ["backend", bed?.backend?.close],
    ["database", bed?.db?.cleanup],
    ["bucket", bed?.bucket?.cleanup],
    ["S3 client", bed?.s3 ? async () => bed.s3!.destroy() : undefined],
    ["sites", bed?.sites?.close],
  ];
}

/** Starts the parts side by side; when one fails, stops those that started and throws its error. */
export async function startBed(o: {
  /** Names the bucket and the database. */
  name: string;
  hosts: string[];
  products: number;
  webhookSecret: string;
  /** Where the backend writes backend.log. */
  workDir: string;
}): Promise<E2eBed> {
  const bed: Partial<E2eBed> = { s3: s3Client() };
  const results = await Promise.allSettled([
    serveSites({ hosts: o.hosts, products: o.products }).then((s) => {
      bed.sites = s;
    }),
    createBucket(o.name).then((b) => {
      bed.bucket = b;
    }),
    (async () => {
      bed.db = await pgDatabase(o.name);
      bed.backend = await startNodeBackend({
        secret: o.webhookSecret,
        databaseUrl: bed.db.connectionString,
        host: node().host,
        s3Endpoint: platform().s3.endpoint,
        s3: bed.s3!,
        workDir: o.workDir,
      });
      const sql = new pg.Client({ connectionString: bed.db.connectionString });
      await sql.connect();
      bed.sql = sql;
    })(),
  ]);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) {
    await runCleanup(bedCleanup(bed));
    throw failed.reason;
  }
  return bed as E2eBed;
}

/**
 * Clean-up steps for the chart's release: uninstall (always: an install whose
 * wait timed out left a release and cluster-scoped RBAC behind), its
 * namespace, and the CRDs, which the chart keeps on uninstall (crds.keep) —
 * removed so that the next install owns them again.
 */
export function releaseCleanup(
  k: Kubectl,
  kubeconfig: string | undefined,
  release: string,
  namespace: string,
): CleanupStep[] {
  return [
    [
      "helm release",
      kubeconfig
        ? () =>
            helm(["uninstall", release, "-n", namespace, "--kubeconfig", kubeconfig, "--wait", "--ignore-not-found"])
        : undefined,
    ],
    [
      "operator namespace",
      () => k(["delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=60s"]),
    ],
    ["CRDs", () => k(["delete", "crd", ...CRD_NAMES, "--ignore-not-found"])],
  ];
}
