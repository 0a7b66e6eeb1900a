// A reconcile whose API write hangs (a local HTTP "apiserver" that never
// answers) ends as soon as its signal aborts, with the abort reason, instead
// of waiting for the client's 30 s request timeout: the CrawlJob reconcile
// creating its spec snapshot, the CrawlSchedule reconcile creating a run-now run.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import { RUN_NOW_ANNOTATION } from "../../crds/schema/names.ts";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import type { SecretKeys } from "../../operator/crawljob/caches.ts";
import { createCrawlJobReconciler } from "../../operator/crawljob/reconciler.ts";
import type { Job, Schedule } from "../../operator/crawlschedule/jobs.ts";
import { createCrawlScheduleReconciler } from "../../operator/crawlschedule/reconciler.ts";
import type { ReconcileRequest } from "../../operator/runtime/controller.ts";
import { EventRecorder } from "../../operator/runtime/events.ts";
import { Index } from "../../operator/runtime/index.ts";
import type { InformerGroup } from "../../operator/runtime/informer.ts";
import { crawlJob, crawlJobSpec } from "./fixtures.ts";

const logger = pino({ level: "silent" });
const none = { get: () => undefined };

describe("a reconcile's signal", () => {
  let server: Server;
  let client: KubeClient;
  let events: EventRecorder;
  const requests: string[] = [];

  before(async () => {
    server = createServer((req) => {
      requests.push(`${req.method} ${req.url}`);
      req.resume(); // read, never answered
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    client = new KubeClient({
      getCurrentCluster: () => ({ name: "hang", server: url }),
      applyToHTTPSOptions: async () => {},
    });
    events = new EventRecorder(client, { component: "feedcrawl-operator", host: "test", logger });
  });

  after(async () => {
    server.closeAllConnections(); // first: a request still hanging (a failed test) must not hold up client.close()
    await new Promise((resolve) => server.close(resolve));
    await client.close();
  });

  /** Runs `reconcile`, aborts its signal once the server holds a request, and returns what it was doing then. */
  async function abortWhileHung(
    reconcile: (req: ReconcileRequest) => Promise<unknown>,
    namespace: string,
    name: string,
  ): Promise<string> {
    requests.length = 0;
    const ac = new AbortController();
    const pending = reconcile({
      namespace,
      name,
      key: `${namespace}/${name}`,
      logger,
      signal: ac.signal,
      reason: "event",
      attempt: 0,
    });
    pending.catch(() => undefined); // asserted below
    while (requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const hung = requests[0]!;
    const reason = new Error(`Lost the Lease while reconciling ${namespace}/${name}`);
    ac.abort(reason);
    const started = Date.now();
    await assert.rejects(pending, (err) => err === reason);
    assert.ok(Date.now() - started < 1_000, "the abort ended the reconcile at once");
    return hung;
  }

  it("a CrawlJob reconcile creating its snapshot ConfigMap", { timeout: 5_000 }, async () => {
    const job = crawlJob(crawlJobSpec()) as Job;
    const reconcile = createCrawlJobReconciler({
      client,
      crawlJobs: { get: () => job },
      runnerJobs: none,
      feedsByJob: new Index<CrawlFeed & KubeObject>({ on: () => undefined }, () => []),
      children: { configMaps: none, serviceAccounts: none, roles: none, roleBindings: none },
      secrets: {
        get: (namespace, name): SecretKeys => ({
          metadata: { namespace, name, resourceVersion: "1" },
          keys: ["secret"],
        }),
      },
      events,
      runnerImage: "feedcrawl:test",
    });
    const hung = await abortWhileHung(reconcile, "crawl", "books");
    assert.equal(hung, "POST /api/v1/namespaces/crawl/configmaps?fieldManager=feedcrawl-operator");
  });

  it("a CrawlSchedule reconcile creating the run-now run", { timeout: 5_000 }, async () => {
    const schedule: Schedule = {
      apiVersion: "feedcrawl.io/v1alpha1",
      kind: "CrawlSchedule",
      metadata: {
        name: "nightly",
        namespace: "crawl",
        uid: "schedule-uid",
        annotations: { [RUN_NOW_ANNOTATION]: "1" },
      },
      spec: { schedule: "0 1 * * *", crawlJobTemplate: { spec: crawlJobSpec() } },
    };
    const reconcile = createCrawlScheduleReconciler({
      client,
      schedules: { get: () => schedule } as unknown as InformerGroup<Schedule>,
      crawlJobs: { list: () => [] } as unknown as InformerGroup<Job>,
      events,
    });
    const hung = await abortWhileHung(reconcile, "crawl", "nightly");
    assert.match(hung, /^POST \/apis\/feedcrawl\.io\/v1alpha1\/namespaces\/crawl\/crawljobs\?/);
  });
});
