#!/usr/bin/env node
// The whole feedcrawl loop on one machine, no cluster and no cloud:
//
//   fixture site (loopback) → crawl engine → batched gzip jsonlines feed files
//   (file://) → one signed webhook per closed file → the reference backend →
//   bulk load into SQLite (node:sqlite), or PostgreSQL when DATABASE_URL is set.
//
//   npm run demo                       # 1000 products, 250 items per file
//   node examples/demo.ts --products 5000 --batch 1000 --keep
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node examples/demo.ts
//
// In a cluster the operator makes the webhook calls (same payload, same
// signature, same idempotency key); here the demo plays its part.
//
//   npm run demo -- --cluster          # the same loop on a real node (examples/demo-cluster.ts):
//                                      # helm install, kubectl apply, runner pods, S3, the operator's webhooks
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { request } from "undici";
import { parse } from "yaml";
import type { CrawlFeedSpec } from "../crds/schema/crawlfeed.ts";
import type { SpiderSpec } from "../crds/schema/spider.ts";
import { feedClosedEvent } from "../operator/delivery/payload.ts";
import { signatureHeaders, webhookSigner } from "../operator/delivery/signing.ts";
import { Crawler } from "../runner/crawler.ts";
import { createFeedExporter } from "../runner/feeds/exporter.ts";
import { createCatalogue } from "../test/fixtures/catalogue.ts";
import { configFromEnv } from "./ingest-backend/config.ts";
import { createIngestBackend } from "./ingest-backend/server.ts";

const usage = `usage: node examples/demo.ts [--cluster] [--products N] [--batch N] [--keep]

  --cluster      run it on a real Kubernetes node started here (root; \`npm run testbin\` once):
                 the image from the Dockerfile, helm install, kubectl apply of
                 examples/crawljob-e2e.yaml, 3 runner pods over 3 sites, S3, the
                 operator pod's webhooks; removed again at the end
  --products N   size of the fixture catalogue (default 1000; with --cluster 900, a third per site)
  --batch N      items per feed file (batchItemCount, default 250; with --cluster the manifest's 100)
  --keep         keep the work folder (feed files, SQLite database, logs) and print its path
  DATABASE_URL   load into PostgreSQL instead of the embedded SQLite
`;

interface Delivered {
  file: string;
  items: number;
  status: number;
  rows: number;
  attempts: number;
}

