// One worker of a shared crawl, as a child process for the Redis state tests
// (SIGKILL-able): it crawls a fixture site through RedisState and its shared
// politeness gate, and delivers "feed files" with the commit protocol of
// types.ts — every page yields two items; a batch is recorded (beginBatch),
// written to OUT/<worker>-<id>.jsonl by an atomic rename (the upload),
// remembered as stored (batchStored) and committed. On start it settles its
// pending batches first: a stored one is committed, one that was not is
// deleted and discarded. A redone page skips the items already committed.
//
// argv[2]: JSON WorkerConfig. Exit 0: the crawl finished everywhere.
import { existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import robotsParserModule from "robots-parser";
import { Agent, request } from "undici";
import { sleep } from "../../lib/sleep.ts";
import { fingerprintKey } from "../../runner/fingerprint.ts";
import { newRequest } from "../../runner/request.ts";
import { RedisState } from "../../runner/state/redis-state.ts";
import type { LeasedRequest, PageKey } from "../../runner/state/types.ts";

export interface WorkerConfig {
  redisUrl: string;
  job: string;
  worker: string;
  /** Enqueued by every worker at start (seen after the first: dropped). */
  startUrl: string;
  /** Where the batch files go. */
  out: string;
  leaseMs: number;
  /** Pages fetched at once by this worker. */
  concurrency: number;
  /** concurrentRequestsPerDomain, enforced across workers (or per worker when `sharedGate` is false). */
  perHost: number;
  sharedGate: boolean;
  /** Items per batch file. */
  batchItems: number;
  /** Time the upload takes and, again, the report (the windows a kill may fall into). */
  uploadMs: number;
}

// CommonJS at runtime: the default import is the function (see runner/robots.ts).
const robotsParser = robotsParserModule as unknown as typeof robotsParserModule.default;
const FEED = "f";
const cfg = JSON.parse(process.argv[2] as string) as WorkerConfig;
const state = new RedisState({ url: cfg.redisUrl, job: cfg.job, worker: cfg.worker, leaseMs: cfg.leaseMs });

let nextBatchId = 1;
let batch: { items: string[]; pages: Map<PageKey, number> } = { items: [], pages: new Map() };
let flushing: Promise<void> = Promise.resolve();
const crawlDelays = new Map<string, number>();
let localInFlight = 0;
// undici loaded up front (the global fetch loads it lazily, delaying a worker's first request by tens of ms).
const agent = new Agent({ keepAliveTimeout: 10_000 });

function store(batchId: number, items: string[]): string {
  const file = join(cfg.out, `${cfg.worker}-${batchId}.jsonl`);
  writeFileSync(`${file}.tmp`, items.map((i) => `${JSON.stringify(i)}\n`).join(""));
  renameSync(`${file}.tmp`, file);
  return file;
}

async function flushNow(): Promise<void> {
  if (batch.items.length === 0) return;
  const { items, pages } = batch;
  batch = { items: [], pages: new Map() };
  const batchId = nextBatchId++;
  const uri = join(cfg.out, `${cfg.worker}-${batchId}.jsonl`);
  await state.beginBatch({ feed: FEED, batchId, uri, pages: [...pages] });
  await sleep(cfg.uploadMs);
  store(batchId, items);
  await state.batchStored(FEED, batchId, { feed: FEED, batchId, uri, items: items.length, bytes: 0 } as never);
  await sleep(cfg.uploadMs); // the report (a CrawlFeed): idempotent, so a restart simply commits
  await state.commitBatch(FEED, batchId);
}

function flush(): Promise<void> {
  flushing = flushing.then(flushNow);
  return flushing;
}

async function settlePending(pending: Awaited<ReturnType<RedisState["open"]>>["pending"]): Promise<void> {
  for (const b of pending) {
    if (b.stored) await state.commitBatch(b.feed, b.batchId);
    else {
      if (existsSync(b.uri)) rmSync(b.uri);
      await state.discardBatch(b.feed, b.batchId);
    }
    nextBatchId = Math.max(nextBatchId, b.batchId + 1);
  }
  const last = (await state.lastBatchIds())[FEED];
  if (last !== undefined) nextBatchId = Math.max(nextBatchId, last + 1);
}

async function crawlDelayMs(origin: string): Promise<number> {
  let ms = crawlDelays.get(origin);
  if (ms !== undefined) return ms;
  const text = await state.politeness.robotsOnce(origin, async () => {
    const res = await request(`${origin}/robots.txt`, { dispatcher: agent });
    return JSON.stringify({ status: res.statusCode, body: await res.body.text() });
  });
  const { status, body } = JSON.parse(text) as { status: number; body: string };
  const delay = status === 200 ? robotsParser(`${origin}/robots.txt`, body).getCrawlDelay("feedcrawl") : 0;
  ms = Math.round((delay ?? 0) * 1000);
  crawlDelays.set(origin, ms);
  return ms;
}

/** A per-process limit, for the control run without the shared gate. */
async function localSlot(): Promise<void> {
  while (localInFlight >= cfg.perHost) await sleep(5);
  localInFlight++;
}

async function processPage(page: LeasedRequest): Promise<void> {
  const url = new URL(page.request.url);
  const delayMs = await crawlDelayMs(url.origin);
  let token: string | undefined;
  if (cfg.sharedGate)
    token = await state.politeness.acquire(url.host, { perHost: cfg.perHost, delayMs, slotTtlMs: 15_000 });
  else await localSlot();
  let html: string;
  try {
    const res = await request(url, { dispatcher: agent, headers: { "x-worker": cfg.worker } });
    html = await res.body.text();
  } finally {
    if (token) await state.politeness.release(url.host, token);
    else if (!cfg.sharedGate) localInFlight--;
  }
  const links = [...html.matchAll(/href="([^"]+)"/g)].map((m) => new URL(m[1] as string, url).href);
  await state.enqueue(
    links.map((l) => ({ key: fingerprintKey("GET", l), request: newRequest(l, page.request.depth + 1) })),
  );
  const items = [`${url.pathname}#a`, `${url.pathname}#b`];
  const skip = page.committed[FEED] ?? 0;
  for (const item of items.slice(skip)) {
    batch.items.push(item);
    batch.pages.set(page.key, (batch.pages.get(page.key) ?? 0) + 1);
  }
  await state.pageProcessed(page.key, { [FEED]: items.length });
  if (batch.items.length >= cfg.batchItems) await flush();
}

async function main(): Promise<void> {
  const opening = await state.open();
  if (opening.status === "finished") return;
  await settlePending(opening.pending);
  await state.enqueue([{ key: fingerprintKey("GET", cfg.startUrl), request: newRequest(cfg.startUrl, 0) }]);
  const running = new Set<Promise<void>>();
  for (;;) {
    const free = cfg.concurrency - running.size;
    const pages = free > 0 ? await state.dequeue(free) : [];
    for (const page of pages) {
      const task: Promise<void> = processPage(page).finally(() => running.delete(task));
      running.add(task);
    }
    if (pages.length > 0) continue;
    if (running.size > 0) {
      await Promise.race([...running, sleep(50)]);
      continue;
    }
    const progress = await state.progress();
    if (progress.queued === 0 && progress.inFlight === 0) {
      await flush();
      await state.markFinished("finished");
      if ((await state.progress()).finishReason !== undefined) return;
    }
    await sleep(100);
  }
}

main().then(
  async () => {
    await state.close();
    process.exit(0);
  },
  (err) => {
    process.stderr.write(`worker ${cfg.worker}: ${(err as Error).stack}\n`);
    process.exit(3);
  },
);
