// The commit protocol on the real S3 server (versitygw): a process SIGKILLed
// during a multipart upload, and runner "pods" whose local disk is lost —
// their crawl state comes back from the checkpoint in the feed bucket
// (runner/state/checkpoint.ts). Every time, the union of the stored objects
// equals the truth (each item once) and the reports name exactly those objects.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { S3Client } from "@aws-sdk/client-s3";
import type { StorageSpec } from "../../crds/schema/feeds.ts";
import { platform } from "../platform/env.ts";
import { type DriverConfig, type HangPoint, killAt, runDriver, truth } from "./exactly-once-driver.ts";
import { createBucket, directClient, dropBucket, getObject, listKeys, listMultipartUploads } from "./s3-helpers.ts";

let s3: S3Client;
let bucket: string;
const tmp = mkdtempSync(join(tmpdir(), "exactly-once-s3-"));

before(async () => {
  s3 = directClient();
  bucket = await createBucket(s3, "exactly-once");
});
after(async () => {
  await dropBucket(s3, bucket);
  rmSync(tmp, { recursive: true, force: true });
});

function storage(): StorageSpec {
  const p = platform().s3;
  return { s3: { endpoint: p.endpoint, region: p.region, forcePathStyle: true, partSizeBytes: 5 * 1024 * 1024 } };
}

function config(name: string, hang: { at: HangPoint; nth: number }, extra: Partial<DriverConfig> = {}): DriverConfig {
  const p = platform().s3;
  return {
    dir: join(tmp, name, "pod-1"),
    reports: join(tmp, `${name}-reports.jsonl`),
    feed: `s3://${bucket}/${name}/rows-%(batch_id)05d.jsonl`,
    storage: storage(),
    credentials: { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey },
    pages: 12,
    itemsPerPage: 5,
    batchItemCount: 4,
    hang,
    ...extra,
  };
}

async function deliveredItems(prefix: string): Promise<{ keys: string[]; items: string[] }> {
  const keys = (await listKeys(s3, bucket, `${prefix}/rows-`)).filter((k) => k.endsWith(".jsonl"));
  const items: string[] = [];
  for (const key of keys) {
    const { body } = await getObject(s3, bucket, key);
    items.push(...body.toString("utf8").split("\n").filter(Boolean));
  }
  return { keys, items: items.sort() };
}

function reportedKeys(cfg: DriverConfig): string[] {
  const lines = readFileSync(cfg.reports as string, "utf8")
    .split("\n")
    .filter(Boolean);
  const uris = new Set(lines.map((l) => (JSON.parse(l) as { uri: string }).uri));
  return [...uris].map((u) => u.slice(`s3://${bucket}/`.length)).sort();
}

test("killed during a multipart upload: no object was visible; resumed, every item is stored once", async () => {
  // ~100 KB items, 60 per batch: each batch is a two-part upload; the kill comes before the second part.
  const cfg = config(
    "multipart",
    { at: "uploadPart", nth: 2 },
    { pages: 8, itemsPerPage: 20, batchItemCount: 60, pad: 100_000 },
  );
  await killAt(cfg);
  assert.deepEqual(await deliveredItems("multipart").then((d) => d.keys), [], "no partial object is visible");
  assert.ok(
    (await listMultipartUploads(s3, bucket)).some((u) => u.Key?.startsWith("multipart/")),
    "killed mid-upload",
  );
  const { hang: _, ...resume } = cfg;
  const result = await runDriver(resume);
  assert.equal(result.recovered.get(1), false, "batch 1 was pending, never stored");
  const { keys, items } = await deliveredItems("multipart");
  assert.deepEqual(items, truth(cfg));
  assert.deepEqual(reportedKeys(cfg), keys);
});

for (const [at, what] of [
  ["batchStored", "after the upload, before it was marked stored (the object is taken back)"],
  ["report", "after it was marked stored and checkpointed, before the report"],
  ["commitBatch", "after the report, before the commit"],
] as const) {
  test(`a new pod restores the checkpoint: killed ${what}`, async () => {
    const name = `pod-${at}`;
    const cfg = config(name, { at, nth: 3 }, { checkpoint: `s3://${bucket}/${name}/.feedcrawl-state/shard-0.sqlite` });
    await killAt(cfg);
    // The next pod: an empty disk, the state from the bucket.
    const { hang: _, ...next } = { ...cfg, dir: join(tmp, name, "pod-2") };
    const result = await runDriver(next);
    assert.equal(result.status, "resumed", "the state came back from the checkpoint");
    const { keys, items } = await deliveredItems(name);
    assert.deepEqual(items, truth(cfg), "each item in exactly one stored object");
    assert.deepEqual(reportedKeys(cfg), keys, "every object reported, and only those");
    // And a third pod, after the end: the restored state says finished.
    const third = await runDriver({ ...next, dir: join(tmp, name, "pod-3") });
    assert.equal(third.status, "finished");
  });
}
