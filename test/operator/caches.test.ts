// The reconcile's cache helpers: the generic informer index, the Secret
// transform (key names only), the Secret → CrawlJob index, and validation's
// refusal of a spec without feeds.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KubeObject } from "../../kube/client.ts";
import {
  configMapDigestTransform,
  crawlJobsBySecretIndex,
  dataDigest,
  secretKeysTransform,
} from "../../operator/crawljob/caches.ts";
import { validateCrawlJob } from "../../operator/crawljob/validate.ts";
import { controllerUid, Index } from "../../operator/runtime/index.ts";
import { crawlJob, crawlJobSpec } from "./fixtures.ts";

type Handler<T> = (obj: T, old?: T) => void;

/** Plays an informer's events. */
function source<T>() {
  const handlers: Record<string, Handler<T>[]> = { add: [], update: [], delete: [] };
  return {
    on(event: "add" | "update" | "delete", handler: Handler<T>) {
      handlers[event]!.push(handler);
    },
    emit(event: "add" | "update" | "delete", obj: T) {
      for (const h of handlers[event]!) h(obj);
    },
  };
}

const pod = (name: string, owner?: string): KubeObject => ({
  metadata: {
    name,
    namespace: "crawl",
    ...(owner
      ? { ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: "j", uid: owner, controller: true }] }
      : {}),
  },
});

test("Index: objects by value, moved on update, dropped on delete", () => {
  const events = source<KubeObject>();
  const index = new Index(events, controllerUid);
  events.emit("add", pod("a", "job-1"));
  events.emit("add", pod("b", "job-1"));
  events.emit("add", pod("c"));
  assert.deepEqual(
    index
      .get("job-1")
      .map((p) => p.metadata.name)
      .sort(),
    ["a", "b"],
  );
  events.emit("update", pod("b", "job-2"));
  assert.deepEqual(
    index.get("job-1").map((p) => p.metadata.name),
    ["a"],
  );
  assert.deepEqual(
    index.get("job-2").map((p) => p.metadata.name),
    ["b"],
  );
  events.emit("delete", pod("a", "job-1"));
  assert.deepEqual(index.get("job-1"), []);
  assert.deepEqual(index.get("nothing"), []);
});

test("the Secret cache keeps names and key names, never a value", () => {
  const cached = secretKeysTransform({
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: "s3",
      namespace: "crawl",
      uid: "u",
      resourceVersion: "7",
      annotations: { "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"k":"c2VjcmV0"}}' },
      managedFields: [{ manager: "kubectl" }],
    } as KubeObject["metadata"],
    data: { accessKeyId: "QUtJQQ==", secretAccessKey: "c2VjcmV0" },
  });
  assert.deepEqual(cached, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "s3", namespace: "crawl", uid: "u", resourceVersion: "7" },
    keys: ["accessKeyId", "secretAccessKey"],
  });
  assert.doesNotMatch(JSON.stringify(cached), /c2VjcmV0|QUtJQQ/);
});

test("the spec ConfigMap cache keeps a digest of the data: equal for equal data in any key order, else not", () => {
  const cm = (data: Record<string, string>) => ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "books-spec", namespace: "crawl" },
    data,
  });
  const cached = configMapDigestTransform(cm({ "crawljob.json": "{}", other: "x" }));
  assert.deepEqual(Object.keys(cached).sort(), ["apiVersion", "dataDigest", "kind", "metadata"]);
  assert.equal(cached.dataDigest, dataDigest({ other: "x", "crawljob.json": "{}" }));
  assert.notEqual(cached.dataDigest, dataDigest({ "crawljob.json": "{}", other: "y" }));
  assert.notEqual(dataDigest({ a: "b" }), dataDigest({ ab: "" }), "keys and values do not run together");
  assert.equal(configMapDigestTransform(cm({})).dataDigest, dataDigest(undefined));
});

test("a Secret maps to exactly the CrawlJobs whose spec names it, in their namespace", () => {
  const events = source<ReturnType<typeof crawlJob> & KubeObject>();
  const index = crawlJobsBySecretIndex(events);
  const withS3 = crawlJobSpec({ storage: { s3: { credentialsSecretRef: { name: "s3" } } } });
  events.emit("add", crawlJob(withS3, "a") as never);
  events.emit("add", crawlJob(crawlJobSpec(), "b") as never);
  events.emit("add", crawlJob(withS3, "c", "other") as never);
  const names = (key: string) => index.get(key).map((j) => `${j.metadata.namespace}/${j.metadata.name}`);
  assert.deepEqual(names("crawl/s3"), ["crawl/a"]);
  assert.deepEqual(names("crawl/ingest-webhook").sort(), ["crawl/a", "crawl/b"]);
  assert.deepEqual(names("other/s3"), ["other/c"]);
  events.emit("update", crawlJob(crawlJobSpec(), "a") as never);
  assert.deepEqual(names("crawl/s3"), []);
});

test("a spec without feeds is not Validated, naming spec.feeds (the runner would exit 2)", async () => {
  const lookup = () => ["secret"];
  for (const feeds of [undefined, {}]) {
    const failure = await validateCrawlJob("crawl", { ...crawlJobSpec(), feeds }, lookup);
    assert.equal(failure?.reason, "InvalidSpec");
    assert.match(failure!.message, /^spec\.feeds: at least one feed is required/);
  }
  assert.equal(await validateCrawlJob("crawl", crawlJobSpec(), lookup), undefined);
});