/** POSTs one signed feed.closed event the way the operator does, retrying 5xx and connection errors. */
async function deliver(
  url: string,
  secret: string,
  body: string,
  webhookId: string,
): Promise<{ status: number; rows: number; attempts: number }> {
  const signer = webhookSigner(new TextEncoder().encode(secret));
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await request(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...signatureHeaders(signer, webhookId, new Date(), body) },
        body,
      });
      const answer = (await response.body.json()) as { rows?: number; error?: string };
      if (response.statusCode < 500 || attempt === 3) {
        if (response.statusCode >= 300 && response.statusCode !== 409) {
          throw new Error(`Webhook ${webhookId} answered ${response.statusCode}: ${answer.error ?? ""}`);
        }
        return { status: response.statusCode, rows: answer.rows ?? 0, attempts: attempt };
      }
    } catch (err) {
      if (attempt === 3) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      products: { type: "string" },
      batch: { type: "string", default: "250" },
      keep: { type: "boolean", default: false },
      cluster: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const products = Number(values.products ?? (values.cluster ? 900 : 1000));
  const batch = Number(values.batch);
  if (!Number.isInteger(products) || products < 1 || !Number.isInteger(batch) || batch < 1) {
    process.stderr.write(`--products and --batch must be positive integers\n\n${usage}`);
    return 2;
  }
  if (values.cluster) {
    const { clusterDemo } = await import("./demo-cluster.ts");
    return clusterDemo({ products, keep: values.keep });
  }

  const started = performance.now();
  // Warnings and errors of every part go to stderr as pino JSON; the story goes to stdout.
  const logger = pino({ level: process.env.LOG_LEVEL ?? "error" }, pino.destination(2));
  const work = mkdtempSync(join(tmpdir(), "feedcrawl-demo-"));
  const feedsDir = join(work, "feeds");
  mkdirSync(feedsDir);
  const say = (line: string) => process.stdout.write(`${line}\n`);

  const catalogue = createCatalogue({ products });
  const site = await catalogue.listen({ host: "127.0.0.1", port: 0, traps: false, altHost: null });
  const secret = `whsec_${randomBytes(32).toString("base64")}`;
  const backend = await createIngestBackend(
    configFromEnv({
      ...process.env,
      WEBHOOK_SECRET: secret,
      HOST: "127.0.0.1",
      PORT: "0",
      SQLITE_PATH: join(work, "ingest.sqlite"),
      FILE_FEEDS_ROOT: feedsDir,
    }),
    { logger },
  );
  const job = { namespace: "demo", name: "books-demo", uid: randomUUID() };

  try {
    say(
      `feedcrawl demo: crawl ${site.url}/ (${products} products), feeds of ${batch} items → ${backend.url} (${backend.store.kind})`,
    );

    // The spider of examples/books-local.yaml, pointed at this site.
    const example = parse(readFileSync(new URL("books-local.yaml", import.meta.url), "utf8")) as {
      spec: { spider: SpiderSpec };
    };
    const spider: SpiderSpec = {
      ...example.spec.spider,
      name: "books-demo",
      startUrls: [`${site.url}/`],
      allowedDomains: ["127.0.0.1"],
    };

    const delivered: Delivered[] = [];
    const feedUri = `${pathToFileURL(feedsDir).href}/%(name)s/part-%(batch_id)05d.jsonl.gz`;
    const exporter = await createFeedExporter({
      feeds: { [feedUri]: { format: "jsonlines", batchItemCount: batch, postprocessing: ["gzip"] } },
      params: { name: spider.name, job: job.name, shard: 0 },
      logger,
      // Called once the file is stored: here the operator would see the CrawlFeed and call the webhook.
      onFeedClosed: async (feed: CrawlFeedSpec) => {
        const event = feedClosedEvent(job, feed);
        const answer = await deliver(backend.url, secret, JSON.stringify(event), event.id);
        const file = feed.uri.slice(feed.uri.lastIndexOf("/") + 1);
        delivered.push({ file, items: feed.items, ...answer });
        say(
          `  ${file}  ${String(feed.items).padStart(6)} items  ${String(feed.bytes).padStart(8)} bytes  → webhook ${answer.status}, ${answer.rows} rows loaded`,
        );
      },
    });
    const crawler = new Crawler({ spider, sink: exporter, logger });
    const result = await crawler.run();
    if (result.error) throw result.error;

    const stats = result.stats.status;
    const rows = await backend.store.countItems(`${job.uid}:`);
    const seconds = (performance.now() - started) / 1000;
    const ok = rows === products && stats.items === products;
    say("");
    say(`pages crawled      ${stats.pages}`);
    say(`items scraped      ${stats.items}`);
    say(`feed files         ${exporter.closedFeeds.length} (gzip jsonlines, ${batch} items each)`);
    say(`webhook calls      ${delivered.length} (${delivered.filter((d) => d.status === 200).length} × 200)`);
    say(`rows in the table  ${rows} (${backend.store.kind}, table items)`);
    say(`expected items     ${products}${ok ? "  ✓ no loss, no duplicates" : "  ✗ MISMATCH"}`);
    say(`time taken         ${seconds.toFixed(1)} s`);
    if (values.keep) {
      say("");
      say(`feed files:  ${feedsDir}`);
      if (backend.store.kind === "sqlite")
        say(`database:    ${join(work, "ingest.sqlite")}  (sqlite3 … 'select count(*) from items')`);
    }
    return ok ? 0 : 1;
  } finally {
    await backend.close();
    await site.close();
    if (!values.keep) rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`demo failed: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  },
);
