// The operator's informers survive an API server restart (a private
// apiserver+etcd for this test): while it is down nothing can change, so
// after it is back the test changes things and the operator must see them
// all — a new CrawlJob gets its runner, a finished runner finishes its job.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { CONFIGMAPS, JOBS, NAMESPACES } from "../../kube/resources.ts";
import { informerRelists } from "../../operator/metrics.ts";
import { Informer } from "../../operator/runtime/informer.ts";
import { eventually, type OwnControlPlane, startOwnControlPlane } from "../platform/fixtures.ts";
import {
  createCrawlJob,
  installCrds,
  type RunningOperator,
  startOperator,
  tempDir,
  untilCondition,
} from "./harness.ts";
import { playJob, reportingExecutor } from "./kubelet.ts";

const spec = {
  spider: {
    name: "books",
    startUrls: ["https://books.example/"],
    extract: [{ name: "product", itemSelector: "article", fields: { title: { selector: "h1", text: true } } }],
  },
  feeds: { "s3://crawl-data/%(name)s/part-%(batch_id)05d.jsonl": { format: "jsonlines", batchItemCount: 10 } },
};

describe("apiserver restarted under a running operator", () => {
  let cp: OwnControlPlane;
  let client: KubeClient;
  let operator: RunningOperator;
  const workDir = tempDir("op-restart");
  const ns = "crawl";

  before(async () => {
    cp = await startOwnControlPlane("op-restart");
    await installCrds(cp.apiserver.kubeconfig);
    client = new KubeClient(cp.kubeConfig());
    await client.create(NAMESPACES, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    operator = await startOperator(cp.kubeConfig(), { namespaces: [ns], workDir });
  });

  after(async () => {
    await operator?.stop();
    await client?.close();
    await cp?.stop();
  });

  test("informers relist/rewatch after the restart and nothing is lost", async () => {
    await createCrawlJob(client, ns, "before", spec);
    await eventually("the runner Job of before", () => client.getOrUndefined(JOBS, ns, "before-runner"));

    await cp.apiserver.stop();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await cp.apiserver.start();

    await createCrawlJob(client, ns, "after", spec);
    await eventually("the runner Job of after", () => client.getOrUndefined(JOBS, ns, "after-runner"), 45_000);

    await playJob({
      admin: cp.kubeConfig(),
      namespace: ns,
      jobName: "before-runner",
      workDir,
      execute: reportingExecutor({ feedsPerShard: 1 }),
    });
    const done = await untilCondition(client, ns, "before", "Succeeded", "True", 45_000);
    assert.equal(done.status?.feedSummary?.closed, 1);
    assert.equal(done.status?.phase, "Succeeded", "no webhook: finished once the runner completed");
  });

  test("a delete missed while the apiserver was down (and its revision compacted away) reaches the handlers after recovery", async () => {
    const cm = (name: string) =>
      ({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name, namespace: ns, labels: { missed: "yes" } },
      }) as KubeObject;
    await client.create(CONFIGMAPS, cm("keep"));
    await client.create(CONFIGMAPS, cm("gone"));
    const seen: string[] = [];
    const informer = new Informer<KubeObject>({
      client,
      resource: CONFIGMAPS,
      namespace: ns,
      labelSelector: "missed=yes",
      logger: pino({ level: "silent" }),
      resyncMs: 0,
    });
    informer
      .on("add", (o) => seen.push(`add ${o.metadata.name}`))
      .on("delete", (o) => seen.push(`delete ${o.metadata.name}`));
    const relists = async () =>
      (await informerRelists.get()).values
        .filter((v) => v.labels.resource === "configmaps" && v.labels.cause !== "start")
        .reduce((sum, v) => sum + v.value, 0);
    try {
      await informer.start();
      assert.deepEqual(seen.sort(), ["add gone", "add keep"]);
      const before = await relists();

      await cp.apiserver.stop();
      // While the API server is down, change etcd behind its back: delete one
      // object, then compact the history, so the informer's resourceVersion is
      // gone and only a relist can tell it what happened.
      const etcd = async (path: string, body: unknown) =>
        (await (await fetch(`${cp.etcd.url}${path}`, { method: "POST", body: JSON.stringify(body) })).json()) as {
          header: { revision: string };
        };
      const b64 = (text: string) => Buffer.from(text).toString("base64");
      const deleted = await etcd("/v3/kv/deleterange", { key: b64(`/registry/configmaps/${ns}/gone`) });
      await etcd("/v3/kv/compaction", { revision: deleted.header.revision, physical: true });
      await cp.apiserver.start();

      await eventually("the missed delete", () => seen.includes("delete gone"), 45_000);
      assert.ok(informer.get(ns, "keep"), "the other object stays cached");
      assert.ok((await relists()) > before, "recovered by a relist");
      const causes = (await informerRelists.get()).values
        .filter((v) => v.labels.resource === "configmaps")
        .map((v) => `${v.labels.cause}=${v.value}`);
      process.stdout.write(`# configmaps relists by cause: ${causes.join(" ")}\n`);
    } finally {
      await informer.stop();
    }
  });
});
