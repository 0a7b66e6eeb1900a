// The operator's informers survive an API server restart (a private
// apiserver+etcd for this test): while it is down nothing can change, so
// after it is back the test changes things and the operator must see them
// all — a new CrawlJob gets its runner, a finished runner finishes its job.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { KubeClient } from "../../operator/kube/client.ts";
import { JOBS, NAMESPACES } from "../../operator/kube/resources.ts";
import { eventually, type OwnControlPlane, startOwnControlPlane } from "../platform/fixtures.ts";
import {
  condition,
  createCrawlJob,
  installCrds,
  type RunningOperator,
  readCrawlJob,
  startOperator,
  tempDir,
} from "./harness.ts";
import { playJob, reportingExecutor } from "./kubelet.ts";

const spec = {
  spider: {
    name: "books",
    startUrls: ["https://books.example/"],
    extract: [{ name: "product", itemSelector: "article", fields: { title: { selector: "h1", text: true } } }],
  },
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
    const done = await eventually(
      "before: CrawlComplete=True",
      async () => {
        const j = await readCrawlJob(client, ns, "before");
        return condition(j, "CrawlComplete")?.status === "True" ? j : undefined;
      },
      45_000,
    );
    assert.equal(done.status?.feedSummary?.closed, 1);
    assert.equal(done.status?.phase, "Succeeded", "no webhook: finished once the runner completed");
  });
});
