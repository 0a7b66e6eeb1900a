// The informers' string pool (operator/runtime/intern.ts): what it does to an
// object's metadata must never change a value. Its memory effect is measured
// in bench/ (the operator at 1,000 CrawlJobs and 10,000 CrawlFeeds).
import assert from "node:assert/strict";
import { test } from "node:test";
import { intern, internMetadata } from "../../operator/runtime/intern.ts";

const feed = (job: string) =>
  JSON.parse(
    JSON.stringify({
      apiVersion: "feedcrawl.io/v1alpha1",
      kind: "CrawlFeed",
      metadata: {
        name: `${job}-0123456789`,
        namespace: "crawl",
        labels: { "feedcrawl.io/crawljob": job, "feedcrawl.io/shard": "0" },
        ownerReferences: [
          { apiVersion: "feedcrawl.io/v1alpha1", kind: "CrawlJob", name: job, uid: `uid-of-${job}`, controller: true },
        ],
      },
      spec: { uri: `s3://b/${job}/1.jsonl` },
    }),
  );

test("internMetadata keeps every value and leaves the rest of the object alone", () => {
  const objects = ["books", "shoes", "books"].map(feed);
  const before = structuredClone(objects);
  for (const o of objects) assert.equal(internMetadata(o), o, "in place");
  assert.deepEqual(objects, before);
});

test("internMetadata adds no field to a cluster-scoped object", () => {
  const node: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } } = {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: "n1" },
  };
  internMetadata(node);
  assert.deepEqual(Object.keys(node.metadata), ["name"]);
});

test("intern hands back an equal string, before and after the pool starts over", () => {
  for (let i = 0; i < 120_000; i++) assert.equal(intern(`value-${i % 60_000}`), `value-${i % 60_000}`);
  assert.equal(intern(undefined), undefined);
});
