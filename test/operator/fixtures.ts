// Shared builders for the operator's unit and integration tests.
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob, CrawlJobSpec } from "../../crds/schema/crawljob.ts";

export function crawlJobSpec(overrides: Partial<CrawlJobSpec> = {}): CrawlJobSpec {
  return {
    spider: {
      name: "books",
      startUrls: ["http://books.example/"],
      extract: [{ name: "product", itemSelector: "article", fields: { title: { selector: "h1", text: true } } }],
    },
    feeds: { "s3://crawl-data/%(name)s/part-%(batch_id)05d.jsonl": { format: "jsonlines", batchItemCount: 10 } },
    ingest: {
      webhook: {
        url: "https://backend.example/bulk-ingest",
        signingSecretRef: { name: "ingest-webhook", key: "secret" },
      },
    },
    ...overrides,
  };
}

export function crawlJob(spec: CrawlJobSpec = crawlJobSpec(), name = "books", namespace = "crawl"): CrawlJob {
  return {
    apiVersion: "feedcrawl.io/v1alpha1",
    kind: "CrawlJob",
    metadata: { name, namespace, uid: "11111111-2222-3333-4444-555555555555", generation: 1, resourceVersion: "10" },
    spec,
  };
}

export function crawlFeed(
  job: CrawlJob,
  n: number,
  state?: "Pending" | "Sending" | "Delivered" | "Failed",
  extra: Partial<CrawlFeed["spec"]> = {},
): CrawlFeed {
  return {
    apiVersion: "feedcrawl.io/v1alpha1",
    kind: "CrawlFeed",
    metadata: {
      name: `${job.metadata.name}-${String(n).padStart(10, "0")}`,
      namespace: job.metadata.namespace,
      labels: { "feedcrawl.io/crawljob": job.metadata.name!, "feedcrawl.io/shard": "0" },
      ownerReferences: [
        {
          apiVersion: "feedcrawl.io/v1alpha1",
          kind: "CrawlJob",
          name: job.metadata.name!,
          uid: job.metadata.uid!,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      uri: `s3://crawl-data/books/part-${String(n).padStart(5, "0")}.jsonl`,
      batchId: n,
      shard: 0,
      format: "jsonlines",
      items: 10,
      bytes: 1000,
      sha256: "a".repeat(64),
      closedAt: new Date(Date.UTC(2026, 10, 25, 10, 0, n)).toISOString(),
      ...extra,
    },
    ...(state ? { status: { delivery: { state, attempts: state === "Pending" ? 0 : 1 } } } : {}),
  };
}
