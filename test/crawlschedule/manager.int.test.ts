// The real Manager runs CrawlSchedules and exports per-CrawlJob metrics (the
// manager wiring of operator/crawlschedule/setup.ts and crawljob-metrics.ts).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { RUN_NOW_ANNOTATION } from "../../crds/schema/names.ts";
import { KubeClient } from "../../kube/client.ts";
import { CRAWLJOBS, CRAWLSCHEDULES } from "../../kube/resources.ts";
import { crawlJobSpec } from "../operator/fixtures.ts";
import { installCrds, type RunningOperator, startOperator, tempDir } from "../operator/harness.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually } from "../platform/fixtures.ts";
import { createSchedule, jobsOf } from "./harness.ts";

describe("the operator (Manager) with CrawlSchedules and per-CrawlJob metrics", () => {
  const kc = adminKubeConfig();
  const client = new KubeClient(kc);
  let ns: Disposable;
  let operator: RunningOperator;

  before(async () => {
    await installCrds();
    ns = await createNamespace("sched-mgr");
    operator = await startOperator(kc, {
      namespaces: [ns.name],
      workDir: tempDir("sched-mgr"),
      metricsAddr: "127.0.0.1:0",
    });
  });
  after(async () => {
    await operator?.stop();
    await ns?.cleanup();
    await client.close();
  });

  test("run-now creates a CrawlJob; /metrics has its series, labelled namespace/crawljob", async () => {
    await createSchedule(client, ns.name, "nightly", { schedule: "@daily" }, crawlJobSpec());
    await client.patch(CRAWLSCHEDULES, ns.name, "nightly", {
      metadata: { annotations: { [RUN_NOW_ANNOTATION]: "1" } },
    });
    const [job] = await eventually("the run", async () => {
      const list = await jobsOf(client, ns.name, "nightly");
      return list.length > 0 ? list : undefined;
    });
    const name = job!.metadata.name!;
    // The CrawlJob controller runs too: it writes the job's status (Pending: no runner Job controller here).
    await eventually("the CrawlJob's status", async () => (await client.get(CRAWLJOBS, ns.name, name)).status);
    const text = await eventually("the job's series", async () => {
      const res = await fetch(`http://127.0.0.1:${operator.manager.metricsPort}/metrics`);
      const body = await res.text();
      return body.includes(`crawljob="${name}"`) ? body : undefined;
    });
    assert.match(
      text,
      new RegExp(`feedcrawl_crawljob_feeds_stored_total\\{namespace="${ns.name}",crawljob="${name}"\\} 0`),
    );
    assert.match(text, /feedcrawl_reconcile_total\{controller="crawlschedule",result="[a-z_]+"\} \d+/);
  });
});
