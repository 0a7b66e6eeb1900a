// A small crawl without a network for the commit-protocol tests: pages are
// leased from a real SqliteState, each yields `itemsPerPage` items into a real
// feed exporter (file or S3), and each page's end is recorded, as the crawler
// does. Run as a script (`node exactly-once-driver.ts CONFIG_JSON`), it stops
// dead at one chosen step of the commit protocol and prints HUNG, for the test
// to SIGKILL it there; called in-process, it recovers and runs to the end.
import { spawn } from "node:child_process";
import { appendFileSync } from "node:fs";
import path from "node:path";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { StorageSpec } from "../../crds/schema/feeds.ts";
import { createFeedExporter } from "../../runner/feeds/exporter.ts";
import { createS3Client } from "../../runner/feeds/storages/s3.ts";
import type { Item } from "../../runner/item.ts";
import { newRequest } from "../../runner/request.ts";
import { CheckpointedState } from "../../runner/state/checkpoint.ts";
import { s3CheckpointStore } from "../../runner/state/s3-checkpoint.ts";
import { SqliteState } from "../../runner/state/sqlite.ts";
import { type CrawlState, resumeBatchIds } from "../../runner/state/types.ts";
import { quietLogger } from "./helpers.ts";

export type HangPoint = "beginBatch" | "batchStored" | "report" | "commitBatch" | "uploadPart";

export interface DriverConfig {
  /** The job directory (state.sqlite, and reports.jsonl: one line per report, the CrawlFeed stand-in). */
  dir: string;
  feed: string;
  storage?: StorageSpec;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  pages: number;
  itemsPerPage: number;
  batchItemCount: number;
  /** Bytes of padding per item (a batch past the S3 part size is a multipart upload). */
  pad?: number;
  /** Stop dead at the nth call of this step (1-based), before it does anything. */
  hang?: { at: HangPoint; nth: number };
  /** The state is checkpointed to this S3 URI (a runner pod without Redis) and restored from it into an empty `dir`. */
  checkpoint?: string;
  /** Where reports go (default DIR/reports.jsonl): outside `dir` when a new "pod" gets an empty one. */
  reports?: string;
}

export function pageItems(cfg: Pick<DriverConfig, "itemsPerPage" | "pad">, page: number): Item[] {
  const pad = "x".repeat(cfg.pad ?? 0);
  return Array.from({ length: cfg.itemsPerPage }, (_, n) => ({
    type: "row",
    fields: { page, n, ...(pad ? { pad } : {}) },
  }));
}

/** Every item of the crawl, as the JSON of its fields, sorted. */
export function truth(cfg: DriverConfig): string[] {
  return Array.from({ length: cfg.pages }, (_, p) => pageItems(cfg, p).map((i) => JSON.stringify(i.fields)))
    .flat()
    .sort();
}

/** Runs the driver in a child process until it stops at its hang point, then SIGKILLs it. */
export async function killAt(cfg: DriverConfig): Promise<void> {
  const script = new URL(import.meta.url).pathname;
  const child = spawn(process.execPath, [script, JSON.stringify(cfg)], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d) => {
      stdout += d;
      if (stdout.includes("HUNG")) resolve();
    });
    exited.then((code) => reject(new Error(`driver ended (${code}) before its hang point:\n${stdout}${stderr}`)));
  });
  child.kill("SIGKILL");
  await exited;
}

const pageUrl = (page: number) => `http://site.test/page/${page}`;

/** Stops here for good, telling the test where (it SIGKILLs the process). */
function hang(at: string): Promise<never> {
  process.stdout.write(`HUNG ${at}\n`);
  return new Promise(() => {});
}

/** The state, with the chosen step made to stop dead. */
function withHang(state: CrawlState, cfg: DriverConfig): CrawlState {
  const h = cfg.hang;
  if (!h || h.at === "report" || h.at === "uploadPart") return state;
  let calls = 0;
  return new Proxy(state, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== h.at || typeof value !== "function") return typeof value === "function" ? value.bind(target) : value;
      return (...args: unknown[]) => (++calls === h.nth ? hang(h.at) : value.apply(target, args));
    },
  });
}

/** Runs (or resumes) the crawl to its end; returns the pending batches it found (id: stored?). */
export async function runDriver(cfg: DriverConfig): Promise<{ status: string; recovered: Map<number, boolean> }> {
  const client = cfg.storage?.s3 ? createS3Client(cfg.storage.s3, cfg.credentials) : undefined;
  const sqlite =
    cfg.checkpoint && client
      ? new CheckpointedState({
          dir: cfg.dir,
          identity: "driver",
          store: s3CheckpointStore(client, cfg.checkpoint),
          logger: quietLogger(),
        })
      : new SqliteState({ dir: cfg.dir, identity: "driver" });
  const opening = await sqlite.open();
  if (opening.status === "finished") {
    await sqlite.close();
    return { status: opening.status, recovered: new Map() };
  }
  const state = withHang(sqlite, cfg);
  let reports = 0;
  let uploadParts = 0;
  client?.middlewareStack.add(
    (next, ctx) => async (args) => {
      if (ctx.commandName === "UploadPartCommand" && cfg.hang?.at === "uploadPart" && ++uploadParts === cfg.hang.nth)
        await hang("uploadPart");
      return next(args);
    },
    { step: "initialize" },
  );
  const exporter = await createFeedExporter({
    feeds: { [cfg.feed]: { format: "jsonlines", batchItemCount: cfg.batchItemCount } },
    ...(cfg.storage ? { storage: cfg.storage } : {}),
    params: { name: "driver", job: "driver", shard: 0 },
    logger: quietLogger(),
    state,
    resumeAfter: resumeBatchIds(await sqlite.lastBatchIds(), opening.pending),
    ...(client ? { s3: { client } } : {}),
    spool: { dir: path.join(cfg.dir, "spool") },
    onFeedClosed: async (ev: FeedClosed) => {
      if (cfg.hang?.at === "report" && ++reports === cfg.hang.nth) await hang("report");
      appendFileSync(
        cfg.reports ?? path.join(cfg.dir, "reports.jsonl"),
        `${JSON.stringify({ uri: ev.uri, items: ev.items })}\n`,
      );
    },
  });
  await exporter.recover(opening.pending);
  if (opening.status === "new")
    await state.enqueue(
      Array.from({ length: cfg.pages }, (_, i) => ({ key: `page-${i}`, request: newRequest(pageUrl(i), 0) })),
    );
  for (;;) {
    const leased = await state.dequeue(3);
    if (leased.length === 0) break;
    for (const lease of leased) {
      const progress = { key: lease.key, committed: lease.committed, produced: {} };
      const page = Number(lease.request.url.split("/").pop());
      for (const item of pageItems(cfg, page)) await exporter.write(item, progress);
      await state.pageProcessed(lease.key, progress.produced);
    }
  }
  await exporter.close("finished");
  await state.markFinished("finished");
  await sqlite.close();
  client?.destroy();
  return {
    status: opening.status,
    recovered: new Map(opening.pending.map((b) => [b.batchId, b.stored !== undefined])),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runDriver(JSON.parse(process.argv[2] as string) as DriverConfig);
  process.stdout.write("DONE\n");
}
